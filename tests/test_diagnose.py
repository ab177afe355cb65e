"""Tests for jtricks.diagnose."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks.init
from jtricks import diagnose

INIT = jtricks.init


def test_gradient_health_norms_closed_form():
    grads = {"a": jnp.array([3.0, 4.0]), "b": {"c": jnp.array([[12.0]])}}
    h = jax.jit(diagnose.gradient_health)(grads)
    np.testing.assert_allclose(h.global_norm, 13.0)
    np.testing.assert_allclose(h.layer_norms["a"], 5.0)
    np.testing.assert_allclose(h.layer_norms["b"]["c"], 12.0)
    assert int(h.nonfinite) == 0 and not h.exploding and not h.vanishing


@pytest.mark.parametrize(
    "grads, nonfinite, exploding, vanishing, vanishing_layers",
    [
        ({"a": jnp.array([1.0, jnp.nan]), "b": jnp.ones(2)}, 1, True, False, 0),
        ({"a": jnp.array([jnp.inf, -jnp.inf]), "b": jnp.ones(2)}, 2, True, False, 0),
        ({"a": jnp.full((4,), 1e4), "b": jnp.ones(2)}, 0, True, False, 0),
        ({"a": jnp.full((4,), 1e-9), "b": jnp.ones(2)}, 0, False, False, 1),
        ({"a": jnp.full((4,), 1e-9), "b": jnp.zeros(2)}, 0, False, True, 2),
        ({"a": jnp.full((4,), 1e-9, jnp.bfloat16), "b": jnp.zeros(2, jnp.bfloat16)}, 0, False, True, 2),
    ],
)
def test_gradient_health_flags(grads, nonfinite, exploding, vanishing, vanishing_layers):
    h = diagnose.gradient_health(grads)
    assert int(h.nonfinite) == nonfinite
    assert bool(h.exploding) == exploding
    assert bool(h.vanishing) == vanishing
    assert int(h.vanishing_layers) == vanishing_layers


def test_gradient_health_thresholds_validated():
    with pytest.raises(ValueError, match="explode_threshold=0"):
        diagnose.gradient_health({}, explode_threshold=0)


def test_activation_health():
    relu = jnp.array([[0.0, 1.0, 0.0, 0.0], [0.0, 2.0, 3.0, 0.0]])  # units 0 and 3 dead
    np.testing.assert_allclose(diagnose.dead_fraction(relu), 0.5)
    tanh = jnp.array([0.999, -0.995, 0.5, 0.0])
    np.testing.assert_allclose(diagnose.saturated_fraction(tanh, "tanh"), 0.5)
    sig = jnp.array([0.001, 0.5, 0.9999, 0.2])
    np.testing.assert_allclose(diagnose.saturated_fraction(sig, "sigmoid"), 0.5)
    h = diagnose.activation_health({"h1": relu, "h2": jnp.ones((2, 3))}, "relu")
    np.testing.assert_allclose(h.dead_fraction["h1"], 0.5)
    np.testing.assert_allclose(h.saturated_fraction["h1"], 5 / 8)
    np.testing.assert_allclose(h.dead_fraction["h2"], 0.0)
    # tanh of N(0, 10^2) pre-activations: mostly saturated
    # closed form: P(|tanh(10 Z)| > 0.99) = 2 (1 - Phi(atanh(0.99) / 10)); 4-sigma bound
    z = 10 * np.random.default_rng(0).normal(size=(256, 64)).astype(np.float32)
    p = 2 * (1 - float(jax.scipy.stats.norm.cdf(np.arctanh(0.99) / 10)))
    got = float(diagnose.activation_health([jnp.tanh(z)], "tanh").saturated_fraction[0])
    assert abs(got - p) < 4 * np.sqrt(p * (1 - p) / z.size)
    with pytest.raises(ValueError, match="activation='gelu'"):
        diagnose.activation_health(relu, "gelu")


def _ratio(stds):
    stds = np.asarray(stds, np.float64)
    return stds[-1] / stds[0]


def _linear(z):
    return z


@pytest.mark.parametrize("activation", [jax.nn.relu, _linear])
def test_signal_propagation_n01_explodes_he_glorot_stable(activation):
    depth, width = 12, 128
    bad = diagnose.signal_propagation(INIT.normal(1.0), activation, depth, width, batch_size=128)
    # N(0, 1): the spread grows by about sqrt(width / 2) (ReLU) or sqrt(width) per layer
    fwd = np.asarray(bad.activation_std)
    assert not np.isfinite(fwd[-1]) or _ratio(fwd) > 1e8
    back = np.asarray(bad.gradient_std)
    assert not np.isfinite(back[0]) or back[0] / back[-1] > 1e8
    good_init = INIT.he_normal() if activation is jax.nn.relu else INIT.glorot_normal()
    good = diagnose.signal_propagation(good_init, activation, depth, width, batch_size=128)
    assert 0.5 < _ratio(good.preactivation_std) < 2.0
    assert 0.5 < 1 / _ratio(good.gradient_std) < 2.0


def test_signal_propagation_tanh_vanishes_when_small_stable_with_glorot():
    depth, width = 12, 128
    small = diagnose.signal_propagation(INIT.normal(0.01), jnp.tanh, depth, width, batch_size=128)
    assert _ratio(small.activation_std) < 1e-10  # forward signal vanishes
    glorot = diagnose.signal_propagation(INIT.glorot_normal(), jnp.tanh, depth, width, batch_size=128)
    assert 0.2 < _ratio(glorot.activation_std) < 1.0
    assert 0.2 < 1 / _ratio(glorot.gradient_std) < 1.0
    assert glorot.activation_std.shape == (depth,)
