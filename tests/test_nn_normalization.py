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
    # NumPy data: a new jax.random shape costs a compilation.
    rng = np.random.default_rng(seed)
    return jnp.asarray(loc + scale * rng.standard_normal(shape), jnp.float32)


def _affine(num_features, seed=1):
    return {"scale": 1 + 0.1 * _data((num_features,), seed),
            "bias": 0.1 * _data((num_features,), seed + 1)}


def test_batch_norm_equals_flax_over_several_steps():
    shapes = {"dense": (32, 6), "nhwc": (4, 5, 5, 6)}
    params = _affine(6)
    _, state = nn.init_batch_norm(6)
    module = linen.BatchNorm(momentum=0.9, epsilon=1e-5)
    stats = {"mean": jnp.zeros(6), "var": jnp.ones(6)}  # flax's initial batch_stats
    carry = {name: (state, {"params": params, "batch_stats": stats}) for name in shapes}

    @jax.jit
    def both(carry, xs):
        out, new_carry = {}, {}
        for name, x in xs.items():
            state, variables = carry[name]
            ours, state = nn.batch_norm(params, state, x, training=True)
            ref, upd = module.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
            variables = {"params": params, "batch_stats": upd["batch_stats"]}
            ours_eval, _ = nn.batch_norm(params, state, x, training=False)
            ref_eval = module.apply(variables, x, use_running_average=True)
            out[name] = (ours, ref, ours_eval, ref_eval)
            new_carry[name] = (state, variables)
        return new_carry, out

    for step in range(4):  # different statistics every step
        xs = {n: _data(s, seed=step, loc=step - 1.0, scale=1.0 + step) for n, s in shapes.items()}
        carry, out = both(carry, xs)
        for name, (ours, ref, ours_eval, ref_eval) in out.items():
            np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL, err_msg=name)
            np.testing.assert_allclose(ours_eval, ref_eval, rtol=RTOL, atol=ATOL, err_msg=name)
            state, variables = carry[name]
            for k in ("mean", "var"):
                np.testing.assert_allclose(getattr(state, k), variables["batch_stats"][k], rtol=RTOL,
                                           atol=ATOL, err_msg=f"{name} {k} step {step}")


def test_batch_norm_eval_returns_state_unchanged():
    params, state = nn.init_batch_norm(3)
    state = nn.BatchNormState(mean=jnp.array([1.0, 2.0, 3.0]), var=jnp.array([4.0, 1.0, 0.25]))
    x = _data((5, 3))
    y, new_state = nn.batch_norm(params, state, x, training=False, eps=0.0 + 1e-12)
    assert new_state is state
    np.testing.assert_allclose(y, (x - state.mean) / jnp.sqrt(state.var), rtol=1e-5)


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
            np.testing.assert_allclose(getattr(shard_state, k)[d], getattr(whole_state, k),
                                       rtol=RTOL, atol=ATOL)


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
    assert isinstance(out["state"], nn.BatchNormState)
    assert out["state"].var.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out["bn"], np.float32), np.broadcast_to(np.arange(6.0), x.shape), atol=1e-2)
    np.testing.assert_allclose(out["state"].var, 0.9, rtol=1e-6)  # 0.9 * 1 + 0.1 * 0
    assert np.all(np.isfinite(np.asarray(out["grad"], np.float32)))


def _flax_params(module, x, params):
    variables = module.init(jax.random.key(0), x)
    return jax.tree.map(lambda _, p: p, variables["params"], {k: params[k] for k in variables["params"]})


def test_stateless_norms_equal_flax():
    params = _affine(6)
    xs = {"dense": _data((4, 6), loc=1.0, scale=2.0), "nhwc": _data((3, 4, 4, 6), loc=1.0, scale=2.0)}
    cases = {
        "layer_norm": (lambda x: nn.layer_norm(params, x), linen.LayerNorm(epsilon=1e-5)),
        "group_norm_3": (lambda x: nn.group_norm(params, x, 3), linen.GroupNorm(num_groups=3, epsilon=1e-5)),
        "group_norm_1": (lambda x: nn.group_norm(params, x, 1), linen.GroupNorm(num_groups=1, epsilon=1e-5)),
        "rms_norm": (lambda x: nn.rms_norm({"scale": params["scale"]}, x), linen.RMSNorm(epsilon=1e-5)),
        "instance_norm": (lambda x: nn.instance_norm(params, x), linen.InstanceNorm(epsilon=1e-5)),
    }

    @jax.jit
    def run(xs):
        out = {}
        for shape, x in xs.items():
            for name, (ours, module) in cases.items():
                if name == "instance_norm" and x.ndim == 2:
                    continue
                out[name, shape] = (ours(x), module.apply({"params": _flax_params(module, x, params)}, x))
            if x.ndim == 4:  # group norm with one channel per group is instance norm
                out["group_norm_6_vs_instance", shape] = (nn.group_norm(None, x, 6), nn.instance_norm(None, x))
        return out

    for name, (ours, ref) in run(xs).items():
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL, err_msg=str(name))


