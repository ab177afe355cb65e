"""Gradient transformations, optimizers and schedules, written optax-style.

Every name here is a pure factory returning a :class:`GradientTransformation`
(``init(params) -> state``, ``update(updates, state, params=None, **extra_args)
-> (updates, state)``); the schedules live in :mod:`jtricks.optim.schedules`.
"""

from . import schedules as schedules
from ._alias import adadelta as adadelta
from ._alias import adagrad as adagrad
from ._alias import adam as adam
from ._alias import adamw as adamw
from ._alias import rmsprop as rmsprop
from ._alias import sgd as sgd
from ._base import EmptyState as EmptyState
from ._base import GradientTransformation as GradientTransformation
from ._base import apply_updates as apply_updates
from ._base import chain as chain
from ._base import identity as identity
from ._clipping import ClipByGlobalNormState as ClipByGlobalNormState
from ._clipping import clip as clip
from ._clipping import clip_by_global_norm as clip_by_global_norm
from ._clipping import clip_by_norm as clip_by_norm
from ._flat import FlatState as FlatState
from ._flat import flatten as flatten
from ._flat import ravel as ravel
from ._inject import InjectHyperparamsState as InjectHyperparamsState
from ._inject import inject_hyperparams as inject_hyperparams
from ._adaptive import ScaleByAdadeltaState as ScaleByAdadeltaState
from ._adaptive import ScaleByAdagradState as ScaleByAdagradState
from ._adaptive import ScaleByAdamState as ScaleByAdamState
from ._adaptive import ScaleByAmsgradState as ScaleByAmsgradState
from ._adaptive import ScaleByCenteredRmsState as ScaleByCenteredRmsState
from ._adaptive import ScaleByCenteredRmsWithCountState as ScaleByCenteredRmsWithCountState
from ._adaptive import ScaleByRmsState as ScaleByRmsState
from ._adaptive import ScaleByRmsWithCountState as ScaleByRmsWithCountState
from ._transforms import ScaleByScheduleState as ScaleByScheduleState
from ._transforms import TraceState as TraceState
from ._transforms import WeightDecayScheduleState as WeightDecayScheduleState
from ._transforms import add_decayed_weights as add_decayed_weights
from ._transforms import add_l1_decay as add_l1_decay
from ._transforms import normalize_by_norm as normalize_by_norm
from ._transforms import scale as scale
from ._adaptive import scale_by_adadelta as scale_by_adadelta
from ._adaptive import scale_by_adagrad as scale_by_adagrad
from ._adaptive import scale_by_adam as scale_by_adam
from ._transforms import scale_by_learning_rate as scale_by_learning_rate
from ._adaptive import scale_by_rms as scale_by_rms
from ._transforms import trace as trace
from ._wrappers import AccumulateGradientsState as AccumulateGradientsState
from ._wrappers import ApplyIfFiniteState as ApplyIfFiniteState
from ._wrappers import MaskedNode as MaskedNode
from ._wrappers import MaskedState as MaskedState
from ._wrappers import ReduceOnPlateauState as ReduceOnPlateauState
from ._wrappers import accumulate_gradients as accumulate_gradients
from ._wrappers import apply_if_finite as apply_if_finite
from ._wrappers import masked as masked
from ._wrappers import reduce_on_plateau as reduce_on_plateau

__all__ = [
    "AccumulateGradientsState",
    "ApplyIfFiniteState",
    "ClipByGlobalNormState",
    "EmptyState",
    "FlatState",
    "GradientTransformation",
    "InjectHyperparamsState",
    "MaskedNode",
    "MaskedState",
    "ReduceOnPlateauState",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByCenteredRmsState",
    "ScaleByCenteredRmsWithCountState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByScheduleState",
    "TraceState",
    "WeightDecayScheduleState",
    "accumulate_gradients",
    "adadelta",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "add_l1_decay",
    "apply_if_finite",
    "apply_updates",
    "chain",
    "clip",
    "clip_by_global_norm",
    "clip_by_norm",
    "flatten",
    "identity",
    "inject_hyperparams",
    "masked",
    "normalize_by_norm",
    "ravel",
    "reduce_on_plateau",
    "rmsprop",
    "scale",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "schedules",
    "sgd",
    "trace",
]

# Every state class of jtricks.optim serializes with jax.export (jtricks/_export.py).
from jtricks._export import register_namedtuples as _register_namedtuples  # noqa: E402

_register_namedtuples(__name__)
