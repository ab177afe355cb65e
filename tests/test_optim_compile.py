"""What keeps the tree path of jtricks.optim quick to trace and to compile.

* the per-leaf maths is traced once per leaf signature (shape, dtype) under ``jit``,
  not once per leaf;
* a leaf split over devices is never gathered;
* the numbers and the state structure stay optax's;
* every leaf of one signature gets the same kernels (XLA:CPU compiles a kernel once
  however many times it occurs, so the compile time per leaf is XLA's per-kernel
  bookkeeping, not code generation).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import jtricks.optim as jo
from jtricks import _numeric
from jtricks.optim import _common


def _tree(n, size=32):
    return [jnp.linspace(-1.0, 1.0, size) * (1 + i % 5) for i in range(n)]


def test_leaf_maths_is_traced_once_per_signature(monkeypatch):
    calls = []
    real = _common.map_leaves

    def counting(fn, n_out, tree, *rest):
        def traced(*args):
            calls.append(tuple(np.shape(a) for a in args))
            return fn(*args)

        return real(traced, n_out, tree, *rest)

    monkeypatch.setattr(_common, "map_leaves", counting)
    import jtricks.optim._adaptive as adaptive

    monkeypatch.setattr(adaptive, "map_leaves", counting)
    tx = jo.scale_by_adam()
    params = _tree(12) + [jnp.ones((3, 2))] * 3
    jax.jit(tx.update).trace(params, tx.init(params), params)
    assert len(calls) == 2  # one trace per signature: (32,) and (3, 2)
    calls.clear()
    tx.update(params, tx.init(params), params)  # eagerly: leaf by leaf, nothing compiled
    assert len(calls) == len(params)


def test_clip_adam_on_many_leaves_matches_optax_and_keeps_its_state_tree():
    params = {"k": _tree(30, 64), "b": [jnp.ones((4, 4), jnp.bfloat16)] * 3, "w": jnp.ones(3000)}
    grads = jax.tree.map(lambda p: jnp.cos(p * 3.0).astype(p.dtype), params)
    ours = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-2))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))

    def steps(tx):
        @jax.jit
        def step(params, state):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        state = tx.init(params)
        p = params
        for _ in range(3):
            p, state = step(p, state)
        return p, state

    (p1, s1), (p2, s2) = steps(ours), steps(theirs)
    assert jax.tree.structure(s1[1][0].mu) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(s1[1][0].nu), jax.tree.leaves(s2[1][0].nu)):
        if b.dtype != jnp.float32:  # jtricks keeps a bfloat16 leaf's nu in float32
            continue
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   rtol=1e-5, atol=1e-12)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs the 8 forced CPU devices")
def test_sharded_leaves_are_never_gathered():
    mesh = jax.make_mesh((8,), ("model",), axis_types=(AxisType.Explicit,))
    rep = NamedSharding(mesh, P())
    tree = {"w": jax.device_put(jnp.arange(128.0).reshape(8, 16), NamedSharding(mesh, P("model"))),
            "b": jax.device_put(jnp.ones(16), rep), "c": jax.device_put(jnp.full(4, 2.0), rep)}
    with jax.set_mesh(mesh):
        f = jax.jit(_numeric.global_norm)
        hlo = f.lower(tree).as_text()
        np.testing.assert_allclose(f(tree), jax.jit(optax.tree.norm)(tree), rtol=1e-6)
        # a whole clip + Adam step keeps w split over the devices
        tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3))
        state = tx.init(tree)
        step = jax.jit(lambda g, s: tx.update(g, s, tree))
        step_hlo = step.lower(tree, state).as_text()
        updates, state = step(tree, state)
    assert "all-gather" not in hlo and "all_gather" not in hlo
    assert "all-gather" not in step_hlo and "all_gather" not in step_hlo
    assert updates["w"].sharding.spec[0] == "model"
    assert state[1][0].mu["w"].sharding.spec[0] == "model"


def _random_leaves(n, seed=0):
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.standard_normal(int(rng.choice([1, 5, 33]))).astype(np.float32)
                        * np.float32(10 ** rng.uniform(-3, 3))) for _ in range(n)]


@pytest.mark.parametrize("n", [_numeric._CHAIN_MAX, _numeric._CHAIN_MAX + 1, 300])
def test_global_norm_of_many_leaves_is_optax_bit_for_bit(n):
    leaves = _random_leaves(n, seed=n)
    want = jax.jit(optax.tree.norm)(leaves)
    assert jax.jit(_numeric.global_norm)(leaves) == want  # the same adds in the same order
    assert _numeric.global_norm(leaves) == want  # eagerly too


def test_global_norm_adds_the_leaf_norms_in_a_loop_not_a_chain():
    # A chain of n scalar adds is fused by XLA into one kernel that compiles in more than
    # quadratic time (2048 leaves: minutes); the loop's size does not depend on n.
    def adds(n):
        text = jax.jit(_numeric.global_norm).lower([jnp.ones(3)] * n).as_text()
        return text.count("= stablehlo.add "), "stablehlo.while" in text  # not the reductions'

    few, many = adds(_numeric._CHAIN_MAX + 1), adds(8 * _numeric._CHAIN_MAX)
    assert few[1] and many[1]
    assert many[0] == few[0]


def _kernels(fn, *args):
    """``(kernels, distinct)``: the fused computations of ``jit(fn)``'s compiled program, and
    how many differ once names and metadata are dropped (XLA:CPU generates code once for each)."""
    text = jax.jit(fn, donate_argnums=(0, 1)).lower(*args).compile().as_text()
    blocks = [b for b in text.split("\n\n")
              if "{" in b and not b.lstrip().startswith(("ENTRY", "HloModule"))]
    bodies = [re.sub(r"%[\w.\-]+|, metadata=\{[^}]*\}|, backend_config=.*", "", b.split("\n", 1)[1])
              for b in blocks]
    return len(bodies), len(set(bodies))


def test_leaves_of_one_signature_share_their_kernels():
    # Measured (2 CPU cores, clip + Adam + apply): XLA:CPU compiles a distinct kernel in about
    # 30 ms of CPU and a repeated one almost for free, so a leaf-specific constant in a kernel
    # (a slice offset of a grouped buffer, a leaf index) makes 4096 leaves take minutes.
    tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3))

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jo.apply_updates(params, updates), state

    counts = {}
    for n in (8, 24):
        params = _tree(n)
        counts[n] = _kernels(step, params, tx.init(params), params)
    (few, few_distinct), (many, many_distinct) = counts[8], counts[24]
    assert many_distinct == few_distinct  # no kernel of its own for any leaf
    # each leaf: its sum of squares (2 or 3 kernels: XLA:CPU splits long reductions), the
    # clipped gradient, mu, nu and the parameter, as in optax's program; 3 is the floor (one
    # per output buffer: XLA:CPU does not fuse several outputs into one kernel)
    assert 16 * 3 <= many - few <= 16 * 7
