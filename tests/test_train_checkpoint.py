"""Checkpoints: exact resume after a kill, and damaged checkpoints skipped with a message."""

import os

import jax
import numpy as np
import optax
import pytest

from jtricks.train import (Checkpointer, CheckpointError, TrainState, classifier_eval,
                           classifier_loss, fit)

from _train_helpers import blobs, tiny_mlp

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

X, Y = blobs()
MODEL = tiny_mlp(dropout=0.3)  # dropout: the keys must resume exactly too
TX = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
LOSS, EVAL = classifier_loss(MODEL), classifier_eval(MODEL)  # built once: compiled once


class Killed(Exception):
    pass


def _run(epochs, ckpt=None, resume=False, kill_after=None, key=1):
    params, model_state = MODEL.init(jax.random.PRNGKey(0), (4,))
    state = TrainState.create(params=params, tx=TX, key=key, model_state=model_state)

    def kill(epoch, row, state):
        if epoch == kill_after:
            raise Killed

    return fit(state, (X[:180], Y[:180]), loss_fn=LOSS, tx=TX, epochs=epochs,
               batch_size=32, data_key=5, val_data=(X[180:], Y[180:]),
               eval_fn=EVAL, checkpoint_dir=ckpt, checkpoint_every=2,
               resume=resume, progress=False, callbacks=[kill])


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
