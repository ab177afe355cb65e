"""Bad inputs to ``jtricks.parallel`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``).

Every case fails before anything is compiled; ``initialize`` fails before it
connects to anything.
"""

import jax
import jax.numpy as jnp
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error, on

from jtricks import nn, optim, parallel, train

MODEL = nn.mlp([3])
LOSS = train.classifier_loss(MODEL)
TX = optim.sgd(0.1)
MESH = parallel.data_mesh(1)  # any machine has one device (the script forces none)
BATCH = (jnp.ones((4, 2)), jnp.zeros(4, jnp.int32))
RAGGED = (jnp.ones((4, 2)), jnp.zeros(3, jnp.int32))
PMAP_STEP = on(parallel.pmap_step, LOSS, TX, given="loss_fn, tx")
SHARDED_STEP = on(parallel.sharded_step, LOSS, TX, given="loss_fn, tx")

CASES = [
    bad("parallel", parallel.data_mesh, "num_devices", 0),
    bad("parallel", parallel.data_mesh, "num_devices", 1000),
    bad("parallel", parallel.data_mesh, "num_devices", 2.5, exc=TypeError),
    bad("parallel", parallel.data_mesh, "axis_name", "", exc=TypeError),
    bad("parallel", parallel.data_mesh, "axis_name", 3, exc=TypeError),
    bad("parallel", on(parallel.replicate, {"w": jnp.ones(2)}, given="tree"), "num_devices", 0),
    bad("parallel", on(parallel.replicate, {"w": jnp.ones(2)}, given="tree"), "num_devices",
        True, exc=TypeError),
    bad("parallel", parallel.unreplicate, "tree", {"w": jnp.float32(1.0)}, shown="['w']"),
    bad("parallel", on(parallel.split_batch, BATCH, given="batch"), "num_devices", 3,
        shown="num_devices=3"),
    bad("parallel", on(parallel.split_batch, BATCH, given="batch"), "num_devices", -1),
    bad("parallel", parallel.split_batch, "batch", RAGGED, num_devices=2, shown="'3', '4'"),
    bad("parallel", parallel.split_batch, "batch", jnp.float32(1.0), num_devices=2,
        shown="None"),
    bad("parallel", parallel.process_slice, "batch", RAGGED, shown="'3', '4'"),
    Bad("parallel", "pmap_step('cross_entropy', tx)",
        lambda: parallel.pmap_step("cross_entropy", TX), "loss_fn", "'cross_entropy'", TypeError),
    bad("parallel", on(parallel.pmap_step, LOSS, given="loss_fn"), "tx", "sgd",
        exc=TypeError),
    bad("parallel", PMAP_STEP, "num_devices", 0),
    bad("parallel", PMAP_STEP, "axis_name", None, exc=TypeError),
    bad("parallel", PMAP_STEP, "donate", "yes", exc=TypeError),
    bad("parallel", SHARDED_STEP, "mesh", "data", exc=TypeError),
    bad("parallel", SHARDED_STEP, "per_device", "no", MESH, exc=TypeError),
    bad("parallel", SHARDED_STEP, "donate", 1, MESH, exc=TypeError),
    Bad("parallel", "sharded_step(loss_fn, None, mesh)",
        lambda: parallel.sharded_step(LOSS, None, MESH), "tx", "None", TypeError),
    bad("parallel", on(parallel.shard_batch, BATCH, given="batch"), "mesh", None,
        exc=TypeError),
    Bad("parallel", "shard_batch(batch of 4, data_mesh(8))",
        lambda: parallel.shard_batch(BATCH, parallel.data_mesh(8)), "mesh", "8 devices"),
    bad("parallel", parallel.shard_batch, "batch", RAGGED, mesh=MESH, shown="'3', '4'"),
    bad("parallel", on(parallel.replicate_on_mesh, {"w": jnp.ones(2)}, given="tree"), "mesh",
        "data", exc=TypeError),
    bad("parallel", parallel.shard_loss, "loss_fn", None, mesh=MESH, exc=TypeError),
    bad("parallel", on(parallel.shard_loss, LOSS, given="loss_fn"), "mesh", 8, exc=TypeError),
    bad("parallel", parallel.initialize, "num_processes", 0),
    bad("parallel", parallel.initialize, "process_id", -1),
    bad("parallel", parallel.initialize, "process_id", 2, num_processes=2),
    bad("parallel", parallel.initialize, "local_device_count", 0),
    bad("parallel", parallel.initialize, "timeout", 2.5, exc=TypeError),
    bad("parallel", parallel.initialize, "timeout", 0),
    bad("parallel", parallel.initialize, "coordinator_address", 1234, exc=TypeError),
    bad("parallel", parallel.initialize, "cpu_collectives", True, exc=TypeError),
    Bad("parallel", "data_parallel('data', per_example=1)",
        lambda: parallel.data_parallel("data", per_example=1).__enter__(), "per_example", "1",
        TypeError),
    Bad("parallel", "example_keys(key, 2.0)",
        lambda: parallel.example_keys(jax.random.key(0), 2.0), "batch_size", "2.0", TypeError),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
