"""Tests for jtricks.train._averaging: ema, swa, ensemble_predict."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks.train._averaging import ema, ensemble_predict, params_like, swa

SNAPSHOTS = [{"w": jnp.full((2, 3), float(i)), "b": jnp.array([i**2, -i], jnp.float32)} for i in range(1, 6)]


def _feed(averager, snapshots, init):
    update = jax.jit(averager.update)
    state = averager.init(init)
    for p in snapshots:
        state = update(p, state)
    return state


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 1.0])
def test_ema_closed_form_and_optax(decay):
    init = jax.tree.map(jnp.zeros_like, SNAPSHOTS[0])
    state = _feed(ema(decay), SNAPSHOTS, init)
    # closed form: average = sum_k (1 - d) d^(K - k) p_k  (+ d^K * init = 0)
    K = len(SNAPSHOTS)
    expected = jax.tree.map(lambda *ps: sum((1 - decay) * decay ** (K - 1 - k) * p for k, p in enumerate(ps)),
                            *SNAPSHOTS)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6), state.average, expected)
    # oracle: optax.ema without debiasing (its state starts at zeros, like ``init`` here)
    tx = optax.ema(decay, debias=False)
    opt_state = tx.init(init)
    for p in SNAPSHOTS:
        ref, opt_state = tx.update(p, opt_state)
    jax.tree.map(lambda a, r: np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-6), state.average, ref)
    assert int(state.count) == K


def test_swa_is_the_mean_of_snapshots():
    state = _feed(swa(), SNAPSHOTS, SNAPSHOTS[0])
    expected = jax.tree.map(lambda *ps: jnp.mean(jnp.stack(ps), axis=0), *SNAPSHOTS)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-6), state.average, expected)
    # before any update: the init params
    jax.tree.map(np.testing.assert_array_equal, swa().init(SNAPSHOTS[2]).average, SNAPSHOTS[2])


@pytest.mark.parametrize("start, every, steps", [(5, 3, [5, 8, 11]), (0, 4, [4, 8, 12]),
                                                  (1, 1, list(range(1, 13))), (13, 2, [])])
def test_swa_start_every_averages_the_iterates_at_those_steps(start, every, steps):
    # the iterate after step t is t * SNAPSHOT, so the average is known by hand
    base = {"w": jnp.array([1.0, -2.0]), "n": jnp.array(0, jnp.int32)}
    iterates = [{"w": base["w"] * t, "n": jnp.array(t, jnp.int32)} for t in range(1, 13)]
    state = _feed(swa(start=start, every=every), iterates, base)
    assert int(state.count) == 12  # the steps, not the snapshots
    if steps:
        np.testing.assert_allclose(state.average["w"], np.array([1.0, -2.0]) * np.mean(steps),
                                   rtol=1e-6)
        assert int(state.average["n"]) == steps[-1]  # non-float leaves: the last snapshot's
    else:  # no snapshot yet: the init params
        np.testing.assert_array_equal(state.average["w"], base["w"])


def test_swa_start_every_under_vmap_matches_pytorch_epoch_recipe():
    # PyTorch swa_utils: update_parameters(model) after every epoch from swa_start on.
    # 3 steps per epoch, averaging from epoch 2 (1-based) on: steps 6, 9, 12.
    def run(scale):
        averager = swa(start=6, every=3)
        state = averager.init(jnp.zeros(()))
        for t in range(1, 13):
            state = averager.update(scale * t, state)
        return state.average

    out = jax.jit(jax.vmap(run))(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(out, [9.0, 18.0], rtol=1e-6)


@pytest.mark.parametrize("kw, match", [({"start": -1}, "start=-1"), ({"every": 0}, "every=0"),
                                       ({"every": 2.5}, "every=2.5"),
                                       ({"start": True}, "start=True")])
def test_swa_bad_start_every(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        swa(**kw)


def test_low_precision_params_average_in_float32():
    p = {"w": jnp.ones((3,), jnp.bfloat16)}
    state = _feed(ema(0.999), [p] * 3, p)
    assert state.average["w"].dtype == jnp.float32
    assert params_like(state.average, p)["w"].dtype == jnp.bfloat16


def test_traced_decay_vmap_sweep():
    def run(decay):
        averager = ema(decay)
        state = averager.init(jnp.zeros(()))
        for i in range(1, 4):
            state = averager.update(jnp.float32(i), state)
        return state.average

    decays = jnp.array([0.0, 0.5, 1.0])
    out = jax.jit(jax.vmap(run))(decays)
    np.testing.assert_allclose(out, [3.0, 0.5 * 3 + 0.25 * 2 + 0.125 * 1, 0.0], rtol=1e-6)


def test_bad_decay():
    with pytest.raises(ValueError, match="decay=1.5"):
        ema(1.5)


def test_ensemble_predict_averages_probabilities():
    rng = np.random.default_rng(0)
    stacked = jnp.asarray(rng.normal(size=(4, 5, 3)), jnp.float32)  # 4 models
    x = jnp.asarray(rng.normal(size=(7, 5)), jnp.float32)
    apply_fn = lambda w, x: x @ w  # noqa: E731
    probs = jax.jit(ensemble_predict, static_argnums=0)(apply_fn, stacked, x)
    logits = np.einsum("nd,mdk->mnk", np.asarray(x, np.float64), np.asarray(stacked, np.float64))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    expected = (e / e.sum(-1, keepdims=True)).mean(0)
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("make", [ema, swa])
def test_update_takes_params_then_state_and_saturates(make):
    averager = make() if make is swa else make(0.5)
    p = {"w": jnp.ones(3)}
    state = averager.init(p)
    state = averager.update(p, state)  # GradientTransformation order: new values, state
    assert int(state.count) == 1
    with pytest.raises(TypeError, match="params come first"):
        averager.update(state, p)
    top = np.iinfo(np.int32).max
    state = averager.update(p, state._replace(count=jnp.asarray(top, jnp.int32)))
    assert int(state.count) == top  # saturates instead of wrapping to a negative count
    np.testing.assert_allclose(state.average["w"], np.ones(3))
