"""Tests of jtricks.nn layers and models: interface, oracles, tracers, pmap, training."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import init, nn

# The rbg PRNG compiles much faster than threefry on CPU, and compilation
# dominates these tests; the models accept any key type.
KEY = jax.random.key(0, impl="rbg")


def test_mlp_params_state_and_shapes():
    model = nn.mlp((32, 16, 10), batch_norm=True)
    params, state = jax.eval_shape(lambda k: model.init(k, (8, 8, 1)), KEY)
    assert set(params) == {"dense_0", "dense_1", "dense_2", "bn_0", "bn_1"}
    assert params["dense_0"]["kernel"].shape == (64, 32)
    assert params["dense_2"]["kernel"].shape == (16, 10)
    assert set(params["bn_1"]) == {"scale", "bias"}
    assert set(state) == {"bn_0", "bn_1"} and isinstance(state["bn_0"], nn.BatchNormState)
    assert jax.eval_shape(lambda k: nn.mlp((32, 10)).init(k, (64,)), KEY)[1] == {}
    params, _ = jax.eval_shape(lambda k: nn.mlp((32, 10)).init(k, 64), KEY)  # int: a vector
    assert params["dense_0"]["kernel"].shape == (64, 32)


def test_mlp_equals_hand_written_network():
    model = nn.mlp((6, 3), activation=jnp.tanh, batch_norm=True, kernel_init=init.glorot_normal())
    x = jnp.asarray(np.random.default_rng(1).standard_normal((5, 2, 2)), jnp.float32)

    @jax.jit
    def both(x):
        params, state = model.init(KEY, (2, 2))
        ys = model.apply(params, state, x, training=True)
        h = x.reshape(5, 4) @ params["dense_0"]["kernel"] + params["dense_0"]["bias"]
        mean, var = h.mean(0), h.var(0)
        h = jnp.tanh((h - mean) / jnp.sqrt(var + 1e-5) * params["bn_0"]["scale"] + params["bn_0"]["bias"])
        ref = h @ params["dense_1"]["kernel"] + params["dense_1"]["bias"]
        return ys, ref, mean, var

    (y, new_state), ref, mean, var = both(x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_state["bn_0"].mean, 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state["bn_0"].var, 0.9 + 0.1 * var, rtol=1e-5)


def test_hyperparameters_may_be_traced_inside_vmap():
    """A sweep builds the model inside the vmapped function (dropout rate, init scale)."""
    x = jnp.ones((4, 8))

    def run(rate, scale):
        model = nn.mlp((16, 3), dropout=rate, kernel_init=init.variance_scaling(scale, "fan_in", "normal"))
        params, state = model.init(KEY, (8,))
        y, _ = model.apply(params, state, x, training=True, key=jax.random.key(1, impl="rbg"))
        return jnp.var(params["dense_0"]["kernel"]), jnp.mean(y == 0), y

    variances, _, ys = jax.jit(jax.vmap(run))(jnp.array([0.0, 0.5]), jnp.array([1.0, 4.0]))
    np.testing.assert_allclose(variances[1] / variances[0], 4.0, rtol=1e-5)
    assert not np.allclose(ys[0], ys[1])


@pytest.mark.parametrize(
    "model",
    [nn.mlp((8, 3), dropout=0.5), nn.cnn(3, dropout=0.5), nn.resnet(3, drop_path=0.5)],
    ids=["mlp", "cnn", "resnet"],
)
def test_missing_key_when_training_raises(model):
    # checked before the parameters are touched
    with pytest.raises(ValueError, match="key=None but training=True"):
        model.apply({}, {}, jnp.ones((2, 4, 4, 1)), training=True)


def test_no_key_needed_without_randomness():
    model = nn.mlp((8, 3), batch_norm=True)  # tracing is enough: eval_shape compiles nothing
    y, _ = jax.eval_shape(lambda k, x: model.apply(*model.init(k, (5,)), x, training=True),
                          KEY, jnp.ones((2, 5)))
    assert y.shape == (2, 3)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nn.mlp(()), "features=()"),
        (lambda: nn.mlp((8, 0)), "features=0"),
        (lambda: nn.mlp((8, 3), dropout=1.5), "dropout=1.5"),
        (lambda: nn.cnn(0), "num_classes=0"),
        (lambda: nn.resnet(10, drop_path=-0.1), "drop_path=-0.1"),
        (lambda: nn.cnn(10).init(KEY, (8, 8)), "input_shape"),
    ],
)
def test_bad_construction_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_batch_norm_model_under_pmap_equals_whole_batch():
    n = jax.local_device_count()
    model = nn.mlp((16, 4), batch_norm=True, kernel_init=init.constant(0.1))
    params, state = model.init(KEY, (6,))
    x = jnp.asarray(np.random.default_rng(2).standard_normal((n * 4, 6)) * 3 + 1, jnp.float32)
    y, new_state = model.apply(params, state, x, training=True)
    step = jax.pmap(functools.partial(model.apply, training=True, axis_name="batch"),
                    axis_name="batch", in_axes=(None, None, 0))
    ys, states = step(params, state, x.reshape(n, 4, 6))
    np.testing.assert_allclose(ys.reshape(y.shape), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(states["bn_0"].mean[3], new_state["bn_0"].mean, rtol=1e-5, atol=1e-6)


def _digits(n=256):
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:n, :, :, None] / 8.0 - 1.0).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(data.target[:n], jnp.int32)


def test_mlp_with_dropout_and_batch_norm_learns_digits():
    x, labels = _digits()
    model = nn.mlp((64, 10), batch_norm=True, dropout=0.1)
    params, state = model.init(KEY, x.shape[1:])
    tx = optax.adam(1e-2)

    def loss_fn(params, state, key):
        logits, state = model.apply(params, state, x, training=True, key=key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), state

    def step(carry, key):
        params, state, opt_state = carry
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, key)
        updates, opt_state = tx.update(grads, opt_state)
        return (optax.apply_updates(params, updates), state, opt_state), loss

    (params, state, _), losses = jax.jit(
        lambda c, k: jax.lax.scan(step, c, jax.random.split(k, 60))
    )((params, state, tx.init(params)), KEY)
    logits, _ = model.apply(params, state, x, training=False)
    assert losses[-1] < 0.3 * losses[0]
    assert float(jnp.mean(jnp.argmax(logits, -1) == labels)) > 0.9


CONV_MODELS = {
    "cnn": nn.cnn(10),
    "cnn_bn_dropout": nn.cnn(10, batch_norm=True, dropout=0.2),
    "resnet": nn.resnet(10, drop_path=0.2),
    "resnet_plain": nn.resnet(10, batch_norm=False, stage_channels=(8, 8, 16)),
}


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (28, 28, 1), (5, 7, 3)])
@pytest.mark.parametrize("name", sorted(CONV_MODELS))
def test_conv_model_shapes(name, input_shape):
    """Shapes and structure only: jax.eval_shape compiles nothing."""
    model = CONV_MODELS[name]
    params, state = jax.eval_shape(lambda k: model.init(k, input_shape), KEY)
    x = jax.ShapeDtypeStruct((3,) + input_shape, jnp.float32)
    apply = functools.partial(model.apply, training=True, key=KEY)
    y, new_state = jax.eval_shape(apply, params, state, x)
    assert y.shape == (3, 10)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert (state == {}) == (name in ("cnn", "resnet_plain"))
    if name == "resnet":
        assert set(params) == {"stem", "block_0", "block_1", "block_2", "block_3", "head"}
        assert set(params["block_2"]) == {"conv_0", "bn_0", "conv_1", "bn_1", "shortcut_conv", "shortcut_bn"}
        assert set(state["block_2"]) == {"bn_0", "bn_1", "shortcut_bn"}
        assert "shortcut_conv" not in params["block_1"]


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_conv_models_gradients_and_randomness(name):
    # Tiny versions: compiling convolution gradients dominates the cost on CPU.
    model = {
        "cnn": nn.cnn(3, channels=(4, 8), dense_features=(8,), batch_norm=True, dropout=0.5,
                      kernel_init=init.he_uniform()),
        # batch norm inside a model's gradient is covered by the cnn; without it
        # the residual net compiles several times faster
        "resnet": nn.resnet(3, stage_channels=(4, 8), blocks_per_stage=1, drop_path=0.5,
                            batch_norm=False, kernel_init=init.he_uniform()),
    }[name]
    x = jnp.asarray(np.random.default_rng(4).standard_normal((8, 6, 6, 1)), jnp.float32)

    @jax.jit
    def run(x):
        params, state = model.init(KEY, (6, 6, 1))

        def loss(params, key):
            y, new_state = model.apply(params, state, x, training=True, key=key)
            return jnp.sum(y**2), (y, new_state)

        grad_fn = jax.value_and_grad(loss, has_aux=True)
        (_, (y1, new_state)), grads = grad_fn(params, jax.random.key(1, impl="rbg"))
        _, (y2, _) = loss(params, jax.random.key(2, impl="rbg"))
        y_eval, _ = model.apply(params, state, x, training=False)
        return state, new_state, grads, y1, y2, y_eval

    state, new_state, grads, y1, y2, y_eval = run(x)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))
    assert not np.allclose(y1, y2)  # dropout / drop path depend on the key
    assert not np.allclose(y1, y_eval)


def test_layers():
    p = nn.init_dense(KEY, 3, 2, kernel_init=init.ones)
    np.testing.assert_allclose(nn.dense(p, jnp.ones((1, 3))), [[3.0, 3.0]])
    c = nn.init_conv2d(KEY, 2, 4, (3, 1), use_bias=False, kernel_init=init.ones)
    assert c["kernel"].shape == (3, 1, 2, 4) and "bias" not in c
    y = jax.eval_shape(functools.partial(nn.conv2d, stride=2), c, jnp.ones((1, 5, 5, 2), jnp.bfloat16))
    assert y.shape == (1, 3, 3, 4) and y.dtype == jnp.bfloat16
    assert jax.eval_shape(nn.max_pool, jnp.ones((1, 5, 5, 3))).shape == (1, 3, 3, 3)
    # conv2d equals flax's convolution on the same kernel (HWIO, NHWC, SAME)
    import flax.linen as linen

    kernel = jnp.asarray(np.random.default_rng(0).standard_normal((3, 3, 2, 4)), jnp.float32)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 5, 5, 2)), jnp.float32)
    ref = linen.Conv(4, (3, 3), strides=2, use_bias=False).apply({"params": {"kernel": kernel}}, x)
    np.testing.assert_allclose(nn.conv2d({"kernel": kernel}, x, stride=2), ref, rtol=1e-5, atol=1e-5)


def test_param_dtype_is_the_one_name_for_parameter_dtypes():
    """flax's convention: ``param_dtype`` sets the parameters, the layers compute in the
    input's dtype; batch norm's running statistics (state) have ``stats_dtype``."""
    bf16 = jnp.bfloat16
    p = jax.eval_shape(lambda k: nn.init_dense(k, 3, 2, param_dtype=bf16), KEY)
    assert {a.dtype for a in jax.tree.leaves(p)} == {jnp.dtype(bf16)}
    c = jax.eval_shape(lambda k: nn.init_conv2d(k, 2, 4, param_dtype=bf16), KEY)
    assert {a.dtype for a in jax.tree.leaves(c)} == {jnp.dtype(bf16)}
    for model in (nn.mlp((4, 2), batch_norm=True, param_dtype=bf16),
                  nn.cnn(2, channels=(4,), dense_features=(), batch_norm=True, param_dtype=bf16),
                  nn.resnet(2, stage_channels=(4,), blocks_per_stage=1, param_dtype=bf16)):
        params, state = jax.eval_shape(lambda k, m=model: m.init(k, (4, 4, 1)), KEY)
        assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(bf16)}
        assert {a.dtype for a in jax.tree.leaves(state)} == {jnp.dtype(jnp.float32)}
    params, state = nn.init_batch_norm(3, bf16, stats_dtype=jnp.float16)
    assert params["scale"].dtype == bf16 and state.var.dtype == jnp.float16
    for init_norm in (nn.init_layer_norm, nn.init_group_norm, nn.init_instance_norm, nn.init_rms_norm):
        assert init_norm(3, param_dtype=bf16)["scale"].dtype == bf16
    with pytest.raises(TypeError, match="dtype"):
        nn.init_dense(KEY, 3, 2, dtype=bf16)  # the old, flax-contradicting name is gone


def _unrolled_layout(tree, blocks_per_stage):
    """A scanned resnet's params or state in the unrolled layout: ``stage_s``'s leaf ``[j]``
    is ``block_{s * blocks_per_stage + j (+ 1 after the first stage)}``."""
    out = {}
    for name, value in tree.items():
        if not name.startswith("stage_"):
            out[name] = value
            continue
        s = int(name[len("stage_"):])
        first = s * blocks_per_stage + (s > 0)
        for j in range(jax.tree.leaves(value)[0].shape[0]):
            out[f"block_{first + j}"] = jax.tree.map(lambda a, j=j: a[j], value)
    return out


def _scanned_and_unrolled(per_stage, **kw):
    unrolled = nn.resnet(3, blocks_per_stage=per_stage, drop_path=0.5, **kw)
    scanned = nn.resnet(3, blocks_per_stage=per_stage, drop_path=0.5, scan_blocks=True, **kw)
    (params_u, state_u), (params_s, state_s) = (m.init(KEY, (6, 6, 1)) for m in (unrolled, scanned))
    # the same initial parameters and statistics, stacked
    _allclose(_unrolled_layout(params_s, per_stage), params_u)
    _allclose(_unrolled_layout(state_s, per_stage), state_u)
    return (unrolled, params_u, state_u), (scanned, params_s, state_s)


def _allclose(a, b, atol=1e-5):
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=atol), a, b)


X_6x6 = jnp.asarray(np.random.default_rng(5).standard_normal((8, 6, 6, 1)), jnp.float32)


def test_scanned_resnet_equals_the_unrolled_one():
    """Outputs in training (drop-path masks) and evaluation and the running statistics.
    (Gradients, without batch norm, whose gradient compiles slowly: next test.)"""
    per_stage = 2
    unrolled, scanned = _scanned_and_unrolled(per_stage, stage_channels=(4, 8))
    params_s = scanned[1]
    assert set(params_s) == {"stem", "stage_0", "block_2", "stage_1", "head"}
    assert params_s["stage_0"]["conv_0"]["kernel"].shape == (2, 3, 3, 4, 4)
    assert params_s["stage_1"]["conv_0"]["kernel"].shape == (1, 3, 3, 8, 8)
    assert len(jax.tree.leaves(params_s)) < len(jax.tree.leaves(unrolled[1]))

    @functools.partial(jax.jit, static_argnums=0)
    def run(model, params, state):
        y, new_state = model.apply(params, state, X_6x6, training=True, key=KEY)
        return y, new_state, model.apply(params, new_state, X_6x6, training=False)[0]

    y_u, new_u, eval_u = run(*unrolled)
    y_s, new_s, eval_s = run(*scanned)
    _allclose((y_s, eval_s), (y_u, eval_u))
    _allclose(_unrolled_layout(new_s, per_stage), new_u)


def test_scanned_resnet_gradients_equal_the_unrolled_ones():
    per_stage = 3
    unrolled, scanned = _scanned_and_unrolled(per_stage, stage_channels=(4,), batch_norm=False)

    @functools.partial(jax.jit, static_argnums=0)
    def grads(model, params, state):
        def loss(params):
            return jnp.sum(model.apply(params, state, X_6x6, training=True, key=KEY)[0] ** 2)

        return jax.grad(loss)(params)

    g_u, g_s = grads(*unrolled), grads(*scanned)
    _allclose(_unrolled_layout(g_s, per_stage), g_u, atol=1e-4)
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(g_s))
    model, params, state = scanned
    two = jax.jit(lambda k: model.apply(params, state, X_6x6, training=True, key=k)[0])
    # the scanned blocks drew drop-path masks (the same as unrolled: the gradients above)
    assert not np.allclose(two(KEY), two(jax.random.key(2, impl="rbg")))


@pytest.mark.parametrize("scan", [True, False])
def test_scanned_resnet_program_does_not_grow_with_depth(scan):
    def convolutions(per_stage):
        model = nn.resnet(3, stage_channels=(4, 8), blocks_per_stage=per_stage,
                          scan_blocks=scan)
        params, state = jax.eval_shape(lambda: model.init(KEY, (6, 6, 1)))  # nothing run
        apply = functools.partial(model.apply, training=False)
        x = jax.ShapeDtypeStruct((2, 6, 6, 1), jnp.float32)
        return jax.jit(apply).lower(params, state, x).as_text().count("convolution(")

    if scan:
        assert convolutions(8) == convolutions(2)
    else:
        assert convolutions(8) > convolutions(2)