def test_weight_norm():
    kernel = _data((3, 3, 2, 4))

    @jax.jit
    def run(kernel):
        same = nn.weight_norm(nn.init_weight_norm(kernel))
        params = {"direction": kernel.at[..., 0].set(0.0), "scale": jnp.array([1.0, 2.0, 3.0, 4.0])}
        w = nn.weight_norm(params)
        grads = jax.grad(lambda p: nn.weight_norm(p).sum())(params)
        return same, jnp.sqrt(jnp.sum(w**2, axis=(0, 1, 2))), grads

    same, norms, grads = run(kernel)
    np.testing.assert_allclose(same, kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norms, [0.0, 2.0, 3.0, 4.0], rtol=1e-5)  # zero column: no NaN
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_batch_norm_under_vmap_of_hyperparameters():
    params, state = nn.init_batch_norm(3)
    x = _data((16, 3))
    momenta = jnp.array([0.0, 0.5, 0.9])
    _, states = jax.vmap(lambda m: nn.batch_norm(params, state, x, training=True, momentum=m))(momenta)
    np.testing.assert_allclose(states.mean[0], x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(states.mean[1], 0.5 * x.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nn.batch_norm(*nn.init_batch_norm(4), jnp.ones((2, 5)), training=True), "5 features"),
        (lambda: nn.batch_norm(nn.init_batch_norm(5)[0], nn.init_batch_norm(4)[1], jnp.ones((2, 5)),
                               training=False), r"state.mean has shape \(4,\)"),
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


def test_batch_norm_state_is_a_named_tuple_and_a_dict_is_refused():
    params, state = nn.init_batch_norm(3)
    assert isinstance(state, nn.BatchNormState) and state._fields == ("mean", "var")
    np.testing.assert_array_equal(state.mean, np.zeros(3))
    np.testing.assert_array_equal(state.var, np.ones(3))
    _, new_state = nn.batch_norm(params, state, _data((4, 3)), training=True)
    assert isinstance(new_state, nn.BatchNormState)
    with pytest.raises(TypeError, match=r"state must be a BatchNormState\(mean, var\), got dict"):
        nn.batch_norm(params, {"mean": state.mean, "var": state.var}, _data((4, 3)), training=False)


def test_half_precision_statistics_are_computed_in_float32():
    # bf16 has 8 significant bits: around 256 its spacing is 2, so summing in bf16
    # would lose the spread entirely; the statistics must be taken in float32.
    x = (256.0 + 8.0 * _data((64, 4), seed=3)).astype(jnp.bfloat16)
    params, state = nn.init_batch_norm(4)
    y, new_state = jax.jit(lambda x: nn.batch_norm(params, state, x, training=True))(x)
    exact = np.asarray(x, np.float64)
    mean, var = exact.mean(0), exact.var(0)
    np.testing.assert_allclose(new_state.mean, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(new_state.var, 0.9 + 0.1 * var, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y, np.float64), (exact - mean) / np.sqrt(var + 1e-5), atol=2e-2)


@pytest.mark.parametrize("loc", [0.0, 1e4])
def test_one_pass_statistics_have_no_cancellation_at_a_large_mean(loc):
    # E[x^2] - E[x]^2 in float32 loses the variance when |mean| >> std (at 1e4 the
    # squares are 1e8 and their float32 spacing is 8, against a variance of 1);
    # the shifted one-pass statistics keep it to float32 rounding.
    x = _data((256, 8), seed=5, loc=loc)
    params, state = nn.init_batch_norm(8)
    y, new_state = nn.batch_norm(params, state, x, training=True, momentum=0.0)
    exact = np.asarray(x, np.float64)
    np.testing.assert_allclose(new_state.var, exact.var(0), rtol=1e-4)
    np.testing.assert_allclose(new_state.mean, exact.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y, (exact - exact.mean(0)) / np.sqrt(exact.var(0) + 1e-5), atol=1e-3)
    if loc:
        naive = jnp.mean(x * x, 0) - jnp.mean(x, 0) ** 2
        assert np.max(np.abs(np.asarray(naive) / exact.var(0) - 1)) > 0.1


def test_batch_norm_gradients_equal_the_two_pass_formula():
    x, params = _data((32, 6), seed=6, loc=3.0), _affine(6)
    dy = _data((32, 6), seed=7)

    def two_pass(params, x):
        mean = jnp.mean(x, 0)
        var = jnp.mean((x - mean) ** 2, 0)
        return (x - mean) / jnp.sqrt(var + 1e-5) * params["scale"] + params["bias"]

    def ours(params, x):
        return nn.batch_norm(params, nn.init_batch_norm(6)[1], x, training=True)[0]

    expected = jax.vjp(two_pass, params, x)[1](dy)
    got = jax.vjp(ours, params, x)[1](dy)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
