"""jtricks.optim building blocks: equal to optax's, closed forms, dtypes, tree checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo
from jtricks import _registry as registry

_RNG = np.random.default_rng(0)
# 20 steps of gradients for a {"a": (3, 2), "b": (4,)} tree, some exactly zero.
_GRADS = {"a": _RNG.normal(size=(20, 3, 2)).astype(np.float32),
          "b": _RNG.normal(size=(20, 4)).astype(np.float32)}
_GRADS["b"][:, 0] = 0.0
_PARAMS = {"a": _RNG.normal(size=(3, 2)).astype(np.float32),
           "b": _RNG.normal(size=(4,)).astype(np.float32)}


def _value(g):
    """A loss value for transformations that need ``value=`` (it falls, then plateaus)."""
    return sum(jnp.sum(x * x) for x in jax.tree.leaves(g))


def _updates(*txs, grads=_GRADS, params=_PARAMS, needs_value=None):
    """Each transformation's updates at every step, fed the same gradients (one jit).

    ``needs_value[i]``: pass ``value=`` to the i-th transformation's update."""
    needs_value = needs_value or [False] * len(txs)

    def scan(tx, grads, params, with_value):
        def body(state, g):
            extra = {"value": _value(g)} if with_value else {}
            u, state = tx.update(g, state, params, **extra)
            return state, u

        return jax.lax.scan(body, tx.init(params), grads)[1]

    return jax.jit(lambda g, p: [scan(tx, g, p, v) for tx, v in zip(txs, needs_value)])(
        grads, params)


def _weight_mask(p):
    return jax.tree.map(lambda x: x.ndim > 1, p)


# Every transformation configuration of the registry with an optax twin:
# (name, jtricks building block, optax's, needs value=)
BLOCKS = [(c.id, c.build(), c.build_optax(), "value" in c.entry.extra_args)
          for c in registry.configs("transform") if c.optax is not None]


def test_building_blocks_match_optax():
    """20 steps of every building block, clipping and wrapper equal optax's twin (one
    compiled program; every failing row is reported)."""
    needs_value = [v for *_, v in BLOCKS] * 2
    runs = _updates(*[tx for _, tx, _, _ in BLOCKS], *[ref for _, _, ref, _ in BLOCKS],
                    needs_value=needs_value)
    failures = []
    for i, (name, *_) in enumerate(BLOCKS):
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

# Every configuration of the registry, optimizers and transformations.
DTYPE_TXS = [(c.id, c.build, c.kwargs, "value" in c.entry.extra_args) for c in registry.configs()]


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32], ids=str)
def test_updates_keep_gradient_dtype(dtype):
    """Traced (jax.eval_shape, nothing compiled): updates in the gradients' dtype, and the
    state keeps its dtypes across updates (so a jitted loop never retraces)."""
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), _PARAMS)
    grads = jax.tree.map(lambda x: jnp.asarray(x[0], dtype), _GRADS)
    failures = []
    for name, make, kwargs, needs_value in DTYPE_TXS:
        tx = make()
        extra = {"value": jnp.asarray(1.0, dtype)} if needs_value else {}

        def two_steps(grads, params, tx=tx, extra=extra):
            state = tx.init(params)
            u, new_state = tx.update(grads, state, params, **extra)
            u, new_state = tx.update(grads, new_state, params, **extra)
            return u, state, new_state

        updates, state, new_state = jax.eval_shape(two_steps, grads, params)
        if not all(leaf.dtype == dtype for leaf in jax.tree.leaves(updates)):
            failures.append(f"{name}: updates {jax.tree.map(lambda x: x.dtype, updates)}")
        if jax.tree.map(lambda x: x.dtype, state) != jax.tree.map(lambda x: x.dtype, new_state):
            failures.append(f"{name}: the state's dtypes change in update")
        # Adam's moments: mu_dtype / nu_dtype where given, else the params' dtype.
        adam_states = [x for x in jax.tree.leaves(
            state, is_leaf=lambda x: isinstance(x, (jo.ScaleByAdamState, jo.ScaleByAmsgradState)))
            if isinstance(x, (jo.ScaleByAdamState, jo.ScaleByAmsgradState))]
        given = {k: jnp.dtype(v.value()) for k, v in kwargs.items()
                 if k in ("mu_dtype", "nu_dtype")}
        for adam_state in adam_states:
            mu_dtype = given.get("mu_dtype", jnp.dtype(dtype))
            if any(x.dtype != mu_dtype for x in jax.tree.leaves(adam_state.mu)):
                failures.append(f"{name}: mu not in {mu_dtype}")
            if "nu_dtype" in given and any(x.dtype != given["nu_dtype"]
                                           for x in jax.tree.leaves(adam_state.nu)):
                failures.append(f"{name}: nu not in {given['nu_dtype']}")
    assert {n for n, *_ in DTYPE_TXS} >= {"adam", "adam_f32_lr", "adam_amsgrad_f32_moments"}
    assert not failures, "\n".join(failures)


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

def _has_per_parameter_state(config):
    shapes = jax.eval_shape(lambda: config.build().init({"w": jnp.ones(5)}))
    return any(leaf.shape == (5,) for leaf in jax.tree.leaves(shapes))


# The registry's transformations whose state holds a tree of the parameters' structure.
# jo.flatten keeps its state flat: it compares the updates with the params given to update
# (jtricks/optim/_checks.py), as every transformation does, not with its state.
_KNOWN: dict = {}
# A wrapper's error names the transformation whose state first sees the other tree: its own
# (accumulate_gradients keeps an accumulator like the parameters) or the wrapped one's.
_OWN_STATE_WRAPPERS = {"accumulate_gradients"}
STATEFUL = [pytest.param(e.name, e.configs()[0].build,
                         ("tx" in e.kwargs or "inner" in e.kwargs) and e.name not in _OWN_STATE_WRAPPERS, id=e.name,
                         marks=[pytest.mark.xfail(strict=True, reason=_KNOWN[e.name])]
                         if e.name in _KNOWN else [])
            for e in registry.ENTRIES
            if e.kind == "transform" and _has_per_parameter_state(e.configs()[0])]


@pytest.mark.parametrize("name,make,wrapper", STATEFUL)
def test_other_tree_structure_is_named_in_the_error(name, make, wrapper):
    tx = make()
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    grads = [jnp.ones(2)]
    with pytest.raises(ValueError) as info:
        tx.update(grads, state, params)
    msg = str(info.value)
    assert "PyTreeDef([*])" in msg and "PyTreeDef({'w': *})" in msg
    assert (".update got updates" if wrapper else f"{name}.update got updates") in msg
