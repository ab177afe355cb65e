"""Pure neural-network layers and small models.

Normalisation (:func:`batch_norm` with explicit running statistics,
:func:`layer_norm`, :func:`group_norm`, :func:`instance_norm`,
:func:`rms_norm`, :func:`weight_norm`), :func:`dropout` and :func:`drop_path`
(masks keyed by each example's index in the global batch, :func:`example_keys`;
:func:`data_parallel` declares the data axis inside per-device code),
dense and convolution layers, and the small models :func:`mlp`, :func:`cnn`
and :func:`resnet` as :class:`Model` ``(init, apply)`` pairs; :func:`stack`
repeats a block ``depth`` times as one ``lax.scan`` over stacked parameters
(compile time independent of depth), as in :func:`residual_mlp`.

dtype arguments follow flax: ``param_dtype`` is the dtype of the parameters
(every ``init_*`` and model), ``dtype`` the computation / output dtype (the
layers compute in the input's dtype), and a state buffer's dtype is named after
it (``stats_dtype`` for batch norm's running statistics, a :class:`BatchNormState`).

Example:
  >>> import jax, jtricks
  >>> model = jtricks.nn.mlp((64, 10), batch_norm=True, dropout=0.2)
  >>> params, state = model.init(jax.random.key(0), (8, 8, 1))
  >>> logits, state = model.apply(params, state, jnp.ones((2, 8, 8, 1)), training=False)
  >>> logits.shape
  (2, 10)
"""

from jtricks.nn._context import data_parallel as data_parallel
from jtricks.nn._context import example_keys as example_keys
from jtricks.nn._dropout import drop_path as drop_path
from jtricks.nn._dropout import dropout as dropout
from jtricks.nn._layers import conv2d as conv2d
from jtricks.nn._layers import dense as dense
from jtricks.nn._layers import global_avg_pool as global_avg_pool
from jtricks.nn._layers import init_conv2d as init_conv2d
from jtricks.nn._layers import init_dense as init_dense
from jtricks.nn._layers import max_pool as max_pool
from jtricks.nn._models import Model as Model
from jtricks.nn._models import cnn as cnn
from jtricks.nn._models import mlp as mlp
from jtricks.nn._models import resnet as resnet
from jtricks.nn._stack import residual_block as residual_block
from jtricks.nn._stack import residual_mlp as residual_mlp
from jtricks.nn._stack import stack as stack
from jtricks.nn._normalization import BatchNormState as BatchNormState
from jtricks.nn._normalization import batch_norm as batch_norm
from jtricks.nn._normalization import group_norm as group_norm
from jtricks.nn._normalization import init_batch_norm as init_batch_norm
from jtricks.nn._normalization import init_group_norm as init_group_norm
from jtricks.nn._normalization import init_instance_norm as init_instance_norm
from jtricks.nn._normalization import init_layer_norm as init_layer_norm
from jtricks.nn._normalization import init_rms_norm as init_rms_norm
from jtricks.nn._normalization import init_weight_norm as init_weight_norm
from jtricks.nn._normalization import instance_norm as instance_norm
from jtricks.nn._normalization import layer_norm as layer_norm
from jtricks.nn._normalization import rms_norm as rms_norm
from jtricks.nn._normalization import weight_norm as weight_norm

__all__ = [
    "BatchNormState",
    "Model",
    "batch_norm",
    "cnn",
    "conv2d",
    "dense",
    "drop_path",
    "data_parallel",
    "dropout",
    "example_keys",
    "global_avg_pool",
    "group_norm",
    "init_batch_norm",
    "init_conv2d",
    "init_dense",
    "init_group_norm",
    "init_instance_norm",
    "init_layer_norm",
    "init_rms_norm",
    "init_weight_norm",
    "instance_norm",
    "layer_norm",
    "max_pool",
    "mlp",
    "residual_block",
    "residual_mlp",
    "resnet",
    "rms_norm",
    "stack",
    "weight_norm",
]

# Every state class of jtricks.nn serializes with jax.export (jtricks/_export.py).
from jtricks._export import register_namedtuples as _register_namedtuples  # noqa: E402

_register_namedtuples(__name__)
