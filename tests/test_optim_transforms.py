"""jtricks.optim building blocks: equal to optax's, closed forms, dtypes, tree checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo

_RNG = np.random.default_rng(0)
# 20 steps of gradients for a {"a": (3, 2), "b": (4,)} tree, some exactly zero.
_GRADS = {"a": _RNG.normal(size=(20, 3, 2)).astype(np.float32),
          "b": _RNG.normal(size=(20, 4)).astype(np.float32)}
_GRADS["b"][:, 0] = 0.0
_PARAMS = {"a": _RNG.normal(size=(3, 2)).astype(np.float32),
           "b": _RNG.normal(size=(4,)).astype(np.float32)}


def _updates(*txs, grads=_GRADS, params=_PARAMS):
    """Each transformation's updates at every step, fed the same gradients (one jit)."""

    def scan(tx, grads, params):
        def body(state, g):
            u, state = tx.update(g, state, params)
            return state, u

        return jax.lax.scan(body, tx.init(params), grads)[1]

    return jax.jit(lambda g, p: [scan(tx, g, p) for tx in txs])(grads, params)


def _weight_mask(p):
    return jax.tree.map(lambda x: x.ndim > 1, p)


# (name, jtricks building block, optax's)
BLOCKS = [
    ("scale", jo.scale(-0.3), optax.scale(-0.3)),
    ("scale_by_learning_rate", jo.scale_by_learning_rate(0.1), optax.scale_by_learning_rate(0.1)),
    ("scale_by_learning_rate_schedule",
     jo.scale_by_learning_rate(jo.schedules.cosine_decay(0.1, 10)),
     optax.scale_by_learning_rate(optax.cosine_decay_schedule(0.1, 10))),
    ("trace", jo.trace(0.9), optax.trace(0.9)),
    ("trace_nesterov", jo.trace(0.5, nesterov=True), optax.trace(0.5, nesterov=True)),
    ("scale_by_adagrad", jo.scale_by_adagrad(0.0, 1e-7), optax.scale_by_rss(0.0, 1e-7)),
    ("scale_by_rms", jo.scale_by_rms(0.9, 1e-8), optax.scale_by_rms(0.9, 1e-8)),
    ("scale_by_rms_eps_outside", jo.scale_by_rms(0.8, 1e-3, eps_in_sqrt=False),
     optax.scale_by_rms(0.8, 1e-3, eps_in_sqrt=False)),
    ("scale_by_rms_centered", jo.scale_by_rms(0.9, 1e-3, centered=True),
     optax.scale_by_stddev(0.9, 1e-3)),
    ("scale_by_adadelta", jo.scale_by_adadelta(0.9, 1e-6), optax.scale_by_adadelta(0.9, 1e-6)),
    ("scale_by_adam", jo.scale_by_adam(0.8, 0.99, 1e-6), optax.scale_by_adam(0.8, 0.99, 1e-6)),
    ("scale_by_adam_eps_root", jo.scale_by_adam(eps_root=1e-8), optax.scale_by_adam(eps_root=1e-8)),
    ("scale_by_amsgrad", jo.scale_by_adam(amsgrad=True), optax.scale_by_amsgrad()),
    ("normalize_by_norm", jo.normalize_by_norm(), optax.normalize_by_update_norm()),
    ("add_decayed_weights", jo.add_decayed_weights(0.1), optax.add_decayed_weights(0.1)),
    ("add_decayed_weights_mask", jo.add_decayed_weights(0.1, _weight_mask),
     optax.add_decayed_weights(0.1, _weight_mask)),
    ("add_decayed_weights_schedule", jo.add_decayed_weights(jo.schedules.linear(0.1, 0.0, 10)),
     optax.add_decayed_weights(optax.linear_schedule(0.1, 0.0, 10))),
    ("clip", jo.clip(0.5), optax.clip(0.5)),
    ("clip_by_global_norm", jo.clip_by_global_norm(1.0), optax.clip_by_global_norm(1.0)),
]


