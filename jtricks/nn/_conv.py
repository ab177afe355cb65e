"""The NHWC convolution of :func:`jtricks.nn.conv2d`, with gradients laid out for XLA:CPU loops.

Reverse mode transposes a convolution into two others: the input gradient (a
convolution of the output gradient with the flipped kernel) and the kernel
gradient (a convolution of the input with the output gradient). For an
``NHWC`` / ``HWIO`` convolution JAX writes both with swapped dimension labels
(kernel ``HWOI``; input as ``CHWN``). At the top level of a program XLA:CPU
rewrites such convolutions into its canonical ``b01f_01io->b01f`` form with
explicit transposes and runs them in its fast convolution kernels, but it does
not inside a loop body (``lax.scan``, ``fori_loop``; jax-ml/jax#12868), where
they fall back to a naive loop nest: a training step of :func:`jtricks.nn.cnn`
inside a compiled epoch (:func:`jtricks.train.make_epoch`) ran 2.5× slower
than the same step called once per batch, and the kernel gradient alone
7-20× slower.

:func:`conv` is the same function with a custom JVP whose tangent maps are
written in the layouts whose JAX transposes are canonical: the input tangent
takes the kernel stored as ``(kh, kw, out, in)`` (labels ``HWOI``), so its
transpose reads it as ``HWIO``; the kernel tangent takes the input as ``(C, H,
W, N)`` (labels ``CHWN``), the kernel tangent as ``(in, kh, kw, out)``
(``IHWO``) and gives ``(H, W, N, C)`` (``HWNC``), so the transposed
convolution reads ``b01f_01io->b01f``. Nothing else changes: the primal is the
plain convolution, the maths of every derivative is JAX's own (the same
numbers, bit for bit in the tests), and since it is a JVP rule built of plain
``lax`` operations, forward mode, ``vmap`` and higher derivatives (Hessian-
vector products, gradients of gradients) work as on ``lax.conv_general_dilated``.
"""

from __future__ import annotations

import functools

import jax
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def conv(x: jax.Array, kernel: jax.Array, strides: tuple, padding: tuple) -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, strides, padding)`` on NHWC / HWIO.

    ``padding`` is a pair of ``(low, high)`` pairs (see
    :func:`jax.lax.padtype_to_pads`).
    """
    return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC)


def _input_tangent(x_dot, kernel, strides, padding):
    """``conv(x_dot, kernel)``, kernel stored ``(kh, kw, out, in)``: its transpose is canonical."""
    return lax.conv_general_dilated(x_dot, kernel.transpose(0, 1, 3, 2), strides, padding,
                                    dimension_numbers=("NHWC", "HWOI", "NHWC"))


def _kernel_tangent(x, kernel_dot, strides, padding):
    """``conv(x, kernel_dot)`` as ``(C, H, W, N) * (in, kh, kw, out) -> (H, W, N, C)``."""
    y = lax.conv_general_dilated(x.transpose(3, 1, 2, 0), kernel_dot.transpose(2, 0, 1, 3),
                                 strides, padding, dimension_numbers=("CHWN", "IHWO", "HWNC"))
    return y.transpose(2, 0, 1, 3)


@conv.defjvp
def _conv_jvp(strides, padding, primals, tangents):
    x, kernel = primals
    x_dot, kernel_dot = tangents
    y = conv(x, kernel, strides, padding)
    y_dot = (_input_tangent(x_dot, kernel, strides, padding)
             + _kernel_tangent(x, kernel_dot, strides, padding))
    return y, y_dot
