"""jtricks.nn.conv2d's convolution: JAX's numbers under every transform, canonical gradients in loops.

The oracle is ``lax.conv_general_dilated`` itself (NHWC / HWIO): the custom JVP
of ``jtricks.nn._conv`` only lays the tangent maps out differently, so every
derivative must equal JAX's, bit for bit in float64.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jtricks import nn
from jtricks.nn import _conv

CASES = [  # (height, width, kernel h, kernel w, strides, padding)
    (7, 9, 3, 1, (2, 1), "SAME"),
    (9, 6, 4, 3, (3, 2), "VALID"),
]


def _reference(x, k, strides, pads):
    return lax.conv_general_dilated(x, k, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.fixture(scope="module", autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("h,w,kh,kw,strides,padding", CASES)
def test_every_derivative_equals_jax_convolution(h, w, kh, kw, strides, padding):
    rng = np.random.default_rng(h * w + kh)
    x = jnp.asarray(rng.normal(size=(3, h, w, 4)))
    k = jnp.asarray(rng.normal(size=(kh, kw, 4, 5)))
    pads = tuple(lax.padtype_to_pads((h, w), (kh, kw), strides, padding))

    def results(conv):
        f = lambda x, k: jnp.sum(jnp.sin(conv(x, k, strides, pads)))  # noqa: E731
        grad_k = jax.grad(f, 1)
        return {
            "value": conv(x, k, strides, pads),
            "grad": jax.jit(jax.grad(f, (0, 1)))(x, k),
            "jvp": jax.jvp(lambda x, k: conv(x, k, strides, pads), (x, k), (0.3 * x, 0.7 * k))[1],
            "hvp": jax.jvp(lambda k: grad_k(x, k), (k,), (0.1 * k,))[1],
            "grad of grad": jax.grad(lambda x: jnp.sum(grad_k(x, k) ** 2))(x),
            "vmap of grad": jax.vmap(lambda xx: grad_k(xx, k))(jnp.stack([x, 2 * x])),
            "vmap over kernels": jax.vmap(jax.grad(f, (0, 1)), (None, 0))(x, jnp.stack([k, -k])),
        }

    ours, theirs = results(_conv.conv), results(_reference)
    for name in ours:
        for a, b in zip(jax.tree.leaves(ours[name]), jax.tree.leaves(theirs[name])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


def _conv_labels(compiled_text: str | None) -> list[str]:
    return re.findall(r"convolution\(.*?dim_labels=([^,\s]+)", compiled_text or "")


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the layout rule is XLA:CPU's")
def test_gradients_inside_a_scan_are_canonical_convolutions():
    """Inside a loop XLA:CPU leaves JAX's transposed convolutions in their swapped labels
    (jax-ml/jax#12868, 7-20x slower); conv2d's gradients must all be ``b01f_01io->b01f``."""
    params = {"a": nn.init_conv2d(jax.random.key(0), 4, 8, 3),
              "b": nn.init_conv2d(jax.random.key(1), 8, 8, 3)}
    xs = jnp.ones((3, 2, 6, 6, 4), jnp.float32)

    def epoch(loss):
        def body(p, x):
            g = jax.grad(loss)(p, x)
            return jax.tree.map(lambda a, b: a - 0.1 * b, p, g), None
        return jax.jit(lambda p, xs: jax.lax.scan(body, p, xs)[0])

    def ours(p, x):
        return jnp.sum(nn.conv2d(p["b"], nn.conv2d(p["a"], x, stride=2)) ** 2)

    def plain(p, x):
        pads = ((0, 1), (0, 1))
        y = _reference(x, p["a"]["kernel"], (2, 2), pads) + p["a"]["bias"]
        return jnp.sum((_reference(y, p["b"]["kernel"], (1, 1), ((1, 1), (1, 1))) + p["b"]["bias"]) ** 2)

    labels = _conv_labels(epoch(ours).lower(params, xs).compile().as_text())
    # two forwards, two kernel gradients, the input gradient of the second
    assert len(labels) == 5, labels
    assert set(labels) == {"b01f_01io->b01f"}, labels
    # the check can fail: JAX's own transposes stay non-canonical inside the loop
    assert set(_conv_labels(epoch(plain).lower(params, xs).compile().as_text())) != {
        "b01f_01io->b01f"}