def test_building_blocks_match_optax():
    """20 steps of every building block equal optax's twin (one compiled program; every
    failing row is reported)."""
    runs = _updates(*[tx for _, tx, _ in BLOCKS], *[ref for _, _, ref in BLOCKS])
    failures = []
    for i, (name, _, _) in enumerate(BLOCKS):
        try:
            for a, b in zip(jax.tree.leaves(runs[i]), jax.tree.leaves(runs[len(BLOCKS) + i])):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    assert not failures, "\n".join(failures)


def test_normalize_by_norm_closed_form_and_zero_gradient():
    g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}
    zero = jax.tree.map(jnp.zeros_like, g)

    @jax.jit
    def run(g, zero):
        out = []
        for tx in (jo.normalize_by_norm(eps=0.0), jo.normalize_by_norm(2.0, eps=0.0),
                   jo.normalize_by_norm()):
            out.append((tx.update(g, tx.init(g))[0], tx.update(zero, tx.init(g))[0]))
        return out

    (u1, z1), (u2, z2), (u3, z3) = run(g, zero)
    np.testing.assert_allclose(u1["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(u1["b"], [[0.8]], rtol=1e-6)
    np.testing.assert_allclose(u2["b"], [[1.6]], rtol=1e-6)
    np.testing.assert_allclose(u3["a"], [3.0 / (5.0 + 1e-6), 0.0], rtol=1e-6)
    for z in (z1, z2, z3):  # a zero gradient gives a zero step, never NaN
        for leaf in jax.tree.leaves(z):
            np.testing.assert_array_equal(leaf, 0.0)


def test_add_l1_decay_closed_form():
    params = {"w": jnp.array([-2.0, 0.0, 3.0]), "b": jnp.array([1.5])}
    grads = {"w": jnp.array([0.1, 0.2, 0.3]), "b": jnp.array([1.0])}

    @jax.jit
    def run(grads, params):
        plain = jo.add_l1_decay(0.01)
        only_w = jo.add_l1_decay(0.01, mask={"w": True, "b": False})
        return (plain.update(grads, plain.init(params), params)[0],
                only_w.update(grads, only_w.init(params), params)[0])

    plain, only_w = run(grads, params)
    np.testing.assert_allclose(plain["w"], [0.1 - 0.01, 0.2, 0.3 + 0.01], rtol=1e-6)
    np.testing.assert_allclose(plain["b"], [1.01], rtol=1e-6)
    np.testing.assert_allclose(only_w["b"], [1.0], rtol=1e-6)


def test_decay_needs_params():
    tx = jo.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(_PARAMS, tx.init(_PARAMS))


# ----------------------------------------------------------------------------- dtypes

DTYPE_TXS = [
    ("sgd_momentum", lambda: jo.sgd(0.1, momentum=0.9, nesterov=True)),
    ("adagrad", lambda: jo.adagrad(0.1)),
    ("rmsprop_centered", lambda: jo.rmsprop(0.1, centered=True, momentum=0.9)),
    ("adadelta", lambda: jo.adadelta(1.0)),
    ("adam", lambda: jo.adam(jnp.float32(1e-3))),  # an f32 array lr must not promote
    ("amsgrad_f32_moments", lambda: jo.adam(1e-3, amsgrad=True, mu_dtype=jnp.float32,
                                            nu_dtype=jnp.float32)),
    ("adamw", lambda: jo.adamw(jo.schedules.cosine_decay(1e-3, 10), weight_decay=1e-2)),
    ("clip_normalize", lambda: jo.chain(jo.clip(1.0), jo.clip_by_norm(1.0),
                                        jo.clip_by_global_norm(1.0), jo.normalize_by_norm(),
                                        jo.add_l1_decay(1e-3))),
    ("wrappers", lambda: jo.apply_if_finite(jo.accumulate_gradients(jo.adam(1e-3), 2), 3)),
]


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32], ids=str)
def test_updates_keep_gradient_dtype(dtype):
    """Traced (jax.eval_shape, nothing compiled): updates in the gradients' dtype, and the
    state keeps its dtypes across updates (so a jitted loop never retraces)."""
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), _PARAMS)
    grads = jax.tree.map(lambda x: jnp.asarray(x[0], dtype), _GRADS)
    for name, make in DTYPE_TXS:
        tx = make()

        def two_steps(grads, params, tx=tx):
            state = tx.init(params)
            u, new_state = tx.update(grads, state, params)
            u, new_state = tx.update(grads, new_state, params)
            return u, state, new_state

        updates, state, new_state = jax.eval_shape(two_steps, grads, params)
        assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(updates)), name
        assert jax.tree.map(lambda x: x.dtype, state) == jax.tree.map(lambda x: x.dtype, new_state)
        if name == "adam":  # default moment dtype: the params'
            assert all(x.dtype == dtype for x in jax.tree.leaves(state[0].mu))
        if name == "amsgrad_f32_moments":
            assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((state[0].mu, state[0].nu)))


