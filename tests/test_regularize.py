"""Tests for jtricks.regularize (closed-form maths and optax decay oracles)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import regularize

PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, 0.0]]), "b": jnp.array([3.0, -1.0])}


def test_l1_l2_closed_form():
    assert float(regularize.l1_penalty(PARAMS)) == pytest.approx(1 + 2 + 0.5 + 3 + 1)
    assert float(regularize.l2_penalty(PARAMS)) == pytest.approx(0.5 * (1 + 4 + 0.25 + 9 + 1))
    mask = {"w": True, "b": False}
    assert float(regularize.l1_penalty(PARAMS, mask)) == pytest.approx(3.5)
    assert float(regularize.l2_penalty(PARAMS, lambda p: {"w": True, "b": False})) == pytest.approx(2.625)


def test_masks_follow_optax_masked_prefix_rule():
    """One mask rule across jtricks (optax's): a bool per leaf or per subtree; the penalty
    under a mask equals add_decayed_weights under optax.masked with that mask."""
    nested = {"layer": PARAMS, "head": {"w": jnp.array([2.0, -2.0])}}
    per_subtree = {"layer": True, "head": False}
    assert float(regularize.l1_penalty(nested, per_subtree)) == pytest.approx(
        float(regularize.l1_penalty(PARAMS)))
    assert float(regularize.l1_penalty(nested, True)) == pytest.approx(
        float(regularize.l1_penalty(PARAMS)) + 4)
    g = jax.grad(lambda p: 0.1 * regularize.l2_penalty(p, per_subtree))(nested)
    zeros = jax.tree.map(jnp.zeros_like, nested)
    tx = optax.masked(optax.add_decayed_weights(0.1), per_subtree)
    ref, _ = tx.update(zeros, tx.init(nested), nested)
    jax.tree.map(np.testing.assert_allclose, g, ref)


def test_gradients_match_optax_decay():
    c = 0.1
    g2 = jax.jit(jax.grad(lambda p: c * regularize.l2_penalty(p)))(PARAMS)
    ref2, _ = optax.add_decayed_weights(c).update(jax.tree.map(jnp.zeros_like, PARAMS), None, PARAMS)
    jax.tree.map(np.testing.assert_allclose, g2, ref2)
    g1 = jax.grad(lambda p: c * regularize.l1_penalty(p))(PARAMS)
    jax.tree.map(lambda g, p: np.testing.assert_allclose(g, c * jnp.sign(p)), g1, PARAMS)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_penalty_in_float32(dtype):
    p = jax.tree.map(lambda x: x.astype(dtype), PARAMS)
    assert regularize.l2_penalty(p).dtype == jnp.float32


def _linear(x):
    return x @ jnp.array([3.0, 4.0])


@pytest.mark.parametrize("target", [0.0, 1.0, 2.5])
def test_gradient_penalty_closed_form(target):
    # f(x_i) = a . x_i  ->  input gradient a for every example, norm |a|
    a = jnp.array([3.0, 4.0])
    x = jnp.arange(6.0).reshape(3, 2)
    pen = jax.jit(regularize.gradient_penalty, static_argnums=0)(_linear, x, target)  # one compilation
    np.testing.assert_allclose(pen, (5.0 - target) ** 2, rtol=1e-6)
    # differentiable w.r.t. parameters closed over: d/da (|a| - t)^2 = 2 (|a| - t) a / |a|
    g = jax.jit(jax.grad(lambda a: regularize.gradient_penalty(lambda x: x @ a, x, target)))(a)
    np.testing.assert_allclose(g, 2 * (5.0 - target) * a / 5.0, rtol=1e-6)


def test_gradient_penalty_per_example_and_safe_at_zero():
    x = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    # f(x_i) = 0.5 |x_i|^2 -> gradient x_i, norms sqrt(5) and 0
    fn = lambda x: 0.5 * jnp.sum(x**2, axis=1)  # noqa: E731
    np.testing.assert_allclose(jax.jit(regularize.gradient_penalty, static_argnums=0)(fn, x, 1.0),
                               ((np.sqrt(5) - 1) ** 2 + 1) / 2, rtol=1e-6)
    g = jax.jit(jax.grad(lambda s: regularize.gradient_penalty(lambda x: s * fn(x), jnp.zeros((2, 2)), 1.0)))(1.0)
    assert jnp.isfinite(g)
