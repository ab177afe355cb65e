"""jtricks.init against its oracle, jax.nn.initializers: same arguments, same key, same values.

One table: each row is a jtricks initializer, JAX's initializer for the same arguments
(positional, in JAX's order) and the tolerance (0: bit for bit). flax linen ``Dense`` and
nnx ``Linear`` take either as ``kernel_init`` and get the same kernel; ``out_sharding``
places the result as JAX's does; bad axes fail at construction or at the call with the
argument and its value.
"""

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jtricks import init

J = jax.nn.initializers
DENSE, CONV, STACK = (64, 32), (3, 3, 4, 8), (4, 16, 8)  # STACK: a batch of (out, in) kernels
EQX = dict(in_axis=-1, out_axis=-2, batch_axis=0)  # equinox's (out, in) weights, stacked
# Truncation constant (std of a standard normal truncated to [-2, 2]): jtricks rescales.
C = init._TRUNCATED_STD

# name -> (jtricks initializer, JAX initializer, atol, shapes)
ROWS = {
    **{f"variance_scaling/{m}/{d}": (init.variance_scaling(1.7, m, d), J.variance_scaling(1.7, m, d),
                                     0, (CONV,))
       for m in ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
       for d in ("normal", "truncated_normal", "uniform")},
    "variance_scaling/axes": (init.variance_scaling(0.5, "fan_avg", "normal", -1, -2, 0),
                              J.variance_scaling(0.5, "fan_avg", "normal", -1, -2, 0), 0, (STACK,)),
    "variance_scaling/axis-sequences": (init.variance_scaling(2.0, "fan_in", "uniform", (0, 1), 3),
                                        J.variance_scaling(2.0, "fan_in", "uniform", (0, 1), 3),
                                        0, (CONV,)),
    "gaussian": (init.gaussian(), J.variance_scaling(1.0, "fan_in", "normal"), 0, (DENSE,)),
    "lecun_normal": (init.lecun_normal(), J.variance_scaling(1.0, "fan_in", "normal"), 0, (DENSE,)),
    "lecun_normal/truncated": (init.lecun_normal(truncated=True), J.lecun_normal(), 0, (DENSE,)),
    "lecun_uniform": (init.lecun_uniform(), J.lecun_uniform(), 0, (DENSE,)),
    "glorot_uniform": (init.glorot_uniform(), J.glorot_uniform(), 0, (DENSE,)),
    "glorot_normal/truncated": (init.glorot_normal(truncated=True), J.glorot_normal(), 0, (DENSE,)),
    "he_uniform": (init.he_uniform(), J.he_uniform(), 0, (DENSE,)),
    "he_normal/truncated": (init.he_normal(truncated=True), J.he_normal(), 0, (DENSE,)),
    **{f"{name}/equinox-axes": (getattr(init, name)(**EQX), getattr(J, name)(**EQX), 0, (STACK,))
       for name in ("lecun_uniform", "glorot_uniform", "he_uniform")},
    **{f"{name}/truncated/equinox-axes": (getattr(init, name)(-1, -2, 0, truncated=True),
                                          getattr(J, name)(-1, -2, 0), 0, (STACK,))
       for name in ("lecun_normal", "glorot_normal", "he_normal")},
    "xavier_uniform": (init.xavier_uniform(), J.xavier_uniform(), 0, (DENSE,)),
    "kaiming_normal/truncated": (init.kaiming_normal(truncated=True), J.kaiming_normal(), 0, (DENSE,)),
    "normal": (init.normal(0.3), J.normal(0.3), 0, (DENSE,)),
    "normal/truncated": (init.normal(0.3, truncated=True), J.truncated_normal(0.3 / C), 0, (DENSE,)),
    # jtricks' uniform is symmetric, [-s, s); JAX's is [0, s): the same bits, shifted
    "uniform": (init.uniform(0.3), lambda k, s, d=jnp.float32, out_sharding=None:
                J.uniform(0.6)(k, s, d, out_sharding) - 0.3,
                3e-8, (DENSE,)),
    "constant": (init.constant(0.25), J.constant(0.25), 0, (DENSE,)),
    "zeros": (init.zeros, J.zeros, 0, (DENSE,)),
    "ones": (init.ones, J.ones, 0, (DENSE,)),
    # jtricks' QR (sign-corrected, Haar) against jax.random.orthogonal: rounding only
    "orthogonal": (init.orthogonal(1.5), J.orthogonal(1.5), 3e-6, (DENSE, (32, 64))),
    "orthogonal/column_axis": (init.orthogonal(1.0, 0), J.orthogonal(1.0, 0), 3e-6, (DENSE,)),
}


@pytest.fixture(scope="module")
def drawn():
    """Every row on each of its shapes, jtricks (float32 and bfloat16) and JAX, in ONE program.

    Compilation dominates on a loaded CPU: one program, and the cheap-to-compile ``rbg``
    PRNG (initializers accept any key; the values agree for every key type).
    """
    def run(key):
        return {(name, shape): (ours(key, shape), ours(key, shape, jnp.bfloat16), theirs(key, shape))
                for name, (ours, theirs, _, shapes) in ROWS.items() for shape in shapes}
    return jax.jit(run)(jax.random.key(7, impl="rbg"))


def test_every_initializer_equals_jax(drawn):
    assert {name for name, _ in drawn} == set(ROWS)
    for (name, shape), (ours, _, theirs) in drawn.items():
        atol = ROWS[name][2]
        assert ours.shape == shape and ours.dtype == jnp.float32, name
        if atol == 0:
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} {shape}")
        else:
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol, err_msg=f"{name} {shape}")


