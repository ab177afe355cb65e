"""jtricks.optim clipping: closed forms, the global-norm state, and a property test."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import jtricks.optim as jo


@jax.jit
def _global_clip(grads, max_norm):
    """Clips once and twice; returns both and the two states. ``max_norm`` is traced."""
    tx = jo.clip_by_global_norm(max_norm)
    once, s1 = tx.update(grads, tx.init(grads))
    twice, s2 = tx.update(once, s1)
    return once, twice, s1, s2


def _norm(tree):
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]
    return float(np.sqrt(sum(np.sum(np.square(x)) for x in leaves)))


_finite = st.floats(-1e3, 1e3, width=32, allow_nan=False, allow_infinity=False)


@given(a=arrays(np.float32, (3, 2), elements=_finite), b=arrays(np.float32, (4,), elements=_finite),
       max_norm=st.floats(0.0625, 1024.0, width=32))
def test_global_norm_clip_never_exceeds_and_is_idempotent(a, b, max_norm):
    grads = {"a": a, "b": b}
    once, twice, s1, s2 = _global_clip(grads, np.float32(max_norm))
    norm = _norm(grads)
    assert _norm(once) <= max_norm * (1 + 1e-6)
    for x, y in zip(jax.tree.leaves(once), jax.tree.leaves(twice)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(float(s1.global_norm), norm, rtol=1e-5)
    assert bool(s1.clipped) == (norm >= max_norm) or abs(norm - max_norm) <= 1e-6 * max_norm
    if norm < max_norm:  # untouched below the threshold
        for x, y in zip(jax.tree.leaves(once), jax.tree.leaves(grads)):
            np.testing.assert_array_equal(x, y)


def test_global_norm_state_records_pre_clip_norm():
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # norm 5
    once, _, s1, s2 = _global_clip(grads, np.float32(1.0))
    np.testing.assert_allclose(once["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(once["b"], [0.8], rtol=1e-6)
    assert float(s1.global_norm) == 5.0 and bool(s1.clipped)
    np.testing.assert_allclose(float(s2.global_norm), 1.0, rtol=1e-6)
    _, _, s_small, _ = _global_clip(grads, np.float32(10.0))
    assert not bool(s_small.clipped)


def test_clip_by_norm_is_per_leaf_and_clip_is_elementwise():
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4]), "z": jnp.zeros(2)}

    @jax.jit
    def run(grads):
        by_norm, by_value = jo.clip_by_norm(1.0), jo.clip(0.35)
        return (by_norm.update(grads, by_norm.init(grads))[0],
                by_value.update(grads, by_value.init(grads))[0])

    by_norm, by_value = run(grads)
    np.testing.assert_allclose(by_norm["a"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(by_norm["b"], [0.3, 0.4], rtol=1e-6)  # below: unchanged
    np.testing.assert_array_equal(by_norm["z"], [0.0, 0.0])  # no 0/0
    np.testing.assert_allclose(by_value["a"], [0.35, 0.35], rtol=1e-6)
    np.testing.assert_allclose(by_value["b"], [0.3, 0.35], rtol=1e-6)
