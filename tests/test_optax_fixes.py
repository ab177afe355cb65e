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
from jtricks.optim import schedules as js

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


# ----------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay_with_zero_rate_stays_at_init_value(staircase):
    ours = jax.jit(js.exponential_decay(0.5, 2, 0.0, staircase=staircase))
    theirs = optax.exponential_decay(0.5, 2, 0.0, staircase=staircase)
    for t in range(6):
        assert float(ours(t)) == float(theirs(t)) == 0.5


def _warmup_cosine(c, init, peak, warmup, decay, end):
    if c < warmup:
        return init + (peak - init) * c / warmup
    t = min(c - warmup, decay - warmup) / (decay - warmup)
    return end + (peak - end) * 0.5 * (1 + np.cos(np.pi * t))


GIANT = int(1e10)


@pytest.mark.parametrize("ours,reference", [
    # optax's own cosine_decay_schedule works beyond int32 (its test_with_giant_int_steps)
    (js.cosine_decay(1000.0, GIANT), optax.cosine_decay_schedule(1000.0, GIANT)),
    # optax's linear / warmup schedules overflow there: the closed form is the reference
    (js.warmup_cosine_decay(0.0, 1000.0, 10, GIANT, 1.0),
     lambda c: _warmup_cosine(c, 0.0, 1000.0, 10, GIANT, 1.0)),
    (js.linear(1000.0, 0.0, GIANT), lambda c: 1000.0 * (1 - min(c, GIANT) / GIANT)),
], ids=["cosine_decay", "warmup_cosine_decay", "linear"])
def test_step_counts_beyond_int32(ours, reference):
    for count in (int(1e9), 2**31 + 7, int(5e9), 2 * GIANT):
        np.testing.assert_allclose(np.asarray(ours(count)), np.asarray(reference(count)),
                                   rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(np.asarray(jax.jit(ours)(int(1e9))),
                               np.asarray(reference(int(1e9))), rtol=1e-5)
