"""Tests of jtricks.nn normalisation layers: flax oracles, pmap, dtypes, errors."""

import functools

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import nn

RTOL, ATOL = 1e-5, 1e-5


def _data(shape, seed=0, loc=0.0, scale=1.0):
    return loc + scale * jax.random.normal(jax.random.key(seed), shape)


def _affine(num_features, seed=1):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"scale": 1 + 0.1 * jax.random.normal(k1, (num_features,)),
            "bias": 0.1 * jax.random.normal(k2, (num_features,))}


@pytest.mark.parametrize("shape", [(32, 6), (4, 5, 5, 6)], ids=["dense", "nhwc"])
def test_batch_norm_equals_flax_over_several_steps(shape):
    params = _affine(shape[-1])
    _, state = nn.init_batch_norm(shape[-1])
    module = linen.BatchNorm(momentum=0.9, epsilon=1e-5)
    variables = module.init(jax.random.key(0), jnp.zeros(shape), use_running_average=False)
    variables = {"params": params, "batch_stats": variables["batch_stats"]}

    @jax.jit
    def both(state, variables, x):
        ours, state = nn.batch_norm(params, state, x, training=True)
        ref, updates = module.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
        variables = {"params": params, "batch_stats": updates["batch_stats"]}
        ours_eval, _ = nn.batch_norm(params, state, x, training=False)
        ref_eval = module.apply(variables, x, use_running_average=True)
        return state, variables, (ours, ref, ours_eval, ref_eval)

    for step in range(4):  # different statistics every step
        x = _data(shape, seed=step, loc=step - 1.0, scale=1.0 + step)
        state, variables, (ours, ref, ours_eval, ref_eval) = both(state, variables, x)
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ours_eval, ref_eval, rtol=RTOL, atol=ATOL)
        for k in ("mean", "var"):
            np.testing.assert_allclose(state[k], variables["batch_stats"][k], rtol=RTOL, atol=ATOL)


def test_batch_norm_eval_returns_state_unchanged():
    params, state = nn.init_batch_norm(3)
    state = {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 1.0, 0.25])}
    x = _data((5, 3))
    y, new_state = nn.batch_norm(params, state, x, training=False, eps=0.0 + 1e-12)
    assert new_state is state
    np.testing.assert_allclose(y, (x - state["mean"]) / jnp.sqrt(state["var"]), rtol=1e-5)


def test_batch_norm_pmap_equals_whole_batch():
    n = jax.local_device_count()
    assert n == 8
    x = _data((n * 4, 3, 3, 5), loc=2.0, scale=3.0)
    params = _affine(5)
    _, state = nn.init_batch_norm(5)
    whole, whole_state = nn.batch_norm(params, state, x, training=True)
    step = jax.pmap(
        functools.partial(nn.batch_norm, training=True, axis_name="d"),
        axis_name="d", in_axes=(None, None, 0),
    )
    shards, shard_state = step(params, state, x.reshape((n, 4) + x.shape[1:]))
    np.testing.assert_allclose(shards.reshape(x.shape), whole, rtol=RTOL, atol=ATOL)
    for k in ("mean", "var"):
        for d in range(n):  # every device holds the global statistics
            np.testing.assert_allclose(shard_state[k][d], whole_state[k], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_dtypes_preserved_and_constant_input_gives_no_nan(dtype):
    x = jnp.full((8, 4, 4, 6), 1000.0, dtype)
    params, state = nn.init_batch_norm(6)
    params = {"scale": params["scale"], "bias": jnp.arange(6.0)}

    @jax.jit
    def run(x):
        y, s = nn.batch_norm(params, state, x, training=True)
        grad = jax.grad(lambda x: nn.batch_norm(params, state, x, training=True)[0].astype(jnp.float32).sum())(x)
        return {
            "bn": y, "state": s, "grad": grad,
            "ln": nn.layer_norm(nn.init_layer_norm(6), x),
            "gn": nn.group_norm(nn.init_group_norm(6), x, 3),
            "in": nn.instance_norm(nn.init_instance_norm(6), x),
            "rms": nn.rms_norm(nn.init_rms_norm(6), x),
        }

    out = run(x)
    for name in ("bn", "ln", "gn", "in", "rms"):
        assert out[name].dtype == dtype, name
        assert np.all(np.isfinite(np.asarray(out[name], np.float32))), name
    assert out["state"]["var"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out["bn"], np.float32), np.broadcast_to(np.arange(6.0), x.shape), atol=1e-2)
    np.testing.assert_allclose(out["state"]["var"], 0.9, rtol=1e-6)  # 0.9 * 1 + 0.1 * 0
    assert np.all(np.isfinite(np.asarray(out["grad"], np.float32)))


