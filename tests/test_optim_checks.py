"""The update-time checks and the numerics that must not silently die (issue 13, optim).

The bad inputs themselves are in ``test_bad_inputs_optim.py``; here: the checks
run at trace time only, masks of ``jnp`` bools work under ``jit``, ``eps = 0``
never gives ``0/0``, and half-precision second moments do not overflow.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import optim
from jtricks.optim import _checks

PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


# ----------------------------------------------------------------------------- trace time


def test_checks_run_once_per_trace_not_per_step(monkeypatch):
    calls = []
    real = _checks.check_like
    monkeypatch.setattr(_checks, "check_like", lambda *a, **k: (calls.append(1), real(*a, **k)))
    tx = optim.adam(1e-3)
    state, step = tx.init(PARAMS), jax.jit(tx.update)
    for _ in range(3):
        _, state = step(PARAMS, state, PARAMS)
    traced = len(calls)
    assert traced > 0
    for _ in range(3):
        _, state = step(PARAMS, state, PARAMS)
    assert len(calls) == traced  # compiled steps run no check


def test_the_compiled_step_is_the_one_without_checks():
    # The same maths without the wrapper: its jaxpr equals the checked one's.
    tx = optim.scale_by_adam()
    state = tx.init(PARAMS)
    checked = jax.make_jaxpr(tx.update)(PARAMS, state, PARAMS)
    real = {"check_state": _checks.check_state, "check_like": _checks.check_like,
            "check_float_leaves": _checks.check_float_leaves}
    try:
        for name in real:
            setattr(_checks, name, lambda *a, **k: None)
        bare = jax.make_jaxpr(tx.update)(PARAMS, state, PARAMS)
    finally:
        for name, fn in real.items():
            setattr(_checks, name, fn)
    assert str(checked) == str(bare)


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("mask", [
    lambda p: jax.tree.map(lambda x: jnp.asarray(x.ndim > 1), p),   # jnp bools from shapes
    {"w": jnp.array(True), "b": jnp.array(False)},                   # a tree of jnp bools
    {"w": np.True_, "b": False},
], ids=["fn-of-jnp-bools", "jnp-bools", "numpy-bool"])
def test_masks_of_array_bools_work_under_jit(mask):
    tx = optim.masked(optim.add_decayed_weights(0.1), mask)
    ref = optim.masked(optim.add_decayed_weights(0.1), {"w": True, "b": False})
    grads = jax.tree.map(jnp.zeros_like, PARAMS)
    got = jax.jit(tx.update)(grads, tx.init(PARAMS), PARAMS)[0]
    want = ref.update(grads, ref.init(PARAMS), PARAMS)[0]
    jax.tree.map(np.testing.assert_array_equal, got, want)
    np.testing.assert_allclose(got["w"], 0.1)


# ----------------------------------------------------------------------------- eps = 0

ZERO_EPS = {
    "adam": lambda: optim.adam(0.1, eps=0.0),
    "adam-nesterov": lambda: optim.adam(0.1, eps=0.0, nesterov=True),
    "amsgrad": lambda: optim.adam(0.1, eps=0.0, amsgrad=True),
    "adamw": lambda: optim.adamw(0.1, eps=0.0, weight_decay=0.0),
    "rmsprop-eps-in-sqrt": lambda: optim.rmsprop(0.1, eps=0.0),
    "rmsprop-eps-outside": lambda: optim.rmsprop(0.1, eps=0.0, eps_in_sqrt=False),
    "rmsprop-centered": lambda: optim.rmsprop(0.1, eps=0.0, centered=True),
    "adagrad": lambda: optim.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0),
}
OPTAX_ZERO_EPS = {
    "adam": lambda: optax.adam(0.1, eps=0.0),
    "adam-nesterov": lambda: optax.adam(0.1, eps=0.0, nesterov=True),
    "amsgrad": lambda: optax.amsgrad(0.1, eps=0.0),
    "adamw": lambda: optax.adamw(0.1, eps=0.0, weight_decay=0.0),
    "rmsprop-eps-in-sqrt": lambda: optax.rmsprop(0.1, eps=0.0),
    "rmsprop-eps-outside": lambda: optax.rmsprop(0.1, eps=0.0, eps_in_sqrt=False),
    "rmsprop-centered": lambda: optax.rmsprop(0.1, eps=0.0, centered=True),
    "adagrad": lambda: optax.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0),
}


@pytest.mark.parametrize("name", sorted(ZERO_EPS))
def test_eps_zero_gives_a_zero_update_for_a_zero_gradient_and_optax_otherwise(name):
    tx, ref = ZERO_EPS[name](), OPTAX_ZERO_EPS[name]()
    params = jnp.array([1.0, -2.0, 3.0])
    grads = [jnp.array([0.0, 0.5, 0.0]), jnp.array([0.0, -1.0, 2.0]), jnp.array([0.0, 0.3, 1.0])]
    state, ref_state = tx.init(params), ref.init(params)
    for g in grads:
        u, state = tx.update(g, state, params)
        ru, ref_state = ref.update(g, ref_state, params)
        assert np.isfinite(np.asarray(u)).all(), u
        assert u[0] == 0.0  # never moved: zero update, not 0/0
        # where optax divides by a non-zero moment, the numbers are optax's
        finite = np.isfinite(np.asarray(ru))
        np.testing.assert_allclose(np.asarray(u)[finite], np.asarray(ru)[finite], rtol=2e-5)
    # optax gives NaN there (the guard matters), except in adagrad, which guards it too
    assert np.isfinite(np.asarray(ru)).all() == (name == "adagrad")


def test_adadelta_refuses_eps_zero_which_would_never_move():
    with pytest.raises(ValueError, match=r"eps=0.0 must be > 0"):
        optim.adadelta(1.0, eps=0.0)
    # optax's adadelta with eps=0 never moves a parameter: E[dx^2] stays 0
    tx = optax.adadelta(1.0, eps=0.0)
    p = jnp.array([1.0])
    u, _ = tx.update(jnp.array([1.0]), tx.init(p), p)
    assert float(u[0]) == 0.0


# ----------------------------------------------------------------------------- half precision


def _run_adam(tx, dtype, grads):
    p = jnp.ones(4, dtype)
    state, update = tx.init(p), jax.jit(tx.update)
    for g in grads:
        u, state = update(jnp.asarray(g, dtype), state, p)
        p = optim.apply_updates(p, u)
    return p, state


BIG_THEN_SMALL = [np.array([1e4, 2e4, 6e4, 0.1])] + [np.full(4, 0.1)] * 5


@pytest.mark.parametrize("dtype,atol", [(jnp.float16, 2e-3), (jnp.bfloat16, 2e-2)])
def test_half_precision_second_moment_is_float32_and_keeps_training(dtype, atol):
    p, state = _run_adam(optim.adam(1e-2), dtype, BIG_THEN_SMALL)
    assert state[0].nu.dtype == jnp.float32 and state[0].mu.dtype == dtype
    # the trajectory is the float32 one (same gradients, as rounded to dtype), to dtype's precision
    grads32 = [np.asarray(jnp.asarray(g, dtype), np.float32) for g in BIG_THEN_SMALL]
    want, _ = _run_adam(optim.adam(1e-2), jnp.float32, grads32)
    assert p.dtype == dtype
    np.testing.assert_allclose(np.asarray(p, np.float32), want, atol=atol)
    assert (np.asarray(want) < 1 - 3e-2).all()  # every parameter kept moving


def test_float16_second_moment_overflows_when_asked_for_which_is_why_float32_is_the_default():
    p, state = _run_adam(optim.adam(1e-2, nu_dtype=jnp.float16), jnp.float16, BIG_THEN_SMALL)
    assert state[0].nu.dtype == jnp.float16
    assert np.isinf(np.asarray(state[0].nu[:3], np.float32)).all()
    frozen = np.asarray(p, np.float32)[:3]
    np.testing.assert_allclose(frozen, 1 - 1e-2, atol=1e-3)  # one step, then never again
    # optax keeps nu in the params' dtype: the same overflow
    ref = optax.adam(1e-2)
    _, ref_state = _run_adam(ref, jnp.float16, BIG_THEN_SMALL)
    assert np.isinf(np.asarray(ref_state[0].nu[:3], np.float32)).all()


@pytest.mark.parametrize("make,field", [
    (lambda: optim.rmsprop(1e-2), "nu"),
    (lambda: optim.adagrad(1e-2), "sum_of_squares"),
    (lambda: optim.adadelta(1.0), "e_g"),
])
def test_other_squared_accumulators_of_half_params_are_float32(make, field):
    p, state = _run_adam(make(), jnp.float16, BIG_THEN_SMALL)
    inner = next(s for s in state if hasattr(s, field))  # adadelta: (decay, rescale, lr)
    assert getattr(inner, field).dtype == jnp.float32
    assert np.isfinite(np.asarray(getattr(inner, field))).all()
    assert np.isfinite(np.asarray(p, np.float32)).all()


@pytest.mark.parametrize("nu_dtype,decays", [(None, True), (jnp.bfloat16, False)])
def test_bfloat16_second_moment_could_not_decay_so_float32_is_the_default(nu_dtype, decays):
    tx = optim.scale_by_adam(nu_dtype=nu_dtype)
    state, update = tx.init(jnp.ones(1, jnp.bfloat16)), jax.jit(tx.update)
    _, state = update(jnp.full(1, 4.0, jnp.bfloat16), state)
    for _ in range(100):
        _, state = update(jnp.zeros(1, jnp.bfloat16), state)
    want = 0.001 * 16 * 0.999 ** 100  # closed form: (1 - b2) g^2 b2^100
    got = float(state.nu[0])
    if decays:
        np.testing.assert_allclose(got, want, rtol=1e-5)
    else:  # a relative step of 1e-3 rounds away in bfloat16's 8-bit significand
        assert abs(got - 0.016) < 1e-4
