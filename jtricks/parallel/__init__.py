"""Data-parallel training over devices and hosts.

Two forms of the same ``train_step``: :func:`pmap_step` (one replica per
local device, gradients averaged with ``lax.pmean``) and :func:`sharded_step`
(``jit`` over a :func:`data_mesh` with ``NamedSharding``, or ``shard_map``
with manual collectives). Dropout keys follow a rule that makes the result
independent of the device count (:func:`apply_per_example`); batch norm
averages its statistics over the global batch. :func:`initialize` joins
several processes into one run.
"""

from ._distributed import initialize as initialize
from ._distributed import process_slice as process_slice
from ._keys import EXAMPLE_AXIS as EXAMPLE_AXIS
from ._keys import apply_per_example as apply_per_example
from ._keys import example_keys as example_keys
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
    "EXAMPLE_AXIS",
    "apply_per_example",
    "data_mesh",
    "example_keys",
    "initialize",
    "pmap_step",
    "process_slice",
    "replicate",
    "replicate_on_mesh",
    "shard_batch",
    "shard_loss",
    "sharded_step",
    "split_batch",
    "unreplicate",
]
