"""Checkpoints: exact resume after a kill, and damaged checkpoints skipped with a message."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from jtricks.train import (Checkpointer, CheckpointError, TrainState, classifier_eval,
                           classifier_loss, fit)

from jtricks.train._checkpoint import LOCK_NAME

from _train_helpers import blobs, tiny_mlp

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

X, Y = blobs()
MODEL = tiny_mlp(dropout=0.3)  # dropout: the keys must resume exactly too
TX = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
LOSS, EVAL = classifier_loss(MODEL), classifier_eval(MODEL)  # built once: compiled once


class Killed(Exception):
    pass


def _run(epochs, ckpt=None, resume=False, kill_after=None, key=1, restart=False,
         run_config=None, progress=False):
    params, model_state = MODEL.init(jax.random.PRNGKey(0), (4,))
    state = TrainState.create(params=params, tx=TX, key=key, model_state=model_state)

    def kill(epoch, row, state):
        if epoch == kill_after:
            raise Killed

    return fit(state, (X[:180], Y[:180]), loss_fn=LOSS, tx=TX, epochs=epochs,
               batch_size=32, data_key=5, val_data=(X[180:], Y[180:]),
               eval_fn=EVAL, checkpoint_dir=ckpt, checkpoint_every=2,
               resume=resume, restart=restart, run_config=run_config, progress=progress,
               callbacks=[kill])


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def uninterrupted():
    return _run(6)


def test_killed_and_resumed_run_ends_with_identical_state(tmp_path, uninterrupted):
    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(Killed):
        _run(6, ckpt, kill_after=5)  # killed after epoch 5; last checkpoint is epoch 4
    assert Checkpointer(ckpt).all_epochs() == [2, 4]
    resumed = _run(6, ckpt, resume=True)
    _assert_same(resumed.state, uninterrupted.state)  # params, opt state, keys, step
    assert [r["epoch"] for r in resumed.history] == list(range(1, 7))
    assert resumed.history[-1]["val_loss"] == uninterrupted.history[-1]["val_loss"]


def test_typed_keys_checkpoint_and_resume_exactly(tmp_path):
    """TrainState.create(key=jax.random.key(...)): the typed key is saved as its raw
    data and comes back typed, and the resumed run ends bit-identical."""
    key = jax.random.key(1)
    whole = _run(4, key=key)
    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(Killed):
        _run(4, ckpt, kill_after=3, key=key)
    resumed = _run(4, ckpt, resume=True, key=key)
    assert jax.dtypes.issubdtype(resumed.state.key.dtype, jax.dtypes.prng_key)
    assert jax.random.key_impl(resumed.state.key) == jax.random.key_impl(key)
    _assert_same(jax.random.key_data(resumed.state.key), jax.random.key_data(whole.state.key))
    _assert_same(resumed.state.params, whole.state.params)


def test_corrupt_newest_checkpoint_is_reported_and_skipped(tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt")
    _run(4, ckpt)
    # garble every data file of the newest checkpoint
    newest = os.path.join(ckpt, "4", "state")
    damaged = 0
    for root, _, files in os.walk(newest):
        for name in files:
            if "/d/" in os.path.join(root, name) + "/" or root.endswith("/d"):
                path = os.path.join(root, name)
                data = bytearray(open(path, "rb").read())
                data[len(data) // 2:] = b"\x00" * (len(data) - len(data) // 2)
                open(path, "wb").write(bytes(data))
                damaged += 1
    assert damaged
    capsys.readouterr()
    checkpointer = Checkpointer(ckpt)
    with pytest.raises(CheckpointError):
        checkpointer.restore(4, _target())
    epoch, tree, meta = checkpointer.restore_latest(_target())
    checkpointer.close()
    assert epoch == 2 and meta["epoch"] == 2
    assert "skipping checkpoint" in capsys.readouterr().err


def test_truncated_metadata_and_interrupted_save_are_skipped(tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt")
    checkpointer = Checkpointer(ckpt)
    tree = {"w": np.arange(6.0).reshape(2, 3)}
    checkpointer.save(1, tree, {"epoch": 1})
    checkpointer.save(2, {"w": tree["w"] + 1}, {"epoch": 2})
    with open(os.path.join(ckpt, "2", "state", "_METADATA"), "r+b") as f:
        f.truncate(10)
    os.makedirs(os.path.join(ckpt, "3.orbax-checkpoint-tmp-123"))
    checkpointer.close()
    checkpointer = Checkpointer(ckpt)
    epoch, restored, _ = checkpointer.restore_latest(tree)
    checkpointer.close()
    assert epoch == 1
    np.testing.assert_array_equal(restored["w"], tree["w"])
    err = capsys.readouterr().err
    assert "incomplete checkpoint" in err and "2 is unreadable" in err


def _target():
    params, model_state = MODEL.init(jax.random.PRNGKey(0), (4,))
    state = TrainState.create(params=params, tx=TX, key=1, model_state=model_state)
    return {"state": state, "early_stopping": None, "average": None}


# -- fault injection: every damage ends in a completed, bit-identical run or a clear refusal


def _numbers(history):
    """The history without its timings."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "steps_per_s")}
            for row in history]


