"""Multi-host data parallelism: two processes on the loopback address agree with one.

Both forms: ``sharded_step`` over a mesh of the 4 devices, and ``pmap_step``
(each process feeding its 2 local devices; pmap spans all 4).

The test starts this file twice as a script (``tests/_multiprocess.py``), each
process simulating 2 CPU devices and joining the other through
``jtricks.parallel.initialize`` (gloo collectives on CPU). Each feeds
its half of every global batch; the mesh spans the 4 devices of both
processes. The final state must equal the single-process run, here in the
test process.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _multiprocess import run_processes

NUM_PROCESSES, LOCAL_DEVICES, STEPS = 2, 2, 2
TIMEOUT_S = 240


def _train(parallel):
    """A worker's run: shard_map data-parallel steps on its half of every batch."""
    import jax

    from test_parallel import MODELS, TX, _batch, _state

    from jtricks.train import classifier_loss

    model, shape = MODELS["mlp"]  # batch norm and dropout; the loss is written as on one device
    mesh = parallel.data_mesh()  # all devices of all processes
    step = parallel.sharded_step(classifier_loss(model), TX, mesh, per_device=True)
    state = parallel.replicate_on_mesh(_state(model, shape), mesh)
    for i in range(STEPS):
        local = parallel.process_slice(_batch(i))
        state, _ = step(state, parallel.shard_batch(local, mesh))
    # The state is replicated: this process's first copy is the whole of it.
    return [np.asarray(leaf.addressable_data(0)) for leaf in jax.tree.leaves(state)]


def _train_pmap(parallel):
    """The same run with pmap_step: each process feeds its local devices its half."""
    import jax

    from test_parallel import MODELS, TX, _batch, _state

    from jtricks.train import classifier_loss

    model, shape = MODELS["mlp"]
    step = parallel.pmap_step(classifier_loss(model), TX)
    state = parallel.replicate(_state(model, shape))
    for i in range(STEPS):
        state, _ = step(state, parallel.split_batch(parallel.process_slice(_batch(i))))
    return [np.asarray(leaf) for leaf in jax.tree.leaves(parallel.unreplicate(state))]


def _single_process_run():
    """The same steps in this one process, on one device over the whole batches
    (the data-parallel step equals it whatever the device count, see test_parallel)."""
    import jax

    from test_parallel import _batch, _reference

    state, _ = _reference("mlp", [_batch(i) for i in range(STEPS)])
    return [np.asarray(leaf) for leaf in jax.tree.leaves(state)]


def _worker(out: str) -> None:
    from jtricks import parallel

    parallel.initialize(timeout=TIMEOUT_S // 2)  # the launcher's JAX_* environment
    import jax

    assert jax.process_count() == NUM_PROCESSES and jax.device_count() == 4
    np.savez(out, *_train(parallel))
    np.savez(out.replace(".npz", "_pmap.npz"), *_train_pmap(parallel))
    try:  # a pmap over some of the local devices would average over them alone
        import jtricks.optim as jo

        parallel.pmap_step(lambda p, s, b, k: (0.0, (s, {})), jo.sgd(0.1), num_devices=1)
    except ValueError as e:
        assert "every device of every process" in str(e), e
    else:
        raise AssertionError("pmap_step(num_devices=1) ran across processes")


@pytest.mark.multiprocess
def test_two_processes_match_one(tmp_path):
    with ThreadPoolExecutor(1) as pool:
        launch = pool.submit(run_processes, [__file__, str(tmp_path / "rank{rank}.npz")],
                             num_processes=NUM_PROCESSES, local_devices=LOCAL_DEVICES,
                             timeout=TIMEOUT_S)
        # The single-process run overlaps the workers' start-up and compilation.
        expected = _single_process_run()
        launch.result()
    for name in [f"rank{rank}{form}.npz" for rank in range(NUM_PROCESSES)
                 for form in ("", "_pmap")]:
        with np.load(tmp_path / name) as got:
            leaves = [got[f"arr_{i}"] for i in range(len(got.files))]
        assert len(leaves) == len(expected)
        for a, b in zip(leaves, expected):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


if __name__ == "__main__":
    _worker(sys.argv[1])
