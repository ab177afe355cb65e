"""Tests of jtricks.optim._flat: ``flatten(tx)`` and ``ravel(tree)``.

The oracle is the same inner transformation run leaf by leaf on the tree, and
optax's transformation of the same name.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo
from jtricks.optim._flat import FlatState, flatten, ravel


def _tree():
    """Mixed dtypes and odd shapes: 0-d, size 1, size 0, primes, bf16 among f32."""
    rng = np.random.default_rng(0)

    def arr(shape, dtype):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {
        "scalar": arr((), jnp.float32),
        "one": arr((1,), jnp.float32),
        "empty": arr((0, 3), jnp.float32),
        "w": arr((3, 5, 7), jnp.float32),
        "half": [arr((13,), jnp.bfloat16), arr((2, 1, 3), jnp.bfloat16), arr((), jnp.bfloat16)],
        "b": arr((11,), jnp.float32),
    }


def _grads(params, step):
    """Deterministic gradients, large enough for the global-norm clip to act."""
    return jax.tree.map(
        lambda p: (jnp.sin(p.astype(jnp.float32) * (step + 1)) * 3.0).astype(p.dtype), params
    )


# (name, jtricks tx, optax tx with the same numbers)
TXS = [
    (
        "clip+adam",
        jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-2)),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)),
    ),
    ("sgd+nesterov", jo.sgd(0.1, momentum=0.9, nesterov=True), optax.sgd(0.1, 0.9, True)),
    ("adamw", jo.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)),
]


def _run(tx, params, steps=2):
    """``steps`` update + apply steps (call it under jit); every step's updates, params, state."""
    state = tx.init(params)
    history = []
    for i in range(steps):
        updates, state = tx.update(_grads(params, i), state, params)
        params = jo.apply_updates(params, updates)
        history.append(updates)
    return history, params, state


def _assert_trees_close(got, want, atol=1e-6):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        # bf16 leaves: a global norm summed in another order may round one ulp apart.
        # float32: a few ulps of O(1) parameters, from the same reordering.
        tol = 1e-2 if g.dtype == jnp.bfloat16 else atol
        np.testing.assert_allclose(
            np.asarray(g, np.float32), np.asarray(w, np.float32), rtol=10 * tol, atol=tol
        )


@pytest.mark.parametrize("name,ours,theirs", TXS, ids=[t[0] for t in TXS])
def test_flatten_gives_the_tree_numbers(name, ours, theirs):
    def runs(params):  # one compilation for the three runs
        return _run(ours, params), _run(flatten(ours), params), _run(theirs, params)

    (want_updates, want_params, _), (got_updates, got_params, state), (_, optax_params, _) = (
        jax.jit(runs)(_tree())
    )
    _assert_trees_close(got_updates, want_updates)
    _assert_trees_close(got_params, want_params)
    # ... and optax's numbers.
    _assert_trees_close(got_params, optax_params)
    # The state really is flat: every array leaf is a scalar or a 1-D buffer per dtype.
    assert isinstance(state, FlatState)
    sizes = {leaf.size for leaf in jax.tree.leaves(state) if leaf.ndim}
    assert sizes <= {1 + 1 + 0 + 105 + 11, 13 + 6 + 1}


def test_flatten_of_an_optax_transformation():
    # optax sums the squares of bf16 leaves in bf16, so its global norm depends on the
    # grouping at bf16 precision; Adam's updates move by far less than its step size.
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    (want, _, _), (got, _, _) = jax.jit(lambda p: (_run(tx, p), _run(flatten(tx), p)))(_tree())
    _assert_trees_close(got, want, atol=1e-5)


def test_flatten_state_holds_one_buffer_per_dtype():
    state = flatten(jo.adam(1e-3)).init(_tree())
    mu = state.inner[0].mu
    assert sorted(mu) == ["bfloat16", "float32"]
    assert mu["float32"].shape == (118,) and mu["float32"].dtype == jnp.float32
    assert mu["bfloat16"].shape == (20,) and mu["bfloat16"].dtype == jnp.bfloat16