def test_low_precision_statistics_do_not_overflow():
    """Squares of float16 gradients of 300 overflow float16; the maths runs in float32."""
    grads = jnp.asarray(np.linspace(-300, 300, 6).reshape(3, 2), jnp.float32)

    @jax.jit
    def run(grads):
        out = {}
        for dtype in (jnp.float16, jnp.bfloat16, jnp.float32):
            g = grads.astype(dtype)
            for name, tx in [("adam", jo.adam(0.1)), ("rmsprop", jo.rmsprop(0.1, centered=True)),
                             ("clip", jo.clip_by_global_norm(1.0))]:
                out[name, jnp.dtype(dtype).name] = tx.update(g, tx.init(g), g)[0]
        return out

    out = run(grads)
    for (name, dtype), u in out.items():
        assert u.dtype == jnp.dtype(dtype)
        assert bool(jnp.all(jnp.isfinite(u))), (name, dtype)
        np.testing.assert_allclose(np.asarray(u, np.float32), out[name, "float32"], rtol=1e-2)


def test_mu_nu_dtype_bfloat16_state_with_f32_params():
    tx = jo.adam(1e-3, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    params = jax.tree.map(jnp.asarray, _PARAMS)
    state = tx.init(params)
    u, state = jax.jit(tx.update)(jax.tree.map(lambda x: x[0], _GRADS), state, params)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves((state[0].mu, state[0].nu)))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(u))


def test_float64_matches_optax_and_stays_float64():
    with jax.enable_x64(True):
        p = {"a": jnp.asarray(np.linspace(-1, 1, 5), jnp.float64)}
        g = {"a": jnp.asarray(np.linspace(0.3, -0.2, 5), jnp.float64)}
        pairs = [(jo.adam(1e-3), optax.adam(1e-3)),
                 (jo.adam(jnp.float32(1e-3)), optax.adam(np.float32(1e-3))),  # f32 lr: still f64
                 (jo.rmsprop(1e-2, centered=True), optax.rmsprop(1e-2, centered=True)),
                 (jo.sgd(0.1, 0.9), optax.sgd(0.1, 0.9))]

        @jax.jit
        def run(g, p):
            out = []
            for tx, ref in pairs:
                s, rs = tx.init(p), ref.init(p)
                for _ in range(3):
                    u, s = tx.update(g, s, p)
                    ru, rs = ref.update(g, rs, p)
                out.append((u, ru))
            return out

        for u, ru in run(g, p):
            assert u["a"].dtype == jnp.float64
            np.testing.assert_allclose(u["a"], ru["a"], rtol=1e-12)


# ----------------------------------------------------------------------------- tree checks

STATEFUL = [
    ("trace", lambda: jo.trace(0.9)),
    ("scale_by_adagrad", lambda: jo.scale_by_adagrad()),
    ("scale_by_rms", lambda: jo.scale_by_rms()),
    ("scale_by_adadelta", lambda: jo.scale_by_adadelta()),
    ("scale_by_adam", lambda: jo.scale_by_adam()),
    ("accumulate_gradients", lambda: jo.accumulate_gradients(jo.sgd(0.1), 2)),
]


@pytest.mark.parametrize("name,make", STATEFUL, ids=[s[0] for s in STATEFUL])
def test_other_tree_structure_is_named_in_the_error(name, make):
    tx = make()
    state = tx.init({"w": jnp.ones(2)})
    grads = [jnp.ones(2)]
    with pytest.raises(ValueError, match=name) as info:
        tx.update(grads, state)
    assert "PyTreeDef([*])" in str(info.value) and "PyTreeDef({'w': *})" in str(info.value)
