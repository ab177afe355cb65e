"""A sweep over two processes: each trains its share of the members, and the result
(every member, the best one) equals the one-process sweep.

The test starts this file twice as a script (``python tests/test_sweep_multihost.py
RANK PORT OUT``), each process simulating 2 CPU devices and joining the other through
``jtricks.parallel.initialize`` (as ``tests/test_multihost.py`` does); the sweep's
``member`` axis spans the 4 devices of both processes.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NUM_PROCESSES, LOCAL_DEVICES, K = 2, 2, 8
TIMEOUT_S = 240


def _sweep(mesh=None):
    import jax
    import numpy as np

    import jtricks
    from jtricks import sweep

    def build(h):
        return jtricks.nn.mlp([8, 3], dropout=h["dropout"]), jtricks.optim.adam(
            h["learning_rate"])

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=96) > 0).astype(np.int32) + (x[:, 1] > 1)
    hparams = {"learning_rate": np.geomspace(1e-3, 3.0, K).astype(np.float32),
               "dropout": np.tile([0.0, 0.3], K // 2).astype(np.float32)}
    return sweep.train(build, hparams, (x[:64], y[:64]), (x[64:], y[64:]),
                       key=jax.random.PRNGKey(3), epochs=6, batch_size=16, patience=1,
                       rounds=1, mesh=mesh)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ["JAX_PLATFORMS"] = "cpu"
    from jtricks import parallel

    parallel.initialize(f"127.0.0.1:{port}", NUM_PROCESSES, rank,
                        local_device_count=LOCAL_DEVICES, timeout=TIMEOUT_S // 2)
    import jax

    assert jax.process_count() == NUM_PROCESSES and jax.device_count() == 4
    from jax.experimental import multihost_utils

    result = _sweep(jax.make_mesh((4,), ("member",)))
    val_loss, epochs_run = multihost_utils.process_allgather(
        (result.members.val_loss, result.members.epochs_run), tiled=True)
    # the members this process's devices hold (and computed: the sweep is split over them)
    trained = sorted({k for shard in result.members.val_loss.addressable_shards
                      for k in range(val_loss.shape[0])[shard.index[0]]})
    np.savez(out, best=result.best, val_loss=val_loss, epochs_run=epochs_run, trained=trained)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
def test_two_process_sweep_trains_each_member_once_and_matches_one(tmp_path):
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    procs = [subprocess.Popen([sys.executable, __file__, str(rank), str(port),
                               str(tmp_path / f"rank{rank}.npz")],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for rank in range(NUM_PROCESSES)]
    try:
        expected = _sweep()  # one process, one device; overlaps the workers' start-up
        logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    runs = np.asarray(expected.members.epochs_run)
    assert runs.min() < runs.max() == 6, runs  # members stopped on their own: buckets shrank
    trained = []
    for rank in range(NUM_PROCESSES):
        with np.load(tmp_path / f"rank{rank}.npz") as got:
            assert int(got["best"]) == expected.best
            np.testing.assert_array_equal(got["epochs_run"], runs)
            np.testing.assert_allclose(got["val_loss"], expected.members.val_loss,
                                       rtol=1e-5, atol=1e-6)
            trained.append(got["trained"])
    # every member trained by exactly one process, half of them each
    assert sorted(np.concatenate(trained).tolist()) == list(range(K))
    assert [len(t) for t in trained] == [K // 2] * NUM_PROCESSES


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