def test_half_precision_is_jax_float32_draw_rounded_once(drawn):
    # JAX draws bfloat16 from 16 random bits (128 distinct normal values, variance ~1% low);
    # jtricks draws in float32 and rounds once: JAX's float32 kernel, cast.
    for (name, shape), (_, ours, theirs) in drawn.items():
        assert ours.dtype == jnp.bfloat16, name
        expected = np.asarray(theirs.astype(jnp.bfloat16), np.float32)
        atol = ROWS[name][2]
        np.testing.assert_allclose(np.asarray(ours, np.float32), expected, rtol=2.0**-8 if atol else 0,
                                   atol=atol, err_msg=f"{name} {shape}")


def test_float64_equals_jax():
    names = ["variance_scaling/fan_avg/truncated_normal", "he_uniform", "normal", "lecun_normal"]
    with jax.enable_x64(True):
        key = jax.random.key(3, impl="rbg")
        for name in names:
            ours, theirs, _, _ = ROWS[name]
            a, b = ours(key, CONV, jnp.float64), theirs(key, CONV, jnp.float64)
            assert a.dtype == jnp.float64, name
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_aliases():
    assert init.xavier_uniform is init.glorot_uniform
    assert init.xavier_normal is init.glorot_normal
    assert init.kaiming_uniform is init.he_uniform
    assert init.kaiming_normal is init.he_normal


def test_factory_dtype_is_the_default():
    w = init.he_uniform(dtype=jnp.bfloat16)(jax.random.key(0, impl="rbg"), DENSE)
    assert w.dtype == jnp.bfloat16
    assert init.constant(1.0, jnp.float16)(jax.random.key(0), (2,)).dtype == jnp.float16
    assert init.orthogonal(dtype=jnp.bfloat16)(jax.random.key(0, impl="rbg"), DENSE, jnp.float32).dtype == jnp.float32


FLAX_ROWS = ["he_normal/truncated", "glorot_uniform"]


@pytest.mark.parametrize("name", FLAX_ROWS)
def test_flax_linen_and_nnx_kernel_init(name):
    ours, theirs, atol, _ = ROWS[name]
    x = jnp.ones((2, 48))

    def linen_kernel(kernel_init):
        return linen.Dense(24, kernel_init=kernel_init).init(jax.random.key(0), x)["params"]["kernel"]

    def nnx_kernel(kernel_init):
        return nnx.Linear(48, 24, kernel_init=kernel_init, rngs=nnx.Rngs(0)).kernel[...]

    for make in (linen_kernel, nnx_kernel):
        a, b = make(ours), make(theirs)
        assert a.shape == (48, 24)
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=f"{name} {make.__name__}")


@pytest.fixture(scope="module")
def mesh():
    return jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))


@pytest.mark.parametrize("name", ["he_normal/truncated", "he_uniform", "normal", "uniform",
                                  "constant", "zeros", "orthogonal"])
def test_out_sharding(mesh, name):
    """Placed as asked, with JAX's values for the same placement (JAX's orthogonal has none)."""
    ours, theirs, atol, _ = ROWS[name]
    key = jax.random.key(5, impl="rbg")
    named, spec = NamedSharding(mesh, P("x", None)), P(None, "x")
    with jax.set_mesh(mesh):
        w = ours(key, DENSE, jnp.float32, named)
        v = jax.jit(lambda k: ours(k, DENSE, out_sharding=spec))(key)
        if name == "orthogonal":
            w_ref = v_ref = theirs(key, DENSE)
        else:
            w_ref = theirs(key, DENSE, jnp.float32, named)
            v_ref = jax.jit(lambda k: theirs(k, DENSE, out_sharding=spec))(key)
    assert w.sharding.spec == P("x", None) and v.sharding.spec == spec, name
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=atol, err_msg=name)
    np.testing.assert_allclose(v, v_ref, rtol=0, atol=atol, err_msg=name)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: init.he_normal(-1, -1), ValueError, "in_axis=-1 and out_axis=-1 share axis -1"),
        (lambda: init.glorot_uniform(0, 1, (1, 2)), ValueError, r"out_axis=1 and batch_axis=\(1, 2\)"),
        (lambda: init.lecun_normal((0, 0)), ValueError, r"in_axis=\(0, 0\) names an axis twice"),
        (lambda: init.he_uniform(1.5), TypeError, "in_axis=1.5 must be an int"),
        (lambda: init.variance_scaling(1.0, "fan_in", "normal", -2, True), TypeError, "out_axis=True"),
        (lambda: init.orthogonal(1.0, "0"), TypeError, "column_axis='0'"),
    ],
)
def test_bad_axes_fail_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "fn, shape, match",
    [
        (init.he_normal(0, 5), CONV, r"out_axis=5 is out of range for shape=\(3, 3, 4, 8\)"),
        (init.he_normal(-3, 1), DENSE, "in_axis=-3 is out of range"),
        (init.glorot_normal(0, -2), DENSE, "in_axis=0 and out_axis=-2 share axis 0"),
        (init.he_uniform(batch_axis=-4), STACK, "batch_axis=-4 is out of range"),
        (init.orthogonal(1.0, 2), DENSE, "column_axis=2 is out of range"),
    ],
)
def test_axes_that_do_not_fit_the_shape_fail_at_the_call(fn, shape, match):
    with pytest.raises(ValueError, match=match):
        fn(jax.random.key(0), shape)


def test_compute_fans_with_axes():
    assert init.compute_fans(STACK, **EQX) == (8, 16)
    assert init.compute_fans(CONV, (0, 1), 3) == (36, 32)
    assert init.compute_fans((5, 7), 0, ()) == (35, 7)  # no output axis: axis 1 is receptive
    assert init.compute_fans((7,), 0, ()) == (7, 1)  # a vector, with axes given
