"""The defects optax's own tests found in jtricks (``tests/test_optax_suite.py``), each
checked with optax as the oracle on the same inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo

# ----------------------------------------------------------------------------- complex params

# (jtricks, optax, rtol): the second moments use |g|^2 = g * conj(g), as optax.
COMPLEX = {
    "adam": (lambda: jo.adam(0.1), lambda: optax.adam(0.1), 3e-6),
    "adamw": (lambda: jo.adamw(0.1, weight_decay=0.1),
              lambda: optax.adamw(0.1, weight_decay=0.1), 3e-6),
    "amsgrad": (lambda: jo.adam(0.1, amsgrad=True), lambda: optax.amsgrad(0.1), 3e-6),
    "nadam": (lambda: jo.adam(0.1, nesterov=True), lambda: optax.nadam(0.1), 3e-6),
    "adagrad": (lambda: jo.adagrad(0.1), lambda: optax.adagrad(0.1), 0.0),
    "rmsprop": (lambda: jo.rmsprop(0.1), lambda: optax.rmsprop(0.1), 0.0),
    "rmsprop_centered": (lambda: jo.rmsprop(0.1, centered=True),
                         lambda: optax.rmsprop(0.1, centered=True), 1e-6),
    "clip_by_global_norm": (lambda: jo.clip_by_global_norm(0.5),
                            lambda: optax.clip_by_global_norm(0.5), 0.0),
    "normalize_by_norm": (lambda: jo.normalize_by_norm(),
                          lambda: optax.normalize_by_update_norm(), 0.0),
}


def _complex_run(tx, steps=6):
    params = jnp.array([1 + 2j, -0.5 + 0.1j, 3 - 1j], jnp.complex64)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for t in range(steps):
        grads = jnp.conj(params * (1 + 0.3j * t) - 1)  # the conjugated gradient, as optax's
        updates, state = step(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("name", sorted(COMPLEX))
def test_complex_params_give_optax_s_numbers(name):
    ours, theirs, rtol = COMPLEX[name]
    got, got_state = _complex_run(ours())
    want, want_state = _complex_run(theirs())
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=rtol)
    # the second moments are |g|^2: real-valued (stored in the params' dtype, as optax)
    for leaf in jax.tree.leaves(got_state):
        if jnp.iscomplexobj(leaf) and name not in ("clip_by_global_norm",):
            assert leaf.dtype == jnp.complex64


def test_complex_second_moment_is_the_squared_magnitude():
    """g = i: g*g = -1 would make Adam's denominator imaginary; |g|^2 = 1 keeps the
    first step at -lr * g / |g|."""
    g = jnp.array([1j], jnp.complex64)
    tx = jo.adam(0.1)
    updates, state = tx.update(g, tx.init(g))
    np.testing.assert_allclose(np.asarray(state[0].nu), [1e-3 + 0j], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(updates), [-0.1j], rtol=1e-5)


def test_clip_by_norm_uses_the_magnitude_of_complex_entries():
    g = jnp.array([3j, 4.0 + 0j], jnp.complex64)  # |g| = 5
    out, _ = jo.clip_by_norm(1.0).update(g, jo.EmptyState())
    np.testing.assert_allclose(np.asarray(out), np.asarray(g) / 5, rtol=1e-6)
