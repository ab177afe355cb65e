"""Training: the one engine and its interactive client.

* the engine (:mod:`jtricks.train._engine`: :func:`train_step`,
  :func:`make_epoch`; :mod:`jtricks.train._run`: :func:`make_run`) — every loop in jtricks (``fit``,
  sweeps, the data-parallel forms, the demo and the CLI) is built on them;
* what it is given: the :class:`TrainState` pytree, a loss
  ``loss_fn(params, model_state, batch, key)`` (:func:`classifier_loss`) and
  per-example evaluation metrics (:func:`classifier_eval`, :func:`evaluate`);
* :func:`fit`: epochs with validation, history, progress and checkpoints;
* metric writers (:class:`JsonlWriter`, :class:`CsvWriter`,
  :class:`TensorBoardWriter`, :class:`MultiWriter`; CLU's protocol) that ``fit``
  logs epochs and steps to, and :func:`learning_rate_of` (the rate a step used);
* the tricks around it: :func:`early_stopping` (Keras' meaning), model
  averaging (:func:`ema`, :func:`swa`, :func:`ensemble_predict`).
"""

from ._averaging import Averaging as Averaging
from ._averaging import AveragingState as AveragingState
from ._averaging import ema as ema
from ._averaging import ensemble_predict as ensemble_predict
from ._averaging import params_like as params_like
from ._averaging import swa as swa
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import Checkpointer as Checkpointer
from ._early_stopping import EarlyStopping as EarlyStopping
from ._early_stopping import EarlyStoppingState as EarlyStoppingState
from ._early_stopping import early_stopping as early_stopping
from ._engine import epoch_order as epoch_order
from ._engine import init_state as init_state
from ._engine import make_epoch as make_epoch
from ._engine import train_step as train_step
from ._history import read_jsonl as read_jsonl
from ._history import write_csv as write_csv
from ._history import write_history as write_history
from ._history import write_jsonl as write_jsonl
from ._loop import FitResult as FitResult
from ._metrics import CsvWriter as CsvWriter
from ._metrics import JsonlWriter as JsonlWriter
from ._metrics import MetricWriter as MetricWriter
from ._metrics import MultiWriter as MultiWriter
from ._metrics import TensorBoardWriter as TensorBoardWriter
from ._metrics import learning_rate_of as learning_rate_of
from ._loop import fit as fit
from ._run import Run as Run
from ._run import averaged_params as averaged_params
from ._run import make_run as make_run
from ._state import TrainState as TrainState
from ._steps import classifier_eval as classifier_eval
from ._steps import classifier_loss as classifier_loss
from ._steps import evaluate as evaluate
from ._steps import predict as predict

__all__ = [
    "Averaging",
    "AveragingState",
    "CheckpointError",
    "Checkpointer",
    "CsvWriter",
    "EarlyStopping",
    "EarlyStoppingState",
    "FitResult",
    "JsonlWriter",
    "MetricWriter",
    "MultiWriter",
    "Run",
    "TensorBoardWriter",
    "TrainState",
    "averaged_params",
    "classifier_eval",
    "classifier_loss",
    "early_stopping",
    "ema",
    "ensemble_predict",
    "epoch_order",
    "evaluate",
    "fit",
    "init_state",
    "learning_rate_of",
    "make_epoch",
    "make_run",
    "params_like",
    "predict",
    "read_jsonl",
    "swa",
    "train_step",
    "write_csv",
    "write_history",
    "write_jsonl",
]

# Every state class of jtricks.train serializes with jax.export (jtricks/_export.py).
from jtricks._export import register_namedtuples as _register_namedtuples  # noqa: E402

_register_namedtuples(__name__)