def test_flatten_chains_and_does_not_recompile():
    traces = []
    tx = jo.chain(flatten(jo.scale_by_adam()), jo.scale(-1e-3))
    params = want = _tree()
    state, want_state = tx.init(params), jo.adam(1e-3).init(params)

    @jax.jit
    def step(params, state, want, want_state, i):
        traces.append(1)
        updates, state = tx.update(_grads(params, i), state, params)
        want_updates, want_state = jo.adam(1e-3).update(_grads(want, i), want_state, want)
        return (
            jo.apply_updates(params, updates), state,
            jo.apply_updates(want, want_updates), want_state,
        )

    for i in range(3):
        params, state, want, want_state = step(params, state, want, want_state, i)
    assert len(traces) == 1
    _assert_trees_close(params, want)


def test_flatten_inside_optax_chain_and_without_params():
    tx = optax.chain(flatten(optax.scale_by_adam()), optax.scale(-1e-2))
    params = _tree()
    state = tx.init(params)
    grads = jax.jit(_grads, static_argnums=1)(params, 0)
    updates, _ = jax.jit(tx.update)(grads, state)  # params=None
    want, _ = jax.jit(optax.adam(1e-2).update)(grads, optax.adam(1e-2).init(params))
    _assert_trees_close(updates, want)


def test_masks_wrap_outside_the_flat_transformation():
    # Masks refer to the tree: apply them outside flatten, which then sees only
    # the selected leaves.
    params = _tree()
    mask = jax.tree.map(lambda p: p.ndim >= 2, params)
    # adamw's decoupled decay with a mask: the Adam part flat, the decay on the tree.
    adamw = jo.adamw(1e-2, weight_decay=0.1, mask=mask)
    flat_adamw = jo.chain(
        flatten(jo.scale_by_adam()),
        jo.add_decayed_weights(0.1, mask=mask),
        jo.scale_by_learning_rate(1e-2),
    )
    txs = [jo.masked(jo.adam(1e-2), mask), jo.masked(flatten(jo.adam(1e-2)), mask), adamw, flat_adamw]
    (want, _, _), (got, _, _), (want_w, _, _), (got_w, _, _) = jax.jit(
        lambda p: [_run(tx, p) for tx in txs]
    )(params)
    _assert_trees_close(got, want)
    _assert_trees_close(got_w, want_w)


def test_flatten_vmaps_over_a_learning_rate():
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    grads = {"w": jnp.full((3, 2), 0.5), "b": jnp.array([1.0, -2.0])}

    def first_update(lr):
        tx = flatten(jo.adam(lr))
        return tx.update(grads, tx.init(params), params)[0]

    lrs = jnp.array([1e-3, 1e-2])
    got = jax.jit(jax.vmap(first_update))(lrs)
    for i, lr in enumerate([1e-3, 1e-2]):
        _assert_trees_close(jax.tree.map(lambda x: x[i], got), first_update(lr))


def test_flatten_rejects_what_is_not_a_transformation():
    with pytest.raises(TypeError, match="flatten expects a gradient transformation"):
        flatten(0.1)


def test_ravel_round_trip():
    tree = _tree()
    flat, unravel = ravel(tree)
    assert sorted(flat) == ["bfloat16", "float32"]
    assert flat["float32"].shape == (118,) and flat["bfloat16"].shape == (20,)
    back = jax.jit(unravel)(flat)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for b, t in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        assert b.dtype == t.dtype and b.shape == t.shape
        np.testing.assert_array_equal(np.asarray(b, np.float32), np.asarray(t, np.float32))


def _loss(tree):
    return sum(jnp.sum(jnp.cos(x.astype(jnp.float32)) * (i + 1)) for i, x in enumerate(jax.tree.leaves(tree)))


def test_ravel_gradient_is_the_flat_tree_gradient_and_one_concatenate():
    tree = _tree()
    flat, unravel = ravel(tree)

    def grads(flat, tree):
        return (
            jax.grad(lambda f: _loss(unravel(f)))(flat),
            ravel(jax.grad(_loss)(tree))[0],
            # Leaves the loss does not read get zero gradients.
            jax.grad(lambda f: jnp.sum(unravel(f)["b"]))(flat),
        )

    got, want, partial_grad = jax.jit(grads)(flat, tree)
    _assert_trees_close(got, want)
    ones_at_b, _ = ravel(dict(jax.tree.map(jnp.zeros_like, tree), b=jnp.ones(11)))
    for name in flat:
        np.testing.assert_array_equal(
            np.asarray(partial_grad[name], np.float32), np.asarray(ones_at_b[name], np.float32)
        )
    # The backward pass concatenates; it never pads (one zero-padded scatter per leaf).
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda f: _loss(unravel(f))))(flat))
    assert "concatenate" in jaxpr
    assert " pad" not in jaxpr and "scatter" not in jaxpr


