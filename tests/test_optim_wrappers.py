"""jtricks.optim wrappers: masked, apply_if_finite, accumulate_gradients, reduce_on_plateau."""

import jax
import numpy as np
import optax
import pytest

import jtricks.optim as jo

_RNG = np.random.default_rng(3)
_GRADS = {"w": _RNG.normal(size=(12, 3, 2)).astype(np.float32),
          "b": _RNG.normal(size=(12, 2)).astype(np.float32)}
_PARAMS = {"w": np.ones((3, 2), np.float32), "b": np.ones(2, np.float32)}


def _scan_updates(*txs, grads=_GRADS, values=None):
    """Feeds each transformation the same gradients (and monitored values) step by step;
    returns ``(updates, states)`` per transformation, all stacked over steps (one jit)."""
    values = np.zeros(len(grads["w"]), np.float32) if values is None else values

    def scan(tx, grads, values):
        def body(state, gv):
            g, v = gv
            u, state = tx.update(g, state, _PARAMS, value=v)
            return state, (u, state)

        return jax.lax.scan(body, tx.init(_PARAMS), (grads, values))[1]

    return jax.jit(lambda g, v: [scan(tx, g, v) for tx in txs])(grads, values)


def _close(a, b, rtol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("mask", [{"w": True, "b": False}, lambda p: {"w": True, "b": False}],
                         ids=["tree", "callable"])
def test_masked_matches_optax_masked(mask):
    (got, _), (want, _) = _scan_updates(jo.masked(jo.adam(0.1), mask),
                                        optax.masked(optax.adam(0.1), mask))
    _close(got, want)
    np.testing.assert_array_equal(got["b"], _GRADS["b"])  # passed through untouched


def test_apply_if_finite_skips_and_counts_like_optax():
    grads = {k: v.copy() for k, v in _GRADS.items()}
    grads["w"][2, 0, 0] = np.nan
    grads["b"][3, 1] = np.inf
    for step in (6, 7, 8):  # three in a row: the third goes through (max 2)
        grads["w"][step, 1, 1] = np.nan
    (got, state), (want, ref_state) = _scan_updates(
        jo.apply_if_finite(jo.sgd(0.1, 0.9), 2), optax.apply_if_finite(optax.sgd(0.1, 0.9), 2),
        grads=grads)
    np.testing.assert_array_equal(np.isnan(got["w"]), np.isnan(want["w"]))
    _close(jax.tree.map(np.nan_to_num, got), jax.tree.map(np.nan_to_num, want))
    np.testing.assert_array_equal(got["w"][2], 0.0)  # skipped step: zero update
    np.testing.assert_array_equal(state.total_notfinite, ref_state.total_notfinite)
    np.testing.assert_array_equal(state.notfinite_count, ref_state.notfinite_count)
    assert int(state.total_notfinite[-1]) == 5


def test_accumulate_gradients_matches_multisteps_and_the_mean():
    k = 3
    (got, state), (want, _) = _scan_updates(
        jo.accumulate_gradients(jo.adam(0.1), k),
        optax.MultiSteps(optax.adam(0.1), k).gradient_transformation())
    _close(got, want, rtol=1e-5)
    # The applied steps equal adam on the mean of each group of k gradients.
    means = jax.tree.map(lambda g: g.reshape(-1, k, *g.shape[1:]).mean(axis=1), _GRADS)
    [(direct, _)] = _scan_updates(jo.adam(0.1), grads=means)
    _close(jax.tree.map(lambda u: u[k - 1::k], got), direct, rtol=1e-5)
    for i in range(len(_GRADS["w"])):
        if i % k != k - 1:
            np.testing.assert_array_equal(got["w"][i], 0.0)
    np.testing.assert_array_equal(state.gradient_step[-1], len(_GRADS["w"]) // k)


def test_accumulate_gradients_every_1_is_the_inner_optimizer():
    (got, _), (want, _) = _scan_updates(jo.accumulate_gradients(jo.sgd(0.1, 0.9), 1),
                                        jo.sgd(0.1, 0.9))
    _close(got, want)


def test_reduce_on_plateau_matches_optax():
    values = np.array([5, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3], np.float32)
    kw = dict(factor=0.5, patience=2, rtol=1e-4, atol=0.0, cooldown=1, accumulation_size=1)
    (got, state), (want, ref_state) = _scan_updates(
        jo.reduce_on_plateau(**kw), optax.contrib.reduce_on_plateau(**kw), values=values)
    _close(got, want)
    np.testing.assert_allclose(state.scale, ref_state.scale)
    np.testing.assert_allclose(state.best_value, ref_state.best_value)
    assert float(state.scale[-1]) < 1.0


def test_reduce_on_plateau_needs_value():
    tx = jo.reduce_on_plateau()
    with pytest.raises(TypeError, match="value"):
        tx.update(_PARAMS, tx.init(_PARAMS))


def test_wrappers_reject_non_transformations():
    with pytest.raises(TypeError, match="inner"):
        jo.masked(object(), {"w": True})
    with pytest.raises(TypeError, match="every_k"):
        jo.accumulate_gradients(jo.sgd(0.1), 2.5)
