"""Two processes on the loopback address agree with one: data-parallel steps and sweeps.

One pair of worker processes serves every scenario (each process imports JAX and joins
the other once; the scenarios then run one after the other in the same processes). The
test starts this file twice as a script through ``tests/_multiprocess.py`` (``python
tests/test_multihost.py RANK COORDINATOR OUT``), each process simulating 2 CPU devices.
Each process:

1. runs ``jtricks sweep --devices 4 --coordinator ... --num-processes 2`` (its rank
   from ``JAX_PROCESS_ID``, read by ``jtricks.parallel.initialize``), which joins the
   other process and trains its share of the members;
2. runs the library sweep on a ``member`` axis spanning the 4 devices of both: each
   process trains the members its devices hold;
3. trains with ``sharded_step`` over a mesh of the 4 devices and with ``pmap_step``
   (each process feeding its 2 local devices; pmap spans all 4), each process feeding
   its half of every global batch.

Every result must equal the one-process run, here in the test process (which runs
while the workers start and compile).
"""

import json
import sys
import threading

import numpy as np
import pytest
from _multiprocess import fast_compile_flags, run_processes

NUM_PROCESSES, LOCAL_DEVICES, K, STEPS = 2, 2, 8, 2
TIMEOUT_S = 300
# a K=4 grid (2 learning rates x 2 dropout rates) on digits, tiny and short
CLI_SWEEP = ["sweep", "--data", "digits", "--hidden", "16", "--epochs", "3", "--patience", "1",
             "--lr", "1e-3,3e-2", "--dropout", "0,0.3", "--weight-decay", "0"]


# ------------------------------------------------------------------------- scenarios

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


def _train(parallel):
    """Shard_map data-parallel steps on this process's half of every batch."""
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


def _worker(rank: int, coordinator: str, out: str) -> None:
    from jtricks.cli import main

    # the command line joins the processes, then trains its share; process 0 writes --out
    assert main([*CLI_SWEEP, "--devices", str(NUM_PROCESSES * LOCAL_DEVICES), "--coordinator",
                 coordinator, "--num-processes", str(NUM_PROCESSES),
                 "--out", f"{out}/cli{rank}"]) == 0
    import jax
    from jax.experimental import multihost_utils

    from jtricks import parallel

    assert jax.process_count() == NUM_PROCESSES and jax.device_count() == 4
    assert jax.process_index() == rank

    result = _sweep(jax.make_mesh((4,), ("member",)))
    val_loss, epochs_run = multihost_utils.process_allgather(
        (result.members.val_loss, result.members.epochs_run), tiled=True)
    # the members this process's devices hold (and computed: the sweep is split over them)
    trained = sorted({k for shard in result.members.val_loss.addressable_shards
                      for k in range(val_loss.shape[0])[shard.index[0]]})
    np.savez(f"{out}/sweep{rank}.npz", best=result.best, val_loss=val_loss,
             epochs_run=epochs_run, trained=trained)

    np.savez(f"{out}/steps{rank}.npz", *_train(parallel))
    np.savez(f"{out}/steps{rank}_pmap.npz", *_train_pmap(parallel))
    try:  # a pmap over some of the local devices would average over them alone
        import jtricks.optim as jo

        parallel.pmap_step(lambda p, s, b, k: (0.0, (s, {})), jo.sgd(0.1), num_devices=1)
    except ValueError as e:
        assert "every device of every process" in str(e), e
    else:
        raise AssertionError("pmap_step(num_devices=1) ran across processes")


# ------------------------------------------------------------ the one-process runs

def _single_process_steps():
    """The data-parallel steps in this one process, on one device over the whole batches
    (the data-parallel step equals it whatever the device count, see test_parallel)."""
    import jax

    from test_parallel import _batch, _reference

    state, _ = _reference("mlp", [_batch(i) for i in range(STEPS)])
    return [np.asarray(leaf) for leaf in jax.tree.leaves(state)]


def _references(tmp_path, out: dict) -> None:
    """The one-process library sweep, ``jtricks sweep`` and steps (run while the workers
    start)."""
    from jtricks.cli import main

    try:
        out["library"] = _sweep()
        out["cli"] = main([*CLI_SWEEP, "--out", str(tmp_path / "one")])
        out["steps"] = _single_process_steps()
    except BaseException as e:  # re-raised by the test, in its own thread
        out["error"] = e


# ---------------------------------------------------------------------------- test

def _check_sweep(tmp_path, library):
    runs = np.asarray(library.members.epochs_run)
    assert runs.min() < runs.max() == 6, runs  # members stopped on their own: buckets shrank
    trained = []
    for rank in range(NUM_PROCESSES):
        with np.load(tmp_path / f"sweep{rank}.npz") as got:
            assert int(got["best"]) == library.best
            np.testing.assert_array_equal(got["epochs_run"], runs)
            np.testing.assert_allclose(got["val_loss"], library.members.val_loss,
                                       rtol=1e-4, atol=1e-6)  # float32, lr up to 3
            trained.append(got["trained"])
    # every member trained by exactly one process, half of them each
    assert sorted(np.concatenate(trained).tolist()) == list(range(K))
    assert [len(t) for t in trained] == [K // 2] * NUM_PROCESSES


def _check_cli_sweep(tmp_path):
    """Process 0 writes the summary of the one-process run, process 1 nothing."""
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


def _check_steps(tmp_path, expected):
    for name in [f"steps{rank}{form}.npz" for rank in range(NUM_PROCESSES)
                 for form in ("", "_pmap")]:
        with np.load(tmp_path / name) as got:
            leaves = [got[f"arr_{i}"] for i in range(len(got.files))]
        assert len(leaves) == len(expected)
        for a, b in zip(leaves, expected):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.multiprocess
def test_two_processes_match_one(tmp_path):
    expected: dict = {}
    reference = threading.Thread(target=_references, args=(tmp_path, expected))
    reference.start()  # one process, one device; overlaps the workers' start-up
    try:
        # the workers compile without XLA's optimisations: their float32 results differ
        # from this process's in the last bits, as the sum across processes does already
        run_processes([__file__, "{rank}", "{coordinator}", str(tmp_path)],
                      num_processes=NUM_PROCESSES, local_devices=LOCAL_DEVICES,
                      timeout=TIMEOUT_S, env={"XLA_FLAGS": fast_compile_flags()})
    finally:
        reference.join()
    if "error" in expected:
        raise expected["error"]
    assert expected["cli"] == 0
    _check_sweep(tmp_path, expected["library"])
    _check_cli_sweep(tmp_path)
    _check_steps(tmp_path, expected["steps"])


def test_initialize_reads_the_process_count_and_rank_from_the_environment(monkeypatch):
    """What the launcher's ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` give
    ``jax.distributed.initialize`` (the workers above take only their rank from it)."""
    import jax

    from jtricks import parallel

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    parallel.initialize("127.0.0.1:1", cpu_collectives=None, timeout=7)
    assert calls == [(("127.0.0.1:1", 2, 1), {"initialization_timeout": 7})]
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='two' must be an integer"):
        parallel.initialize("127.0.0.1:1", cpu_collectives=None)
    assert len(calls) == 1


if __name__ == "__main__":
    _worker(int(sys.argv[1]), sys.argv[2], sys.argv[3])
