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


# ----------------------------------------------------------------------------- inject_hyperparams


class _Total:
    """A stateful schedule (optax's StatefulSchedule protocol): the sum of ``addendum``."""

    def init(self):
        return jnp.zeros([], jnp.float32)

    def update(self, state, **extra_args):
        return state + extra_args["addendum"]

    def __call__(self, state, **extra_args):
        del extra_args
        return state


@pytest.mark.parametrize("L", [jo, optax], ids=["jtricks", "optax"])
def test_inject_hyperparams_stateful_schedule(L):
    tx = L.inject_hyperparams(L.scale)(step_size=_Total())
    params = jnp.ones(3)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for _ in range(3):
        updates, state = step(params, state, params, addendum=jnp.float32(0.5))
    assert float(state.hyperparams["step_size"]) == 1.0  # the value before the last update
    assert float(state.hyperparams_states["step_size"]) == 1.5
    np.testing.assert_array_equal(np.asarray(updates), np.ones(3))


@pytest.mark.parametrize("L", [jo, optax], ids=["jtricks", "optax"])
def test_inject_hyperparams_dtypes_are_optax_s(L):
    params = [jnp.ones(2, jnp.float16), jnp.ones(3, jnp.float32)]  # widest: f32
    # ints keep their dtype; float numbers follow the params; explicit dtypes stay
    state = L.inject_hyperparams(L.clip_by_global_norm)(3).init(params)
    assert state.hyperparams["max_norm"].dtype == jnp.int32
    state = L.inject_hyperparams(L.trace)(0.5).init([jnp.ones(2, jnp.float16)])
    assert state.hyperparams["decay"].dtype == jnp.float16
    state = L.inject_hyperparams(L.trace)(jnp.float32(0.5)).init([jnp.ones(2, jnp.float16)])
    assert state.hyperparams["decay"].dtype == jnp.float32
    tx = L.inject_hyperparams(L.trace, hyperparam_dtype=jnp.float16)(0.5)
    state = tx.init(params)
    assert state.hyperparams["decay"].dtype == jnp.float16
    _, state = jax.jit(tx.update)(params, state, params)
    assert state.hyperparams["decay"].dtype == jnp.float16


@pytest.mark.parametrize("L", [jo, optax], ids=["jtricks", "optax"])
def test_inject_hyperparams_static_args(L):
    def factory(learning_rate, mask):
        return L.masked(L.scale(-learning_rate), mask)

    mask_fn = lambda p: [x.ndim > 1 for x in p]  # noqa: E731
    for static in ("mask", ["mask"]):  # a string is one name, not its characters
        tx = L.inject_hyperparams(factory, static_args=static)(0.1, mask_fn)
        params = [jnp.ones((1, 2)), jnp.ones(2)]
        state = tx.init(params)
        assert set(state.hyperparams) == {"learning_rate"}
        updates, _ = tx.update(params, state)
        np.testing.assert_allclose(np.asarray(updates[0]), -0.1 * np.ones((1, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match="lr"):
        L.inject_hyperparams(L.scale, static_args="lr")


def test_inject_hyperparams_leaves_prng_keys_alone():
    def noise(key, scale):
        def init_fn(params):
            del params
            return key

        def update_fn(updates, state, params=None):
            del params
            key, sub = jax.random.split(state)
            return jax.tree.map(lambda u: scale * jax.random.normal(sub, u.shape), updates), key

        return optax.GradientTransformation(init_fn, update_fn)

    for L in (jo, optax):
        tx = L.inject_hyperparams(noise)(jax.random.key(3), 1e-3)
        state = tx.init(jnp.ones(2))
        assert jax.dtypes.issubdtype(state.hyperparams["key"].dtype, jax.dtypes.prng_key)
        updates, _ = jax.jit(tx.update)(jnp.ones(2), state)
        if L is jo:
            ours = updates
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(updates))


def test_inject_hyperparams_state_equals_optax_s_adadelta():
    """adadelta's default weight_decay=0 becomes an array under inject_hyperparams:
    the chain is the same with and without it (and the same as optax's)."""
    params = {"w": jnp.ones((2, 2))}
    plain = jax.tree.structure(jo.adadelta(0.1).init(params))
    injected = jo.inject_hyperparams(jo.adadelta)(0.1).init(params).inner_state
    assert jax.tree.structure(injected) == plain
    assert jax.tree.structure(optax.adadelta(0.1).init(params)) == jax.tree.structure(
        optax.tree.map_params(optax.adadelta(0.1), lambda x: x, optax.adadelta(0.1).init(params)))
    tx = jo.adadelta(0.1)  # a concrete zero decay: update needs no params
    tx.update(params, tx.init(params))


# ----------------------------------------------------------------------------- None trees


@pytest.mark.parametrize("L", [jo, optax], ids=["jtricks", "optax"])
def test_none_trees(L):
    x = jnp.array([1.0, 2.0, 3.0])
    assert L.apply_updates(None, x) is None
    weights = (jnp.ones(2), {"a": jnp.ones(2)})
    assert L.add_decayed_weights(0.1).update(None, L.add_decayed_weights(0.1).init(weights),
                                             weights)[0] is None


# ----------------------------------------------------------------------------- masked state


def test_tree_map_params_on_a_masked_state_gives_optax_s():
    params = {"a": (jnp.zeros((1, 2)), jnp.zeros((2, 2))), "b": jnp.zeros((1, 3))}
    mask = {"a": (True, False), "b": True}
    axes = {"a": ("x", "y"), "b": "z"}

    def specs(L):
        tx = L.masked(L.adam(1e-2), mask)
        return optax.tree_utils.tree_map_params(
            tx, lambda p, axis: None if isinstance(p, L.MaskedNode) else axis,
            tx.init(params), axes, is_leaf=lambda v: isinstance(v, L.MaskedNode),
            transform_non_params=lambda v: None)

    ours, theirs = specs(jo), specs(optax)
    assert ours.inner_state[0].mu == theirs.inner_state[0].mu == {"a": ("x", None), "b": "z"}
    assert ours.inner_state[0].nu == theirs.inner_state[0].nu


# ----------------------------------------------------------------------------- accumulation


def _micro_batches():
    g = [{"w": jnp.array([1.0, -2.0]) * (t + 1), "b": jnp.array(0.5 - t)} for t in range(12)]
    g[3] = {"w": jnp.array([jnp.nan, 1.0]), "b": jnp.array(1.0)}  # skipped by both
    g[8] = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(jnp.inf)}
    return g


