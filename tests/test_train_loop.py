"""fit and the engine: training, validation, history files, value= for plateau
schedules, early stopping's mode, divergence, typed keys, make_run == fit."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo

from jtricks.train import (TrainState, classifier_eval, classifier_loss, early_stopping, fit,
                           make_epoch, make_run)

from _train_helpers import blobs, tiny_mlp

X, Y = blobs()
TRAIN, VAL = (X[:180], Y[:180]), (X[180:], Y[180:])


def _state(model, tx, seed=0):
    params, model_state = model.init(jax.random.PRNGKey(seed), (4,))
    return TrainState.create(params=params, tx=tx, key=seed + 1, model_state=model_state)


def _fit(tx, epochs, model=None, **kw):
    model = model or tiny_mlp(dropout=0.2)
    kw.setdefault("progress", False)
    return fit(_state(model, tx), TRAIN, loss_fn=classifier_loss(model), tx=tx, epochs=epochs,
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
        state, _, metrics = make_epoch(loss_fn=loss_fn, tx=tx, batch_size=32)(
            state, TRAIN, jax.random.PRNGKey(3))
        return state.params, metrics["loss"]

    lrs = jnp.array([0.0, 0.1, 0.5])
    params, losses = jax.jit(jax.vmap(run))(lrs)
    one_params, one_losses = jax.jit(run)(lrs[1])
    np.testing.assert_allclose(losses[1], one_losses, rtol=1e-5)
    np.testing.assert_allclose(params["w1"][1], one_params["w1"], rtol=1e-5, atol=1e-6)
    init_params, _ = model.init(jax.random.PRNGKey(0), (4,))
    np.testing.assert_allclose(params["w1"][0], init_params["w1"], rtol=1e-6)  # lr = 0
    assert losses.shape == (3, 180 // 32)


def _plateau_fit(tx, epochs, model):
    """fit on batches of 36 that cover the 180 training examples exactly: with a
    learning rate of 0 every epoch's mean loss is the same number (up to rounding, which
    the schedules' rtol ignores). Returns the result and the scale after every epoch."""
    scales = []
    result = fit(_state(model, tx), TRAIN, loss_fn=classifier_loss(model), tx=tx,
                 epochs=epochs, batch_size=36, data_key=7, progress=False,
                 callbacks=[lambda e, row, state: scales.append(float(state.opt_state[1].scale))])
    return result, scales


@pytest.mark.parametrize("plateau", [jo.reduce_on_plateau, optax.contrib.reduce_on_plateau],
                         ids=["jtricks", "optax.contrib"])
def test_fit_passes_the_loss_as_value_to_plateau_schedules(plateau):
    """Nothing improves after epoch 1, so a patience-1 schedule with one evaluation per
    epoch (accumulation_size = 5 steps) halves the scale at every epoch after the first
    but for the cooldown epoch after each reduction: optax's meaning."""
    tx = optax.chain(optax.sgd(0.0), plateau(factor=0.5, patience=1, cooldown=1,
                                             accumulation_size=5))
    _, scales = _plateau_fit(tx, 6, tiny_mlp())
    assert scales == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_plateau_schedules_give_the_same_scales_and_parameters_inside_fit():
    def run(plateau):
        tx = jo.chain(jo.adam(0.3), plateau(factor=0.5, patience=1, accumulation_size=5))
        result, scales = _plateau_fit(tx, 10, tiny_mlp(hidden=8))
        return result.state.params, scales

    (ours, our_scales), (theirs, their_scales) = (run(jo.reduce_on_plateau),
                                                  run(optax.contrib.reduce_on_plateau))
    assert our_scales == their_scales
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_early_stopping_follows_the_monitored_mode():
    """fit(monitor="val_accuracy") maximises: an early stopping built to minimise is
    refused, one built with mode="max" keeps the epoch of the best accuracy."""
    with pytest.raises(ValueError, match="mode='max'"):
        _fit(optax.adam(1e-2), 3, monitor="val_accuracy", early_stopping=early_stopping(5))
    result = _fit(optax.adam(1e-2), 8, monitor="val_accuracy",
                  early_stopping=early_stopping(8, mode="max"))
    best = max(result.history, key=lambda r: r["val_accuracy"])
    assert result.history[-1]["best_epoch"] == best["epoch"] > 1
    model = tiny_mlp(dropout=0.2)
    restored = classifier_eval(model)(result.state.params, result.state.model_state, VAL)
    assert float(restored["accuracy"].mean()) == pytest.approx(best["val_accuracy"])


def test_make_run_is_fit_compiled():
    """The compiled run (what sweeps use) and fit give the same numbers: the same
    parameters bit for bit, though fit's order is a program of its own and its epoch
    is compiled at XLA's level 1 (jtricks/_xla.py), make_run at the default level."""
    model, tx = tiny_mlp(dropout=0.2), optax.adam(1e-2)
    result = _fit(tx, 4, model=model)
    run = jax.jit(make_run(loss_fn=classifier_loss(model), tx=tx, batch_size=32, epochs=4,
                           eval_fn=classifier_eval(model)))
    out = run(_state(model, tx), TRAIN, VAL, jax.random.PRNGKey(7))
    np.testing.assert_allclose(out.curves["val_loss"], [r["val_loss"] for r in result.history],
                               rtol=1e-5)
    for a, b in zip(jax.tree.leaves(out.state.params), jax.tree.leaves(result.state.params)):
        np.testing.assert_array_equal(a, b)


def test_typed_and_raw_keys_train_alike():
    model, tx = tiny_mlp(dropout=0.5), optax.sgd(0.1)
    params, model_state = model.init(jax.random.PRNGKey(0), (4,))
    typed = TrainState.create(params=params, tx=tx, key=jax.random.key(3), model_state=model_state)
    raw = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(3),
                            model_state=model_state)
    kw = dict(loss_fn=classifier_loss(model), tx=tx, epochs=2, batch_size=32, progress=False)
    a, b = fit(typed, TRAIN, **kw), fit(raw, TRAIN, **kw)
    assert jax.dtypes.issubdtype(a.state.key.dtype, jax.dtypes.prng_key)
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_array_equal(x, y)


def test_swapped_loss_and_optimizer_are_refused():
    tx = optax.sgd(0.1)
    with pytest.raises(TypeError, match="tx="):
        fit(_state(tiny_mlp(), tx), TRAIN, loss_fn=tx, tx=classifier_loss(tiny_mlp()),
            epochs=1, batch_size=8, progress=False)


@pytest.mark.parametrize("bad", [dict(epochs=-1), dict(batch_size=0)])
def test_bad_arguments_raise(bad):
    kw = dict(epochs=1, batch_size=8) | bad
    tx = optax.sgd(0.1)
    with pytest.raises(ValueError, match=next(iter(bad))):
        fit(_state(tiny_mlp(), tx), TRAIN, loss_fn=classifier_loss(tiny_mlp()), tx=tx,
            progress=False, **kw)


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
    result = fit(_state(model, tx), (bad_x, Y[:180]), loss_fn=classifier_loss(model), tx=tx,
                 epochs=3,
                 batch_size=32, data_key=7, val_data=VAL, eval_fn=classifier_eval(model),
                 progress=False)
    assert result.stop_reason is None
    assert sum(r.get("skipped_steps", 0) for r in result.history) >= 1
    assert result.history[-1]["val_accuracy"] > 0.6
