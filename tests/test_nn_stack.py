"""jtricks.nn.stack: scanned blocks equal the unrolled model, and their program does not grow
with depth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks
import jtricks.nn as nn
import jtricks.train as jt


def _bn_block(width, rate):
    """x + dropout(relu(batch_norm(dense(x)))): parameters, running statistics and dropout."""

    def init(key, shape):
        params = {"dense": nn.init_dense(key, width, width)}
        params["bn"], state = nn.init_batch_norm(width)
        return params, {"bn": state}

    def apply(params, state, x, *, training, key=None, axis_name=None):
        y, bn = nn.batch_norm(params["bn"], state["bn"], nn.dense(params["dense"], x),
                              training=training, axis_name=axis_name)
        y = jax.nn.relu(y)
        if training:
            y = nn.dropout(key, y, rate, training=True)
        return x + y, {"bn": bn}

    return nn.Model(init, apply)


def _unstack(tree, depth):
    return {f"block_{i}": jax.tree.map(lambda a: a[i], tree) for i in range(depth)}


def _close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


def test_scanned_blocks_equal_the_unrolled_model():
    depth, width = 5, 6
    block = _bn_block(width, 0.3)
    scanned, unrolled = nn.stack(block, depth), nn.stack(block, depth, scan=False)
    key = jax.random.key(0)
    params, state = scanned.init(key, (width,))
    params_u, state_u = unrolled.init(key, (width,))
    assert params["dense"]["kernel"].shape == (depth, width, width)
    _close(_unstack(params, depth), params_u, rtol=1e-6, atol=1e-7)   # same keys, same params
    _close(_unstack(state, depth), state_u)
    x = jax.random.normal(jax.random.key(1), (8, width))

    def loss(model, params, state):
        y, new_state = model.apply(params, state, x, training=True, key=jax.random.key(2))
        return jnp.sum(y ** 2), (y, new_state)

    (l_s, (y_s, new_s)), g_s = jax.jit(jax.value_and_grad(
        lambda p: loss(scanned, p, state), has_aux=True))(params)
    (l_u, (y_u, new_u)), g_u = jax.jit(jax.value_and_grad(
        lambda p: loss(unrolled, p, state_u), has_aux=True))(params_u)
    np.testing.assert_allclose(l_s, l_u, rtol=1e-5)
    _close(y_s, y_u, rtol=1e-5, atol=1e-5)
    _close(_unstack(new_s, depth), new_u, rtol=1e-5, atol=1e-6)       # running statistics
    _close(_unstack(g_s, depth), g_u, rtol=1e-4, atol=1e-5)           # gradients
    # Without the key the masks change: the blocks really drew dropout masks.
    y_other, _ = scanned.apply(params, state, x, training=True, key=jax.random.key(3))
    assert not np.allclose(y_other, y_s)


def test_scanned_step_on_devices_equals_one_device():
    """Inside train_step(axis_name=...) the blocks see the global batch (batch norm) and
    the global example indices (dropout): 2 devices give the one-device step."""
    model = nn.residual_mlp(3, width=8, depth=4, dropout=0.2)
    tx = jtricks.optim.sgd(0.1)
    shapes = jax.eval_shape(lambda: jt.init_state(model, tx, 0, (5,))[0])
    rng = np.random.default_rng(0)  # random parameters without compiling an init
    state = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape).astype(s.dtype) * 0.3)
                         if s.dtype == jnp.float32 else jnp.zeros(s.shape, s.dtype), shapes)
    state = state._replace(key=jax.random.key_data(jax.random.key(5)))
    x = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    y = jnp.arange(8) % 3
    loss_fn = jt.classifier_loss(model)
    one, m1 = jax.jit(lambda s: jt.train_step(s, (x, y), loss_fn=loss_fn, tx=tx))(state)
    step = jax.pmap(lambda s, b: jt.train_step(s, b, loss_fn=loss_fn, tx=tx, axis_name="d"),
                    axis_name="d", in_axes=(None, 0))
    two, m2 = step(state, (x.reshape(2, 4, 5), y.reshape(2, 4)))
    np.testing.assert_allclose(m2["loss"][0], m1["loss"], rtol=1e-5)
    _close(jax.tree.map(lambda a: a[0], two.params), one.params, rtol=1e-5, atol=1e-6)


def _dots(model):
    """The matrix products in the lowered training step of ``model``."""
    tx = jtricks.optim.adam(1e-3)
    state = jax.eval_shape(lambda: jt.init_state(model, tx, 0, (16,))[0])  # nothing run
    batch = (jnp.ones((4, 16)), jnp.zeros(4, jnp.int32))
    step = jax.jit(lambda s: jt.train_step(s, batch, loss_fn=jt.classifier_loss(model), tx=tx))
    text = step.lower(state).as_text()
    return text.count("stablehlo.dot_general"), len(jax.tree.leaves(state.params))


@pytest.mark.parametrize("scan", [True, False])
def test_the_scanned_program_does_not_grow_with_depth(scan):
    small = _dots(nn.residual_mlp(2, width=16, depth=2, scan_blocks=scan))
    deep = _dots(nn.residual_mlp(2, width=16, depth=16, scan_blocks=scan))
    if scan:
        assert deep == small  # one block in the program, 10 leaves whatever the depth
    else:
        assert deep[0] > small[0] and deep[1] == small[1] + 14 * 4


def test_stack_refuses_bad_arguments():
    with pytest.raises(TypeError, match="block="):
        nn.stack(lambda x: x, 3)
    with pytest.raises(ValueError, match="depth"):
        nn.stack(nn.residual_block(4), 0)
    model = nn.stack(nn.Model(lambda k, s: ({"w": jnp.ones(())}, {}),
                              lambda p, s, x, **kw: (x[:, :1], s)), 2)
    params, state = model.init(jax.random.key(0), (3,))
    with pytest.raises(ValueError, match="must keep the shape"):
        model.apply(params, state, jnp.ones((2, 3)), training=False)


def _optimized_size(depth):
    """Instructions in XLA's optimized program of the gradient of an unrolled residual MLP."""
    model = nn.residual_mlp(2, width=8, depth=depth, scan_blocks=False)
    params, state = jax.eval_shape(lambda: model.init(jax.random.key(0), (8,)))

    def loss(p, x):
        return model.apply(p, state, x, training=False)[0].sum()

    text = jax.jit(jax.grad(loss)).lower(params, jax.ShapeDtypeStruct((4, 8), jnp.float32))
    return sum(" = " in line for line in text.compile().as_text().splitlines())


def test_the_unrolled_gradient_grows_linearly_with_depth():
    """Normalisation's backward pass must not be re-fused into every earlier block: with
    the mean traced before the square in ``_moments``, XLA:CPU copied the chain of residual
    cotangents into each block's fusion, so the program (and its compile time: 70 s against
    flax's 3 s at depth 64) grew quadratically with depth."""
    sizes = [_optimized_size(d) for d in (4, 8, 12)]
    first, second = sizes[1] - sizes[0], sizes[2] - sizes[1]
    assert second <= 1.05 * first, sizes  # equal when linear; 2058 then 2632 when not