def _data_files(step_dir):
    """The array data files of a checkpoint (orbax's OCDBT ``d/`` folders)."""
    out = []
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        if os.path.basename(root) == "d":
            out += [os.path.join(root, name) for name in files]
    assert out
    return out


def _flip_bytes(step_dir):
    for path in _data_files(step_dir):
        data = bytearray(open(path, "rb").read())
        for i in range(len(data) // 3, len(data) // 3 + 8):
            data[i] ^= 0xFF
        open(path, "wb").write(bytes(data))


def _truncate(step_dir):
    for path in _data_files(step_dir):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)


def _delete_metadata(step_dir):
    os.remove(os.path.join(step_dir, "meta", "metadata"))


@pytest.mark.parametrize("damage", [_flip_bytes, _truncate, _delete_metadata])
def test_resume_after_corrupt_newest_checkpoint_completes_bit_identical(
        tmp_path, uninterrupted, damage, capsys):
    """The damaged epoch is moved aside (not saved over: orbax refuses an existing
    step), the run resumes from the one before and ends as the uninterrupted run."""
    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(Killed):
        _run(6, ckpt, kill_after=5)
    damage(os.path.join(ckpt, "4"))
    capsys.readouterr()
    resumed = _run(6, ckpt, resume=True)
    err = capsys.readouterr().err
    assert f"moved to {ckpt}/4.corrupt-1" in err
    _assert_same(resumed.state, uninterrupted.state)
    assert _numbers(resumed.history) == _numbers(uninterrupted.history)
    assert os.path.isdir(os.path.join(ckpt, "4.corrupt-1"))
    checkpointer = Checkpointer(ckpt)
    assert checkpointer.all_epochs() == [2, 4, 6]
    checkpointer.close()
    again = _run(6, ckpt, resume=True)  # a later --resume finds epoch 6: nothing to do
    _assert_same(again.state, uninterrupted.state)


def test_every_checkpoint_corrupt_refuses_and_restart_starts_over(tmp_path, uninterrupted):
    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(Killed):
        _run(6, ckpt, kill_after=5)
    for epoch in (2, 4):
        _truncate(os.path.join(ckpt, str(epoch)))
    with pytest.raises(CheckpointError, match="no usable checkpoint .* every one is damaged"
                                              ".*restart=True"):
        _run(6, ckpt, resume=True)
    with pytest.raises(CheckpointError, match="no usable checkpoint"):  # and again: no loop
        _run(6, ckpt, resume=True)
    fresh = _run(6, ckpt, resume=True, restart=True)
    _assert_same(fresh.state, uninterrupted.state)
    assert os.path.isdir(os.path.join(ckpt, "archived-1", "4.corrupt-1"))
    checkpointer = Checkpointer(ckpt)
    assert checkpointer.all_epochs() == [2, 4, 6]
    checkpointer.close()


