"""Tests for jtricks.train._early_stopping on scripted validation curves."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks.train._early_stopping import early_stopping


def _reference(curve, patience, min_delta, mode):
    """Plain-Python oracle: (stop epoch or None, best epoch)."""
    sign = 1 if mode == "min" else -1
    best, best_epoch, wait = np.inf, -1, 0  # best in the signed space
    for epoch, v in enumerate(curve):
        if sign * v < best - min_delta:
            best, best_epoch, wait = sign * v, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return None, best_epoch


@functools.partial(jax.jit, static_argnames="mode")
def _scan(curve, patience, min_delta, mode):
    """Feeds the curve; params at epoch e are e * ones. One compilation per mode."""
    stopper = early_stopping(patience, min_delta, mode)

    def body(state, inputs):
        epoch, value = inputs
        state = stopper.update(state, value, {"w": jnp.full((2,), epoch, jnp.float32)})
        return state, state.stop

    state = stopper.init({"w": jnp.full((2,), -1.0)})
    return jax.lax.scan(body, state, (jnp.arange(curve.shape[0]), curve))


def _run(curve, patience, min_delta=0.0, mode="min"):
    """Returns the final state and the epoch at which ``stop`` was first set (or None)."""
    state, stops = _scan(jnp.asarray(curve, jnp.float32), patience, min_delta, mode)
    stops = np.asarray(stops)
    return state, (int(np.argmax(stops)) if stops.any() else None)


#                 epoch: 0    1    2    3    4    5    6    7    8    9
LOSS = np.array([1.0, 0.8, 0.6, 0.55, 0.56, 0.54, 0.57, 0.58, 0.59, 0.6])


@pytest.mark.parametrize(
    "curve, patience, min_delta, mode, stop, best",
    [
        (LOSS, 3, 0.0, "min", 8, 5),       # best 0.54 at epoch 5, stops at 5 + 3
        (LOSS, 2, 0.0, "min", 7, 5),
        (LOSS, 2, 0.02, "min", 5, 3),      # 0.54 < 0.55 - 0.02 is false: best stays at epoch 3
        (LOSS, 0, 0.0, "min", 4, 3),       # patience 0: first non-improving epoch
        (LOSS, 20, 0.0, "min", None, 5),   # never stops
        (1 - LOSS, 3, 0.0, "max", 8, 5),   # accuracy-like curve
    ],
)
def test_scripted_curve(curve, patience, min_delta, mode, stop, best):
    state, stop_epoch = _run(curve, patience, min_delta, mode)
    assert stop_epoch == stop
    assert int(state.best_epoch) == best
    np.testing.assert_allclose(state.best_value, curve[best], rtol=1e-6)
    np.testing.assert_array_equal(state.best_params["w"], np.full(2, float(best)))
    # the oracle agrees
    assert _reference(curve, patience, min_delta, mode) == (stop, best)


def test_frozen_after_stop_and_nan_never_improves():
    curve = np.array([1.0, np.nan, 0.9, 0.1, 0.05])
    state, stop_epoch = _run(curve, patience=1)
    assert stop_epoch == 1
    assert int(state.best_epoch) == 0 and float(state.best_value) == 1.0
    assert int(state.epoch) == 2  # later values are ignored


def test_vmap_several_curves_each_stops_at_its_own_epoch():
    rng = np.random.default_rng(0)
    curves = np.stack([LOSS, 1.2 - LOSS, np.linspace(1, 0, 10), rng.uniform(size=10)]).astype(np.float32)
    stopper = early_stopping(patience=2)
    params = {"w": jnp.zeros((4, 3))}
    state = jax.vmap(stopper.init)(params)
    update = jax.jit(jax.vmap(stopper.update))
    for epoch in range(curves.shape[1]):
        state = update(state, curves[:, epoch], {"w": jnp.full((4, 3), float(epoch))})
    for i, curve in enumerate(curves):
        stop_epoch, best_epoch = _reference(curve, 2, 0.0, "min")
        assert bool(state.stop[i]) == (stop_epoch is not None)
        assert int(state.best_epoch[i]) == best_epoch
        np.testing.assert_array_equal(state.best_params["w"][i], np.full(3, float(best_epoch)))
    assert len(set(np.asarray(state.best_epoch).tolist())) > 1


def test_traced_patience_does_not_recompile():
    def run(patience, curve):
        stopper = early_stopping(patience)
        state = stopper.init(jnp.zeros(()))
        state, _ = jax.lax.scan(lambda s, v: (stopper.update(s, v, v), None), state, curve)
        return state.best_epoch, state.stop

    sweep = jax.jit(jax.vmap(run, in_axes=(0, None)))
    best, stop = sweep(jnp.array([0, 1, 3, 20]), jnp.asarray(LOSS))
    np.testing.assert_array_equal(best, [3, 3, 5, 5])
    np.testing.assert_array_equal(stop, [True, True, True, False])
    sweep(jnp.array([2, 4, 5, 6]), jnp.asarray(LOSS))
    assert sweep._cache_size() == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [({"patience": 3, "mode": "minimum"}, "mode='minimum'"), ({"patience": -1}, "patience=-1"),
     ({"patience": 1, "min_delta": -0.1}, "min_delta=-0.1")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        early_stopping(**kwargs)