def _flax_params(module, x, params):
    variables = module.init(jax.random.key(0), x)
    return jax.tree.map(lambda _, p: p, variables["params"], {k: params[k] for k in variables["params"]})


@pytest.mark.parametrize("shape", [(4, 6), (3, 4, 4, 6)], ids=["dense", "nhwc"])
def test_stateless_norms_equal_flax(shape):
    x = _data(shape, loc=1.0, scale=2.0)
    params = _affine(shape[-1])
    cases = {
        "layer_norm": (lambda x: nn.layer_norm(params, x), linen.LayerNorm(epsilon=1e-5)),
        "group_norm_3": (lambda x: nn.group_norm(params, x, 3), linen.GroupNorm(num_groups=3, epsilon=1e-5)),
        "group_norm_1": (lambda x: nn.group_norm(params, x, 1), linen.GroupNorm(num_groups=1, epsilon=1e-5)),
        "rms_norm": (lambda x: nn.rms_norm({"scale": params["scale"]}, x), linen.RMSNorm(epsilon=1e-5)),
    }
    if len(shape) == 4:
        cases["instance_norm"] = (lambda x: nn.instance_norm(params, x), linen.InstanceNorm(epsilon=1e-5))

    @jax.jit
    def run(x):
        out = {}
        for name, (ours, module) in cases.items():
            out[name] = (ours(x), module.apply({"params": _flax_params(module, x, params)}, x))
        return out

    for name, (ours, ref) in run(x).items():
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL, err_msg=name)


def test_group_norm_with_one_channel_per_group_is_instance_norm():
    x = _data((2, 3, 3, 4))
    np.testing.assert_allclose(nn.group_norm(None, x, 4), nn.instance_norm(None, x), rtol=RTOL, atol=ATOL)


def test_weight_norm():
    kernel = _data((3, 3, 2, 4))
    params = nn.init_weight_norm(kernel)
    np.testing.assert_allclose(nn.weight_norm(params), kernel, rtol=1e-5, atol=1e-6)
    params = {"direction": kernel.at[..., 0].set(0.0), "scale": jnp.array([1.0, 2.0, 3.0, 4.0])}
    w = nn.weight_norm(params)
    norms = jnp.sqrt(jnp.sum(w**2, axis=(0, 1, 2)))
    np.testing.assert_allclose(norms, [0.0, 2.0, 3.0, 4.0], rtol=1e-5)
    grads = jax.grad(lambda p: nn.weight_norm(p).sum())(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_batch_norm_under_vmap_of_hyperparameters():
    params, state = nn.init_batch_norm(3)
    x = _data((16, 3))
    momenta = jnp.array([0.0, 0.5, 0.9])
    _, states = jax.vmap(lambda m: nn.batch_norm(params, state, x, training=True, momentum=m))(momenta)
    np.testing.assert_allclose(states["mean"][0], x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(states["mean"][1], 0.5 * x.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nn.batch_norm(*nn.init_batch_norm(4), jnp.ones((2, 5)), training=True), "5 features"),
        (lambda: nn.batch_norm(nn.init_batch_norm(5)[0], nn.init_batch_norm(4)[1], jnp.ones((2, 5)),
                               training=False), r"state\['mean'\] has shape \(4,\)"),
        (lambda: nn.batch_norm(*nn.init_batch_norm(5), jnp.ones((2, 5)), training=True, momentum=1.5),
         "momentum=1.5"),
        (lambda: nn.group_norm(None, jnp.ones((2, 4, 4, 6)), 4), "num_groups=4 must divide the number of channels 6"),
        (lambda: nn.group_norm(None, jnp.ones((2, 6)), 0), "num_groups=0"),
        (lambda: nn.layer_norm(nn.init_layer_norm(3), jnp.ones((2, 4))), "4 features"),
        (lambda: nn.layer_norm(None, jnp.ones((2, 4)), eps=-1.0), "eps=-1.0"),
        (lambda: nn.instance_norm(None, jnp.ones((2, 4))), "spatial"),
        (lambda: nn.init_batch_norm(0), "num_features=0"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
