"""A sweep over two processes: each trains its share of the members, and the result
(every member, the best one) equals the one-process sweep; the same for ``jtricks sweep``.

The test starts this file twice as a script through ``tests/_multiprocess.py``
(``python tests/test_sweep_multihost.py RANK COORDINATOR OUT CLI_OUT``), each process
simulating 2 CPU devices. Each first runs ``jtricks sweep --devices 4 --coordinator ...
--num-processes 2 --process-id RANK`` (which joins the other process through
``jtricks.parallel.initialize``), then, in the same processes, the library sweep on a
``member`` axis spanning the 4 devices of both.
"""

import json
import sys
import threading

import numpy as np
import pytest
from _multiprocess import run_processes

NUM_PROCESSES, LOCAL_DEVICES, K = 2, 2, 8
TIMEOUT_S = 300
# a K=4 grid (2 learning rates x 2 dropout rates) on digits, tiny and short
CLI_SWEEP = ["sweep", "--data", "digits", "--hidden", "16", "--epochs", "3", "--patience", "1",
             "--lr", "1e-3,3e-2", "--dropout", "0,0.3", "--weight-decay", "0"]


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


def _worker(rank: int, coordinator: str, out: str, cli_out: str) -> None:
    from jtricks.cli import main

    # the command line joins the processes (its --coordinator flags), then trains its share
    assert main([*CLI_SWEEP, "--devices", str(NUM_PROCESSES * LOCAL_DEVICES), "--coordinator",
                 coordinator, "--num-processes", str(NUM_PROCESSES), "--process-id", str(rank),
                 "--out", cli_out]) == 0
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


def _references(tmp_path, out: dict) -> None:
    """The one-process library sweep and ``jtricks sweep`` (run while the workers start)."""
    from jtricks.cli import main

    try:
        out["library"] = _sweep()
        out["cli"] = main([*CLI_SWEEP, "--out", str(tmp_path / "one")])
    except BaseException as e:  # re-raised by the test, in its own thread
        out["error"] = e


@pytest.mark.multiprocess
def test_two_process_sweep_trains_each_member_once_and_matches_one(tmp_path):
    expected: dict = {}
    reference = threading.Thread(target=_references, args=(tmp_path, expected))
    reference.start()  # one process, one device; overlaps the workers' start-up
    try:
        run_processes([__file__, "{rank}", "{coordinator}", str(tmp_path / "rank{rank}.npz"),
                       str(tmp_path / "cli{rank}")], num_processes=NUM_PROCESSES,
                      local_devices=LOCAL_DEVICES, timeout=TIMEOUT_S)
    finally:
        reference.join()
    if "error" in expected:
        raise expected["error"]
    library = expected["library"]
    runs = np.asarray(library.members.epochs_run)
    assert runs.min() < runs.max() == 6, runs  # members stopped on their own: buckets shrank
    trained = []
    for rank in range(NUM_PROCESSES):
        with np.load(tmp_path / f"rank{rank}.npz") as got:
            assert int(got["best"]) == library.best
            np.testing.assert_array_equal(got["epochs_run"], runs)
            np.testing.assert_allclose(got["val_loss"], library.members.val_loss,
                                       rtol=1e-4, atol=1e-6)  # float32, lr up to 3
            trained.append(got["trained"])
    # every member trained by exactly one process, half of them each
    assert sorted(np.concatenate(trained).tolist()) == list(range(K))
    assert [len(t) for t in trained] == [K // 2] * NUM_PROCESSES

    # jtricks sweep: process 0 writes the summary of the one-process run, process 1 nothing
    assert expected["cli"] == 0
    one = json.loads((tmp_path / "one" / "sweep.json").read_text())
    two = json.loads((tmp_path / "cli0" / "sweep.json").read_text())
    assert not (tmp_path / "cli1").exists()
    assert two["best"] == one["best"] and len(two["members"]) == len(one["members"]) == 4
    for a, b in zip(two["members"], one["members"]):
        assert {n: a[n] for n in ("learning_rate", "dropout", "epochs_run", "best_epoch")} == \
            {n: b[n] for n in ("learning_rate", "dropout", "epochs_run", "best_epoch")}
        np.testing.assert_allclose([a["best_val_loss"], a["val_accuracy"]],
                                   [b["best_val_loss"], b["val_accuracy"]], rtol=1e-5)
    assert abs(two["test_accuracy"] - one["test_accuracy"]) < 1e-6
    assert two["config"]["num_processes"] == 2 and two["config"]["devices"] == 4


if __name__ == "__main__":
    _worker(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