def _grow(gradient_step):
    return jnp.where(gradient_step < 2, 2, 3)  # batch size 2 micro-batches, then 3


@pytest.mark.parametrize("every_k", [3, _grow], ids=["int", "schedule"])
def test_accumulate_gradients_equals_multisteps(every_k):
    ours = jo.accumulate_gradients(jo.adam(0.1), every_k, skip_nonfinite=True)
    ms = optax.MultiSteps(optax.adam(0.1), every_k, should_skip_update_fn=optax.skip_not_finite)
    theirs = ms.gradient_transformation()
    params = {"w": jnp.zeros(2), "b": jnp.zeros([])}
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    step_ours, step_theirs = jax.jit(ours.update), jax.jit(theirs.update)
    for g in _micro_batches():
        u_ours, s_ours = step_ours(g, s_ours, params)
        u_theirs, s_theirs = step_theirs(g, s_theirs, params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                     u_ours, u_theirs)
        assert int(s_ours.mini_step) == int(s_theirs.mini_step)
        assert int(s_ours.gradient_step) == int(s_theirs.gradient_step)
    assert int(s_ours.gradient_step) > 2


def test_accumulate_gradients_without_skipping_propagates_nan():
    tx = jo.accumulate_gradients(jo.sgd(1.0), 2)
    state = tx.init(jnp.zeros(1))
    _, state = tx.update(jnp.array([jnp.nan]), state)
    updates, _ = tx.update(jnp.array([1.0]), state)
    assert bool(jnp.isnan(updates[0]))


# ----------------------------------------------------------------------------- extra arguments


def _scaled_by_loss():
    """A transformation that needs a keyword-only extra argument (as optax's ExtraArgsTest)."""

    def update_fn(updates, state, params=None, *, loss, **extra_args):
        del params, extra_args
        return jax.tree.map(lambda g: g * loss, updates), state

    return optax.GradientTransformationExtraArgs(lambda params: (), update_fn)


WRAPPERS = {
    "jtricks.chain": lambda t: jo.chain(jo.scale(1.0), t),
    "jtricks.masked": lambda t: jo.masked(t, {"w": True}),
    "jtricks.apply_if_finite": lambda t: jo.apply_if_finite(t, 2),
    "jtricks.accumulate_gradients": lambda t: jo.accumulate_gradients(t, 1),
    "jtricks.flatten": lambda t: jo.flatten(t),
    "jtricks.inject_hyperparams": lambda t: jo.inject_hyperparams(lambda scale: jo.chain(
        jo.scale(scale), t))(1.0),
    "optax.chain": lambda t: optax.chain(jo.scale(1.0), jo.chain(t)),
    "optax.partition": lambda t: optax.partition({"a": jo.chain(t)}, {"w": "a"}),
    "optax.named_chain": lambda t: optax.named_chain(("x", jo.scale(1.0)), ("y", jo.chain(t))),
    "optax.MultiSteps": lambda t: optax.MultiSteps(jo.chain(t), 1).gradient_transformation(),
    "optax.masked": lambda t: optax.masked(jo.masked(t, {"w": True}), {"w": True}),
}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_extra_args_reach_the_inner_transformation(name):
    tx = WRAPPERS[name](_scaled_by_loss())
    params = {"w": jnp.array([1.0, -2.0])}
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params, loss=jnp.float32(3.0),
                                    ignored=1)
    np.testing.assert_allclose(np.asarray(updates["w"]), [3.0, -6.0])