def test_training_on_raveled_params_gives_the_tree_numbers():
    params = _tree()
    tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-2))

    def tree_step(params, state):
        grads = jax.grad(_loss)(params)
        updates, state = tx.update(grads, state, params)
        return jo.apply_updates(params, updates), state

    flat, unravel = ravel(params)

    def flat_step(flat, state):
        grads = jax.grad(lambda f: _loss(unravel(f)))(flat)
        updates, state = tx.update(grads, state, flat)
        return jo.apply_updates(flat, updates), state

    tree_state, flat_state = tx.init(params), tx.init(flat)
    tree_step, flat_step = jax.jit(tree_step), jax.jit(flat_step, donate_argnums=(0, 1))
    for _ in range(3):
        params, tree_state = tree_step(params, tree_state)
        flat, flat_state = flat_step(flat, flat_state)
    _assert_trees_close(unravel(flat), params)
    np.testing.assert_allclose(flat_state[0].global_norm, tree_state[0].global_norm, rtol=1e-6)


def test_ravel_of_an_empty_tree():
    flat, unravel = ravel({})
    assert flat == {}
    assert unravel(flat) == {}


# --- parameters split over a `model` axis (FSDP): a per-device flat layout ------------


@pytest.mark.parametrize("kind", ["auto", "explicit"])
def test_flatten_of_model_split_params_keeps_a_per_device_layout_and_never_gathers(kind):
    """Leaves split along their first or second dimension share one ``(8, size / 8)``
    buffer split by rows; whole leaves keep a 1-D buffer. The compiled update has no
    all-gather, each device holds 1/8 of the split state, the updates keep the
    parameters' shardings, and the numbers are those of the unflattened update."""
    from jax.sharding import AxisType

    from jtricks import parallel

    axis_type = AxisType.Explicit if kind == "explicit" else AxisType.Auto
    mesh = jax.make_mesh((8,), ("model",), (axis_type,))
    rng = np.random.default_rng(1)
    params = parallel.shard_params(
        {"w": jnp.asarray(rng.normal(size=(16, 64)), jnp.float32),  # split along 64
         "v": jnp.asarray(rng.normal(size=(64, 16)), jnp.float32),  # split along 64
         "b": jnp.asarray(rng.normal(size=8), jnp.float32),
         "c": jnp.asarray(rng.normal(size=3), jnp.float32)}, mesh)  # whole
    grads = jax.tree.map(lambda p: jnp.sin(3 * p), params)
    inner = optax.chain(optax.clip_by_global_norm(1.0), jo.adam(1e-2))
    tx = flatten(inner)
    state = tx.init(params)
    buffers = state.inner[1][0].mu
    assert {name: b.shape for name, b in buffers.items()} == {"float32": (3,),
                                                             "float32@model": (8, 257)}
    assert buffers["float32@model"].addressable_shards[0].data.shape == (1, 257)
    update = jax.jit(tx.update)
    text = update.lower(grads, state, params).compile().as_text()
    assert "all-gather" not in text
    updates, state = update(grads, state, params)
    updates, state = update(updates, state, params)  # twice: the state round-trips
    expected_state = inner.init(params)
    expected, expected_state = jax.jit(inner.update)(grads, expected_state, params)
    expected, expected_state = jax.jit(inner.update)(expected, expected_state, params)
    for name in params:
        assert updates[name].sharding.is_equivalent_to(params[name].sharding,
                                                       params[name].ndim), name
        np.testing.assert_allclose(updates[name], expected[name], rtol=1e-6, atol=1e-9)
    row = np.asarray(state.inner[1][0].nu["float32@model"].addressable_shards[2].data)[0]
    # device 2's row: its slices of w (columns 16-23), v (rows 16-23) and b (element 2)
    nu = expected_state[1][0].nu
    np.testing.assert_allclose(row, np.concatenate([
        np.asarray(nu["b"])[2:3], np.asarray(nu["v"])[16:24].ravel(),
        np.asarray(nu["w"])[:, 16:24].ravel()]), rtol=1e-6)
