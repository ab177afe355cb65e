"""Tests of jtricks.init: exact variances, fans, errors (equality with JAX: test_init_jax.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import init

DENSE = (256, 512)
CONV = (3, 3, 32, 64)  # fan_in 288, fan_out 576


def _fans(shape):
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


# name -> (initializer, variance as a function of (fan_in, fan_out))
TABLE = {
    "uniform": (init.uniform(0.05), lambda i, o: 0.05**2 / 3),
    "normal": (init.normal(0.02), lambda i, o: 0.02**2),
    "gaussian": (init.gaussian(), lambda i, o: 1 / i),
    "lecun_normal": (init.lecun_normal(), lambda i, o: 1 / i),
    "lecun_normal_truncated": (init.lecun_normal(truncated=True), lambda i, o: 1 / i),
    "glorot_uniform": (init.glorot_uniform(), lambda i, o: 2 / (i + o)),
    "glorot_normal": (init.glorot_normal(), lambda i, o: 2 / (i + o)),
    "xavier_normal_truncated": (init.xavier_normal(truncated=True), lambda i, o: 2 / (i + o)),
    "he_uniform": (init.he_uniform(), lambda i, o: 2 / i),
    "he_normal": (init.he_normal(), lambda i, o: 2 / i),
    "kaiming_normal_truncated": (init.kaiming_normal(truncated=True), lambda i, o: 2 / i),
    "fan_out_uniform": (init.variance_scaling(3.0, "fan_out", "uniform"), lambda i, o: 3 / o),
    "orthogonal": (init.orthogonal(1.5), None),  # exact, checked separately
}


def _orthogonal_variance(shape):
    cols = shape[-1]
    rows = math.prod(shape) // cols
    return 1.5**2 / max(rows, cols)


def _sample_all(fns, shapes, dtype=jnp.float32, key=None):
    """Calls every initializer on every shape in ONE compiled program.

    Compilation dominates the run time of these tests on a loaded CPU, so each
    test compiles a single program; the large statistical samples use the
    cheap-to-compile ``rbg`` PRNG by default (initializers accept any key type).
    """
    key = jax.random.key(0, impl="rbg") if key is None else key
    return jax.jit(
        lambda k: {(name, shape): fn(k, shape, dtype) for name, fn in fns.items() for shape in shapes}
    )(key)


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@pytest.fixture(scope="module")
def samples():
    fns = {name: fn for name, (fn, _) in TABLE.items()}
    key = jax.random.key(0, impl="rbg")

    def all_dtypes(k):
        return {dname: {(n, s): fn(k, s, dtype) for n, fn in fns.items() for s in (DENSE, CONV)}
                for dname, dtype in DTYPES.items()}

    return jax.jit(all_dtypes)(key)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("shape", ["dense", "conv"])
@pytest.mark.parametrize("name", sorted(TABLE))
def test_variance_matches_docstring(samples, name, shape, dtype):
    shape = DENSE if shape == "dense" else CONV
    w = samples[dtype][name, shape]
    assert w.shape == shape and w.dtype == DTYPES[dtype]
    x = np.asarray(w, np.float64).ravel()
    n = x.size
    var_fn = TABLE[name][1]
    expected = _orthogonal_variance(shape) if var_fn is None else var_fn(*_fans(shape))
    # Sample variance of n iid draws: std <= sqrt(2/n) * var (normal; smaller for
    # uniform/truncated); 5 sigma, plus the rounding of half-precision dtypes.
    rounding = 0.0 if dtype == "float32" else 2 * 2.0**-8
    assert abs(x.var() / expected - 1) < 5 * math.sqrt(2 / n) + rounding
    assert abs(x.mean()) < 5 * math.sqrt(expected / n)


def test_float64_variance():
    with jax.enable_x64(True):
        w = init.he_normal()(jax.random.key(1), DENSE, jnp.float64)
        assert w.dtype == jnp.float64
        assert abs(np.var(w) * DENSE[0] / 2 - 1) < 5 * math.sqrt(2 / w.size)


def test_uniform_is_symmetric_and_bounded():
    w = np.asarray(init.uniform(0.3)(jax.random.key(0), (100_000,)))
    assert w.min() >= -0.3 and w.max() < 0.3
    assert (w < 0).mean() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("shape", [(4, 5), (3, 3, 8, 16), (2, 2, 2, 3, 7)])
def test_fans(shape):
    assert init.compute_fans(shape) == _fans(shape)
    assert init.compute_fans(shape, in_axis=0, out_axis=1)[0] == math.prod(shape) // shape[1]


def test_orthogonal_is_orthonormal():
    shapes = [(50, 30), (30, 50), (3, 3, 4, 16)]
    out = _sample_all({"o": init.orthogonal()}, shapes)
    for shape in shapes:
        m = np.asarray(out["o", shape]).reshape(-1, shape[-1])
        gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5, err_msg=str(shape))


def test_keys_make_results_reproducible():
    # one initializer per sampling code path
    names = ["uniform", "he_normal", "he_uniform", "lecun_normal_truncated", "orthogonal"]
    fns = {name: TABLE[name][0] for name in names}
    keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    out = jax.jit(jax.vmap(lambda k: {n: fn(k, (16, 8)) for n, fn in fns.items()}))(keys)
    for name in fns:
        a, b, c = out[name]
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert not np.array_equal(a, c), name


def test_traced_scale_under_jit_and_vmap():
    traces = []

    @jax.jit
    def sample(scale):
        traces.append(None)
        return init.variance_scaling(scale, "fan_in", "normal")(jax.random.key(0), (1000, 100))

    v1, v2 = jnp.var(sample(1.0)), jnp.var(sample(4.0))
    assert len(traces) == 1
    assert float(v2 / v1) == pytest.approx(4.0, rel=1e-5)
    scales = jnp.array([0.5, 2.0])
    ws = jax.vmap(lambda s: init.uniform(s)(jax.random.key(0), (64, 64)))(scales)
    np.testing.assert_allclose(ws[1], 4 * ws[0], rtol=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: init.variance_scaling(1.0, "fan_sum", "normal"), "mode='fan_sum'"),
        (lambda: init.variance_scaling(1.0, "fan_in", "cauchy"), "distribution='cauchy'"),
        (lambda: init.variance_scaling(-1.0, "fan_in", "normal"), "scale=-1.0"),
        (lambda: init.variance_scaling(float("nan"), "fan_in", "normal"), "NaN"),
        (lambda: init.uniform(-0.1), "scale=-0.1"),
        (lambda: init.normal(-1.0), "stddev=-1.0"),
    ],
)
def test_bad_construction_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "fn", [init.he_normal(), init.glorot_uniform(), init.gaussian(), init.orthogonal()]
)
@pytest.mark.parametrize("shape", [(), (7,)])
def test_fans_need_two_axes(fn, shape):
    with pytest.raises(ValueError, match="fewer than two axes"):
        fn(jax.random.key(0), shape)


def test_shape_free_initializers_accept_vectors():
    key = jax.random.key(0)
    assert init.uniform(1.0)(key, (5,)).shape == (5,)
    assert init.normal()(key, 5).shape == (5,)
    np.testing.assert_array_equal(init.zeros(key, (3,), jnp.bfloat16), np.zeros(3))
    assert init.ones(key, (3,), jnp.float16).dtype == jnp.float16
    np.testing.assert_allclose(init.constant(0.5)(key, (2, 2)), 0.5)


def test_integer_dtype_rejected():
    with pytest.raises(TypeError, match="floating"):
        init.he_normal()(jax.random.key(0), (3, 4), jnp.int32)


def _preactivation_stds(kernel_inits, activation, depth=50, width=256):
    """Std of the pre-activations of each layer of a deep fully connected net, per init."""

    def run(kernel_init):
        def layer(h, k):
            z = h @ kernel_init(k, (width, width))
            return activation(z), jnp.std(z)

        h0 = jax.random.normal(jax.random.key(1, impl="rbg"), (256, width))
        return jax.lax.scan(layer, h0, jax.random.split(jax.random.key(0, impl="rbg"), depth))[1]

    return [np.asarray(s) for s in jax.jit(lambda: [run(f) for f in kernel_inits])()]


@pytest.mark.parametrize(
    "activation, good",
    [(jnp.tanh, init.glorot_normal()), (jax.nn.relu, init.he_normal())],
    ids=["tanh-glorot", "relu-he"],
)
def test_deep_signal_survives_with_scaled_init_and_not_with_unit_normal(activation, good):
    stds, big, tiny = _preactivation_stds([good, init.normal(1.0), init.normal(0.01)], activation)
    assert np.all(np.isfinite(stds))
    # bounded across 50 layers (tanh shrinks the signal slowly, like 1/sqrt(depth))
    assert stds.max() / stds.min() < 20
    # N(0, 1): the variance is multiplied by about the width at every layer:
    # ReLU overflows, tanh sits on its flat part at every layer (|z| ~ 16).
    with np.errstate(invalid="ignore", over="ignore"):
        if activation is jnp.tanh:
            assert big.min() > 10 * stds.max()
        else:
            assert not np.isfinite(big[-1]) or big[-1] > 1e30
    # ... and a too-small scale makes the signal vanish
    assert tiny[-1] < 1e-6 * stds[-1]
