"""Weight initializers: keep the variance of the signal through every layer.

An initializer is a function ``init(key, shape, dtype=jnp.float32) -> Array``,
exactly as in :mod:`jax.nn.initializers`, so every initializer here is usable
as a flax ``kernel_init``. Factories are called to get the initializer
(``he_normal()``); ``zeros`` and ``ones`` are initializers themselves.

Fan-in and fan-out follow :mod:`jax.nn.initializers`: for a kernel of shape
``(..., n_in, n_out)`` the last axis holds the outputs, the second-to-last the
inputs and every other axis is receptive field, so a dense kernel ``(n_in,
n_out)`` has ``fan_in = n_in`` and a convolution kernel ``(kh, kw, c_in,
c_out)`` (HWIO) has ``fan_in = kh * kw * c_in`` and ``fan_out = kh * kw *
c_out``.

``dtype`` is the dtype of the returned array, as in
:mod:`jax.nn.initializers` (flax passes its ``param_dtype`` there; the random
draws are computed in at least float32 and cast).

Every random initializer is one case of :func:`variance_scaling`, which draws
weights of mean 0 and variance exactly ``scale / n`` with ``n`` the fan chosen
by ``mode``. Normal distributions are plain (not truncated) unless
``truncated=True``; a truncated normal is rescaled so that its variance is still
exactly ``scale / n``.

Example:
  >>> import jax, jtricks
  >>> w = jtricks.init.he_normal()(jax.random.key(0), (784, 256))
  >>> w.shape
  (784, 256)
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._numeric import compute_dtype
from jtricks._validate import (
    check_axis,
    check_bool,
    check_choice,
    check_int,
    check_non_negative,
    check_number,
    check_positive,
    check_shape,
    show,
)

Initializer = Callable[..., jax.Array]

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
# Standard deviation of a standard normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


def _canonical_shape(shape) -> tuple[int, ...]:
    return check_shape("shape", shape)


def _float_dtype(dtype):
    try:
        as_dtype = jnp.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype={show(dtype)} is not a dtype") from None
    if not jnp.issubdtype(as_dtype, jnp.floating):
        raise TypeError(f"dtype={as_dtype} must be a floating-point dtype")
    return as_dtype


def compute_fans(shape: Sequence[int], in_axis: int = -2, out_axis: int = -1) -> tuple[int, int]:
    """Fan-in and fan-out of a kernel, as in :mod:`jax.nn.initializers`.

    Args:
      shape: the kernel's shape, at least two axes.
      in_axis: the axis of the inputs (default the second-to-last).
      out_axis: the axis of the outputs (default the last).

    Returns:
      ``(fan_in, fan_out)``: ``shape[in_axis]`` and ``shape[out_axis]`` each
      multiplied by the receptive-field size (product of the other axes).

    Raises:
      ValueError: if ``shape`` has fewer than two axes or negative sizes, or
        ``in_axis`` / ``out_axis`` are out of range or the same axis.
      TypeError: if ``shape`` is not a tuple of integers.

    Example:
      >>> compute_fans((3, 3, 16, 32))
      (144, 288)
    """
    shape = _canonical_shape(shape)
    if len(shape) < 2:
        raise ValueError(
            f"shape={shape} has fewer than two axes: fan-in and fan-out need a kernel "
            "of shape (..., n_in, n_out); use zeros/ones/uniform/normal for biases"
        )
    i, o = check_axis("in_axis", in_axis, len(shape)), check_axis("out_axis", out_axis, len(shape))
    if i == o:
        raise ValueError(f"in_axis={in_axis} and out_axis={out_axis} are the same axis of "
                         f"shape={shape}")
    receptive = math.prod(d for axis, d in enumerate(shape) if axis not in (i, o))
    return shape[i] * receptive, shape[o] * receptive


def zeros(key, shape, dtype=jnp.float32) -> jax.Array:
    """All-zero initializer (for biases; never for weights: units stay identical)."""
    del key
    return jnp.zeros(_canonical_shape(shape), _float_dtype(dtype))


def ones(key, shape, dtype=jnp.float32) -> jax.Array:
    """All-one initializer (for normalisation scales; never for weights)."""
    del key
    return jnp.ones(_canonical_shape(shape), _float_dtype(dtype))


def constant(value) -> Initializer:
    """Initializer filling every entry with ``value``.

    Args:
      value: a finite real number (or an array broadcastable to the shape).

    Raises:
      ValueError: if ``value`` is NaN or infinite.
      TypeError: if ``value`` is not a real number.

    Example:
      >>> constant(0.1)(jax.random.key(0), (2,))
      Array([0.1, 0.1], dtype=float32)
    """
    check_number("value", value, scalar=False)

    def init(key, shape, dtype=jnp.float32) -> jax.Array:
        del key
        return jnp.full(_canonical_shape(shape), value, _float_dtype(dtype))

    return init


def _sample(key, shape, dtype, distribution: str, variance) -> jax.Array:
    """Draws zero-mean samples of exactly ``variance`` (computed in >= float32)."""
    shape = _canonical_shape(shape)
    dtype = _float_dtype(dtype)
    work = compute_dtype(dtype)
    std = jnp.sqrt(jnp.asarray(variance, work))
    if distribution == "normal":
        x = jax.random.normal(key, shape, work)
    elif distribution == "truncated_normal":
        x = jax.random.truncated_normal(key, -2.0, 2.0, shape, work) / _TRUNCATED_STD
    else:  # U[-1, 1) has variance 1/3
        x = jax.random.uniform(key, shape, work, -1.0, 1.0)
        std = std * math.sqrt(3.0)
    return (x * std).astype(dtype)


def uniform(scale=1e-2) -> Initializer:
    """Symmetric uniform initializer on ``[-scale, scale)``.

    The weights have mean 0 and variance exactly ``scale**2 / 3``. Unlike
    ``jax.nn.initializers.uniform`` (which samples ``[0, scale)``) the range is
    symmetric, as in the lesson.

    Args:
      scale: half-width of the interval, ``>= 0`` (may be a traced value).

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32)``.

    Raises:
      ValueError: if ``scale`` is negative, NaN or infinite.
      TypeError: if ``scale`` is not a real number.

    Example:
      >>> w = uniform(0.05)(jax.random.key(0), (3, 4))
      >>> bool(jnp.all((w >= -0.05) & (w < 0.05)))
      True
    """
    check_non_negative("scale", scale)

    def init(key, shape, dtype=jnp.float32) -> jax.Array:
        shape = _canonical_shape(shape)
        dtype = _float_dtype(dtype)
        work = compute_dtype(dtype)
        x = jax.random.uniform(key, shape, work, -1.0, 1.0)
        return (x * jnp.asarray(scale, work)).astype(dtype)

    return init


def normal(stddev=1.0, *, truncated: bool = False) -> Initializer:
    """Normal initializer N(0, stddev**2), independent of the fans.

    ``normal(1.0)`` is the lesson's "bad idea": with ``n`` inputs the output
    variance grows like ``n`` per layer.

    Args:
      stddev: the standard deviation (variance is ``stddev**2``), ``>= 0``.
      truncated: draw from a normal truncated at two standard deviations,
        rescaled so that the variance is still exactly ``stddev**2``.

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32)``.

    Raises:
      ValueError: if ``stddev`` is negative, NaN or infinite.
      TypeError: if ``stddev`` is not a real number or ``truncated`` not a bool.

    Example:
      >>> w = normal(0.01)(jax.random.key(0), (3, 4))
      >>> w.shape, float(jnp.abs(w).max()) < 0.05
      ((3, 4), True)
    """
    check_non_negative("stddev", stddev)
    distribution = _normal_distribution(truncated)

    def init(key, shape, dtype=jnp.float32) -> jax.Array:
        return _sample(key, shape, dtype, distribution, jnp.square(jnp.asarray(stddev)))

    return init


def variance_scaling(
    scale,
    mode: str,
    distribution: str,
    *,
    in_axis: int = -2,
    out_axis: int = -1,
) -> Initializer:
    """The general initializer: mean 0 and variance exactly ``scale / n``.

    ``n`` is ``fan_in`` (``mode="fan_in"``), ``fan_out`` (``"fan_out"``) or
    ``(fan_in + fan_out) / 2`` (``"fan_avg"``), with the fans of
    :func:`compute_fans`. The distribution is

    - ``"normal"``: N(0, scale / n);
    - ``"truncated_normal"``: a normal truncated at two standard deviations and
      rescaled (by 1 / 0.8796...) so that its variance is still ``scale / n``;
    - ``"uniform"``: U[-limit, limit) with ``limit = sqrt(3 * scale / n)``.

    Args:
      scale: multiplier of the variance, ``> 0`` (may be a traced value).
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
      distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
      in_axis: axis of the kernel's inputs.
      out_axis: axis of the kernel's outputs.

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32)``; calling it on a
      shape with fewer than two axes raises ``ValueError``.

    Raises:
      ValueError: at construction, for an unknown ``mode`` or ``distribution``,
        a ``scale`` that is not positive and finite, or ``in_axis == out_axis``;
        when called, for axes out of range of the shape or naming the same axis.
      TypeError: for a non-integer ``in_axis`` / ``out_axis``.

    References:
      He, Zhang, Ren, Sun. "Delving Deep into Rectifiers: Surpassing Human-Level
      Performance on ImageNet Classification". https://arxiv.org/abs/1502.01852, 2015.

    Example:
      >>> init = variance_scaling(2.0, "fan_in", "normal")  # He normal
      >>> w = init(jax.random.key(0), (3, 3, 16, 32))
      >>> float(w.var())        # 2 / fan_in = 2 / (3 * 3 * 16) = 0.0139
      0.0142
    """
    check_positive("scale", scale)
    check_choice("mode", mode, _MODES)
    check_choice("distribution", distribution, _DISTRIBUTIONS)
    check_int("in_axis", in_axis)
    check_int("out_axis", out_axis)
    if in_axis == out_axis:
        raise ValueError(f"in_axis={in_axis} and out_axis={out_axis} must differ")

    def init(key, shape, dtype=jnp.float32) -> jax.Array:
        fan_in, fan_out = compute_fans(shape, in_axis, out_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        return _sample(key, shape, dtype, distribution, jnp.asarray(scale) / max(n, 1))

    return init


def _normal_distribution(truncated: bool) -> str:
    return "truncated_normal" if check_bool("truncated", truncated) else "normal"


def gaussian() -> Initializer:
    """The lesson's gaussian N(0, 1/n_in): variance exactly ``1 / fan_in``.

    Keeps a zero-mean unit-variance signal at unit variance through a linear
    layer. Same distribution as :func:`lecun_normal` (plain normal).

    Example:
      >>> w = gaussian()(jax.random.key(0), (100, 10))
      >>> w.shape, w.dtype
      ((100, 10), dtype('float32'))
      >>> float(w.var())            # 1 / n_in = 0.01
      0.0097
    """
    return variance_scaling(1.0, "fan_in", "normal")


def lecun_normal(*, truncated: bool = False) -> Initializer:
    """LeCun normal: variance exactly ``1 / fan_in``.

    Args:
      truncated: truncate at two standard deviations (variance unchanged).

    References:
      LeCun, Bottou, Orr, Müller. "Efficient BackProp". Neural Networks: Tricks of
      the Trade, https://doi.org/10.1007/3-540-49430-8_2, 1998.

    Example:
      >>> w = lecun_normal()(jax.random.key(0), (100, 10))
      >>> w.shape, w.dtype
      ((100, 10), dtype('float32'))
      >>> float(w.var())            # 1 / n_in = 0.01
      0.0097
    """
    return variance_scaling(1.0, "fan_in", _normal_distribution(truncated))


def glorot_uniform() -> Initializer:
    """Glorot / Xavier uniform: variance exactly ``2 / (fan_in + fan_out)``.

    Samples U[-limit, limit) with ``limit = sqrt(6 / (fan_in + fan_out))``.

    References:
      Glorot, Bengio. "Understanding the difficulty of training deep feedforward
      neural networks". AISTATS, https://proceedings.mlr.press/v9/glorot10a.html, 2010.

    Example:
      >>> w = glorot_uniform()(jax.random.key(0), (100, 10))
      >>> w.shape, w.dtype
      ((100, 10), dtype('float32'))
      >>> float(w.var())            # 2 / (n_in + n_out) = 0.018
      0.0177
    """
    return variance_scaling(1.0, "fan_avg", "uniform")


def glorot_normal(*, truncated: bool = False) -> Initializer:
    """Glorot / Xavier normal: variance exactly ``2 / (fan_in + fan_out)``.

    Args:
      truncated: truncate at two standard deviations (variance unchanged).

    References:
      Glorot, Bengio. "Understanding the difficulty of training deep feedforward
      neural networks". AISTATS, https://proceedings.mlr.press/v9/glorot10a.html, 2010.

    Example:
      >>> w = glorot_normal()(jax.random.key(0), (100, 10))
      >>> w.shape, w.dtype
      ((100, 10), dtype('float32'))
      >>> float(w.var())            # 2 / (n_in + n_out) = 0.018
      0.0176
    """
    return variance_scaling(1.0, "fan_avg", _normal_distribution(truncated))


def he_uniform() -> Initializer:
    """He / Kaiming uniform: variance exactly ``2 / fan_in`` (for ReLU).

    Samples U[-limit, limit) with ``limit = sqrt(6 / fan_in)``.

    References:
      He, Zhang, Ren, Sun. "Delving Deep into Rectifiers: Surpassing Human-Level
      Performance on ImageNet Classification". https://arxiv.org/abs/1502.01852, 2015.

    Example:
      >>> w = he_uniform()(jax.random.key(0), (100, 10))
      >>> w.shape, w.dtype
      ((100, 10), dtype('float32'))
      >>> float(w.var())            # 2 / n_in = 0.02
      0.0194
    """
    return variance_scaling(2.0, "fan_in", "uniform")


def he_normal(*, truncated: bool = False) -> Initializer:
    """He / Kaiming normal: variance exactly ``2 / fan_in`` (for ReLU).

    Args:
      truncated: truncate at two standard deviations (variance unchanged).

    References:
      He, Zhang, Ren, Sun. "Delving Deep into Rectifiers: Surpassing Human-Level
      Performance on ImageNet Classification". https://arxiv.org/abs/1502.01852, 2015.

    Example:
      >>> w = he_normal()(jax.random.key(0), (100, 10))
      >>> w.shape, w.dtype
      ((100, 10), dtype('float32'))
      >>> float(w.var())            # 2 / n_in = 0.02
      0.0194
    """
    return variance_scaling(2.0, "fan_in", _normal_distribution(truncated))


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


def orthogonal(scale=1.0, *, column_axis: int = -1) -> Initializer:
    """(Semi-)orthogonal initializer, as ``jax.nn.initializers.orthogonal``.

    The kernel is reshaped to a matrix with ``shape[column_axis]`` columns and
    the product of the other axes as rows; that matrix has orthonormal columns
    (or rows, if there are fewer rows), times ``scale``. Each entry then has
    mean 0 and variance exactly ``scale**2 / max(rows, columns)``.

    Args:
      scale: multiplier of the matrix (variance multiplier ``scale**2``).
      column_axis: the axis of the columns (outputs).

    Returns:
      An initializer; calling it on a shape with fewer than two axes raises
      ``ValueError``.

    Raises:
      ValueError: if ``scale`` is NaN or infinite; when called, if
        ``column_axis`` is out of range of the shape.
      TypeError: if ``column_axis`` is not an integer.

    References:
      Saxe, McClelland, Ganguli. "Exact solutions to the nonlinear dynamics of
      learning in deep linear neural networks". https://arxiv.org/abs/1312.6120, 2013.

    Example:
      >>> w = orthogonal()(jax.random.key(0), (64, 64))
      >>> bool(jnp.allclose(w.T @ w, jnp.eye(64), atol=1e-5))
      True
    """
    check_number("scale", scale)
    check_int("column_axis", column_axis)

    def init(key, shape, dtype=jnp.float32) -> jax.Array:
        shape = _canonical_shape(shape)
        dtype = _float_dtype(dtype)
        if len(shape) < 2:
            raise ValueError(f"shape={shape} has fewer than two axes: orthogonal needs a matrix")
        axis = check_axis("column_axis", column_axis, len(shape))
        work = compute_dtype(dtype)
        n_cols = shape[axis]
        n_rows = math.prod(shape) // max(n_cols, 1)
        a = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), work)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diag(r))  # uniform (Haar) distribution
        if n_rows < n_cols:
            q = q.T
        other = tuple(d for i, d in enumerate(shape) if i != axis)
        q = jnp.moveaxis(q.reshape(other + (n_cols,)), -1, column_axis)
        return (q * jnp.asarray(scale, work)).astype(dtype)

    return init


__all__ = [
    "Initializer",
    "compute_fans",
    "constant",
    "gaussian",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "normal",
    "ones",
    "orthogonal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
