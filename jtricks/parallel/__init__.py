"""Data-parallel training over devices and hosts.

Two forms of the same ``train_step``: :func:`pmap_step` (one replica per
local device, gradients averaged with ``lax.pmean``) and :func:`sharded_step`
(``jit`` over a :func:`data_mesh` with ``NamedSharding``, or ``shard_map``
with manual collectives). A loss is written as on one device, e.g.
:func:`jtricks.train.classifier_loss` of a :mod:`jtricks.nn` model: the
per-device forms trace it inside :func:`data_parallel`, so dropout masks follow
one rule, example ``i`` of the global batch draws from ``fold_in(step_key,
i)`` (:func:`example_keys`), and batch norm averages its statistics over the
global batch; the result does not depend on the device count.
:func:`initialize` joins several processes into one run.

A mesh's axes are named by role (:func:`role_axes`): ``data`` splits the
batch, ``model`` the parameters and optimizer state (:func:`shard_params`,
FSDP-style; every ``init`` keeps their shardings), ``member`` the
configurations of a sweep (``jtricks.sweep.train(mesh=...)``); Auto and
Explicit axes both work. ``docs/scaling.md`` gives the recipes and their costs.

Example:
  >>> import jax, jtricks
  >>> from jtricks import parallel
  >>> model = jtricks.nn.mlp([16, 3], batch_norm=True, dropout=0.5)
  >>> params, ms = model.init(jax.random.key(0), (4,))
  >>> tx = jtricks.optim.sgd(0.1)
  >>> state = jtricks.train.TrainState.create(params=params, tx=tx, key=0, model_state=ms)
  >>> batch = (jax.numpy.ones((8, 4)), jax.numpy.zeros(8, int))
  >>> step = parallel.pmap_step(jtricks.train.classifier_loss(model), tx, num_devices=2)
  >>> new, metrics = step(parallel.replicate(state, 2), parallel.split_batch(batch, 2))
  >>> new.step.tolist()
  [1, 1]
"""

from jtricks.nn import data_parallel as data_parallel
from jtricks.nn import example_keys as example_keys

from ._distributed import initialize as initialize
from ._distributed import process_batches as process_batches
from ._distributed import process_rows as process_rows
from ._distributed import process_slice as process_slice
from ._mesh import param_shardings as param_shardings
from ._mesh import role_axes as role_axes
from ._mesh import shard_params as shard_params
from ._pmap import pmap_step as pmap_step
from ._pmap import replicate as replicate
from ._pmap import split_batch as split_batch
from ._pmap import unreplicate as unreplicate
from ._sharded import data_mesh as data_mesh
from ._sharded import replicate_on_mesh as replicate_on_mesh
from ._sharded import shard_batch as shard_batch
from ._sharded import shard_loss as shard_loss
from ._sharded import sharded_step as sharded_step

__all__ = [
    "data_mesh",
    "data_parallel",
    "example_keys",
    "initialize",
    "param_shardings",
    "pmap_step",
    "process_batches",
    "process_rows",
    "process_slice",
    "replicate",
    "replicate_on_mesh",
    "role_axes",
    "shard_batch",
    "shard_loss",
    "shard_params",
    "sharded_step",
    "split_batch",
    "unreplicate",
]
