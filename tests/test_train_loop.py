"""fit: training, validation, history files, plateau reduction, divergence, resume."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo

from jtricks.train import (ReduceLROnPlateau, TrainState, classifier_eval, classifier_loss,
                           fit, make_epoch)

from _train_helpers import blobs, tiny_mlp

X, Y = blobs()
TRAIN, VAL = (X[:180], Y[:180]), (X[180:], Y[180:])


def _state(model, tx, seed=0):
    params, model_state = model.init(jax.random.PRNGKey(seed), (4,))
    return TrainState.create(params=params, tx=tx, key=seed + 1, model_state=model_state)


def _fit(tx, epochs, model=None, **kw):
    model = model or tiny_mlp(dropout=0.2)
    kw.setdefault("progress", False)
    return fit(_state(model, tx), tx, classifier_loss(model), TRAIN, epochs=epochs,
               batch_size=32, data_key=7, val_data=VAL, eval_fn=classifier_eval(model), **kw)


def test_fit_learns_and_writes_history(tmp_path):
    result = _fit(optax.adam(1e-2), 8, history_dir=str(tmp_path))
    rows = result.history
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert rows[-1]["step"] == 8 * (180 // 32) == int(result.state.step)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_accuracy"] > 0.8
    assert result.stop_reason is None
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 9))
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    for column in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                   "grad_norm", "steps_per_s"):
        assert column in header


def test_epoch_is_deterministic_and_vmaps_over_learning_rates():
    model = tiny_mlp()
    loss_fn = classifier_loss(model)

    def run(lr):
        tx = optax.sgd(lr)
        state = _state(model, tx)
        state, _, metrics = make_epoch(loss_fn, tx, 32)(state, TRAIN, jax.random.PRNGKey(3))
        return state.params, metrics["loss"]

    lrs = jnp.array([0.0, 0.1, 0.5])
    params, losses = jax.jit(jax.vmap(run))(lrs)
    one_params, one_losses = jax.jit(run)(lrs[1])
    np.testing.assert_allclose(losses[1], one_losses, rtol=1e-5)
    np.testing.assert_allclose(params["w1"][1], one_params["w1"], rtol=1e-5, atol=1e-6)
    init_params, _ = model.init(jax.random.PRNGKey(0), (4,))
    np.testing.assert_allclose(params["w1"][0], init_params["w1"], rtol=1e-6)  # lr = 0
    assert losses.shape == (3, 180 // 32)


def test_plateau_reduction_scales_the_learning_rate():
    plateau = ReduceLROnPlateau(factor=0.5, patience=1)
    p = {"scale": 1.0, "best": None, "bad_epochs": 0}
    for value in (1.0, 0.9, 0.95, 0.95, 0.95, 0.95):
        p = plateau.step(p, value, "min")
    assert p["scale"] == 0.25 and p["best"] == 0.9
    # inside fit: a learning rate so large nothing improves, and scale drops
    result = _fit(optax.sgd(0.0), 4, reduce_lr=ReduceLROnPlateau(factor=0.1, patience=0))
    assert [r["lr_scale"] for r in result.history] == pytest.approx([1.0, 1.0, 0.1, 0.01])


@pytest.mark.parametrize("bad", [dict(epochs=-1), dict(batch_size=0)])
def test_bad_arguments_raise(bad):
    kw = dict(epochs=1, batch_size=8) | bad
    tx = optax.sgd(0.1)
    with pytest.raises(ValueError, match=next(iter(bad))):
        fit(_state(tiny_mlp(), tx), tx, classifier_loss(tiny_mlp()), TRAIN, progress=False, **kw)


def test_nan_loss_stops_with_epoch_and_gradient_norm(capsys):
    tx = optax.sgd(1e6)  # diverges within a few steps
    result = _fit(tx, 5, progress=True)
    assert result.stop_reason is not None
    assert "epoch 1" in result.stop_reason and "gradient norm" in result.stop_reason
    assert "diverged in epoch 1" in capsys.readouterr().err
    assert result.history == []  # the returned state is the last finite one
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(result.state.params))


def test_apply_if_finite_skips_nan_steps():
    bad_x = X[:180].copy()
    bad_x[5] = np.nan  # one poisoned example: every batch holding it has a NaN loss
    model = tiny_mlp()
    tx = jo.apply_if_finite(jo.adam(1e-2), max_consecutive_errors=1000)
    result = fit(_state(model, tx), tx, classifier_loss(model), (bad_x, Y[:180]), epochs=3,
                 batch_size=32, data_key=7, val_data=VAL, eval_fn=classifier_eval(model),
                 progress=False)
    assert result.stop_reason is None
    assert sum(r.get("skipped_steps", 0) for r in result.history) >= 1
    assert result.history[-1]["val_accuracy"] > 0.6
