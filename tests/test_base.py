"""jtricks.optim protocol: GradientTransformation, chain, identity, apply_updates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo


def test_identity_and_chain_state():
    params = {"w": jnp.ones(3)}
    tx = jo.chain(jo.identity(), jo.scale(2.0), jo.trace(0.5))
    state = tx.init(params)
    assert isinstance(state, tuple) and len(state) == 3
    assert isinstance(state[0], jo.EmptyState) and isinstance(state[2], jo.TraceState)
    updates, state = jax.jit(tx.update)({"w": jnp.ones(3)}, state)
    updates, state = jax.jit(tx.update)({"w": jnp.ones(3)}, state)
    np.testing.assert_allclose(updates["w"], 2.0 + 0.5 * 2.0)


def test_chain_equals_optax_chain():
    grads = {"w": jnp.array([1.0, -2.0, 3.0])}

    @jax.jit
    def run(g):
        ours = jo.chain(jo.clip(1.5), jo.scale_by_adam(), jo.scale(-0.1))
        ref = optax.chain(optax.clip(1.5), optax.scale_by_adam(), optax.scale(-0.1))
        return ours.update(g, ours.init(g))[0], ref.update(g, ref.init(g))[0]

    a, b = run(grads)
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-6)


def test_chain_rejects_non_transformations():
    with pytest.raises(TypeError, match="chain argument 1"):
        jo.chain(jo.identity(), 3.0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32], ids=str)
def test_apply_updates_keeps_param_dtype(dtype):
    params = {"w": jnp.ones(3, dtype), "skip": jnp.ones(2, dtype)}
    updates = {"w": jnp.full(3, 0.5, jnp.float32), "skip": None}
    out = jax.jit(jo.apply_updates)(params, updates)
    assert out["w"].dtype == dtype
    np.testing.assert_allclose(np.asarray(out["w"], np.float32), 1.5)
    np.testing.assert_array_equal(np.asarray(out["skip"], np.float32), 1.0)