def test_fresh_run_refuses_a_directory_with_checkpoints(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    _run(2, ckpt)
    with pytest.raises(CheckpointError, match="already holds checkpoints; pass resume=True"):
        _run(2, ckpt)
    _run(2, ckpt, restart=True)
    assert os.path.isdir(os.path.join(ckpt, "archived-1", "2"))


def test_resume_with_another_run_config_refuses_naming_the_difference(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    config = {"model": "mlp", "hidden": [16], "lr": 0.01, "seed": 0}
    _run(2, ckpt, run_config=config)
    with pytest.raises(CheckpointError) as info:
        _run(4, ckpt, resume=True, run_config=dict(config, seed=1, lr=0.1))
    message = str(info.value)
    assert ("another run configuration (checkpoint -> this run: lr: 0.01 -> 0.1; "
            "seed: 0 -> 1)") in message
    assert "\n" not in message
    assert os.listdir(ckpt) == ["2"]  # nothing moved aside, the lock released
    _run(4, ckpt, resume=True, run_config=config)  # the same configuration resumes
    other = dict(config, seed=1)
    fresh = _run(2, ckpt, resume=True, restart=True, run_config=other)  # or starts over
    assert [row["epoch"] for row in fresh.history] == [1, 2]
    assert sorted(os.listdir(os.path.join(ckpt, "archived-1"))) == ["2", "4"]


def test_resume_with_another_model_refuses_naming_the_array(tmp_path):
    """Without a run_config the arrays' layout still tells another model from damage."""
    ckpt = str(tmp_path / "ckpt")
    _run(2, ckpt)
    other = tiny_mlp(hidden=8, dropout=0.3)
    params, model_state = other.init(jax.random.PRNGKey(0), (4,))
    state = TrainState.create(params=params, tx=TX, key=1, model_state=model_state)
    with pytest.raises(CheckpointError, match=r"another model or optimizer \(.*\['b1'\] "
                                              r"float32\[16\] in the checkpoint, .*\[8\]"):
        fit(state, (X[:180], Y[:180]), loss_fn=classifier_loss(other), tx=TX, epochs=4,
            batch_size=32, checkpoint_dir=ckpt, resume=True, progress=False)
    assert sorted(os.listdir(ckpt)) == ["2"]


def test_tampered_history_is_detected(tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt")
    _run(4, ckpt)
    path = os.path.join(ckpt, "4", "meta", "metadata")
    meta = json.load(open(path))
    meta["history"][0]["val_loss"] = 0.0
    json.dump(meta, open(path, "w"))
    checkpointer = Checkpointer(ckpt)
    with pytest.raises(CheckpointError, match="metadata .* does not match its digest"):
        checkpointer.restore(4, _target())
    capsys.readouterr()
    epoch, _, restored_meta = checkpointer.restore_latest(_target())
    checkpointer.close()
    assert epoch == 2 and restored_meta["history"][0]["val_loss"] != 0.0
    assert "4 is corrupt" in capsys.readouterr().err


def test_tampered_arrays_with_a_recomputed_array_digest_are_detected(tmp_path):
    """The digest covers arrays and metadata together: swapping the stored metadata of
    another checkpoint in (its own meta digest valid) does not pass."""
    ckpt = str(tmp_path / "ckpt")
    _run(4, ckpt)
    meta2 = open(os.path.join(ckpt, "2", "meta", "metadata")).read()
    open(os.path.join(ckpt, "4", "meta", "metadata"), "w").write(meta2)
    checkpointer = Checkpointer(ckpt)
    with pytest.raises(CheckpointError, match="4 is corrupt"):
        checkpointer.restore(4, _target())
    checkpointer.close()


def test_a_live_writer_holds_the_directory(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    holder = Checkpointer(ckpt)
    holder.acquire()  # this process, another Checkpointer
    with pytest.raises(CheckpointError, match=r"in use by this process \(lock .*\.lock\); wait"):
        _run(2, ckpt)
    holder.close()
    assert not os.path.exists(os.path.join(ckpt, LOCK_NAME))
    code = ("import sys, time; from jtricks.train import Checkpointer; "
            "c = Checkpointer(sys.argv[1]); c.acquire(); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, ckpt], stdout=subprocess.PIPE,
                            text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=f"in use by process {proc.pid} on "):
            _run(2, ckpt)
    finally:
        proc.kill()
        proc.wait()
    # killed: its lock is stale (dead PID on this host) and taken over
    result = _run(2, ckpt)
    assert len(result.history) == 2
    assert not os.path.exists(os.path.join(ckpt, LOCK_NAME))


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt")
    os.makedirs(ckpt)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(os.path.join(ckpt, LOCK_NAME), "w") as f:
        json.dump({"pid": dead.pid, "host": socket.gethostname(), "time": 0}, f)
    capsys.readouterr()
    _run(2, ckpt)
    assert f"taking over the lock {ckpt}/{LOCK_NAME} of process {dead.pid}" in \
        capsys.readouterr().err


def test_interrupted_save_leaves_a_resumable_directory(tmp_path, uninterrupted, monkeypatch):
    """Ctrl-C inside orbax's write of epoch 4: the KeyboardInterrupt reaches the
    caller, the lock is released, and the next resume ends bit-identical."""
    import orbax.checkpoint as ocp

    ckpt = str(tmp_path / "ckpt")
    original = ocp.handlers.JsonCheckpointHandler.async_save
    calls = []

    async def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint: epoch 4
            raise KeyboardInterrupt
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "async_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(6, ckpt)
    monkeypatch.undo()
    assert sorted(os.listdir(ckpt)) == ["2", "4.orbax-checkpoint-tmp"]
    resumed = _run(6, ckpt, resume=True)
    _assert_same(resumed.state, uninterrupted.state)
    assert os.path.isdir(os.path.join(ckpt, "4.incomplete-1"))


def test_max_to_keep_must_be_at_least_1(tmp_path):
    with pytest.raises(ValueError, match="max_to_keep=0 must be >= 1"):
        Checkpointer(str(tmp_path), max_to_keep=0)


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_unusable_checkpoint_directory_is_refused_before_training(tmp_path, kind):
    ckpt = tmp_path / "ckpt"
    if kind == "file":
        ckpt.write_text("not a directory")
        match = "is a file"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes everywhere")
        tmp_path.chmod(0o500)
        match = "cannot create checkpoint directory"
    try:
        with pytest.raises(CheckpointError, match=match):
            _run(2, str(ckpt))
    finally:
        tmp_path.chmod(0o700)


def test_ctrl_c_during_a_save_completes_it_then_stops(tmp_path, uninterrupted, monkeypatch):
    """A real SIGINT inside orbax's write (which runs under asyncio.run, where SIGINT
    becomes a cancellation orbax may swallow): the save completes, then
    KeyboardInterrupt reaches the caller, and the resumed run ends bit-identical."""
    import signal

    import orbax.checkpoint as ocp

    ckpt = str(tmp_path / "ckpt")
    original = ocp.handlers.JsonCheckpointHandler.async_save
    calls = []

    async def ctrl_c(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # epoch 4
            os.kill(os.getpid(), signal.SIGINT)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "async_save", ctrl_c)
    # Python's default handler, as in a fresh process: the save's hold applies only with it
    # in place, and an earlier test of this xdist worker may have left another (asyncio's
    # loop.add_signal_handler, e.g. nbclient's). Whether that caused the rare "DID NOT
    # RAISE" of full runs is not established (a notebook test run just before, in one
    # process, did not reproduce it): the handler found is printed for the next failure.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"SIGINT handler before this test: {previous!r}")
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(6, ckpt)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert sorted(os.listdir(ckpt)) == ["2", "4"]  # 4 complete, the lock released
    resumed = _run(6, ckpt, resume=True)
    _assert_same(resumed.state, uninterrupted.state)
