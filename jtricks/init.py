"""Weight initializers: keep the variance of the signal through every layer.

An initializer is a function ``init(key, shape, dtype=jnp.float32,
out_sharding=None) -> Array``, exactly as in :mod:`jax.nn.initializers`, so
every initializer here is usable as a flax ``kernel_init`` (linen and nnx).
Factories are called to get the initializer (``he_normal()``); ``zeros`` and
``ones`` are initializers themselves. Factories shared with JAX take JAX's
arguments in JAX's order (``he_normal(in_axis, out_axis, batch_axis, dtype)``)
and give JAX's values for a float32 kernel, bit for bit; jtricks' own options
(``truncated``) are keyword-only.

Fan-in and fan-out follow :mod:`jax.nn.initializers`: for a kernel of shape
``(..., n_in, n_out)`` the last axis holds the outputs, the second-to-last the
inputs and every other axis is receptive field, so a dense kernel ``(n_in,
n_out)`` has ``fan_in = n_in`` and a convolution kernel ``(kh, kw, c_in,
c_out)`` (HWIO) has ``fan_in = kh * kw * c_in`` and ``fan_out = kh * kw *
c_out``. ``in_axis`` / ``out_axis`` / ``batch_axis`` name other layouts
(equinox's ``(out, in)`` weights: ``he_normal(in_axis=-1, out_axis=-2)``).

``dtype`` is the dtype of the returned array, as in
:mod:`jax.nn.initializers` (flax passes its ``param_dtype`` there). The random
draws are computed in at least float32 and cast: a bfloat16 kernel is JAX's
float32 kernel rounded once (JAX draws 16-bit numbers: 128 distinct values).
``out_sharding`` places the result (a ``NamedSharding``, or a
``PartitionSpec`` under ``jax.set_mesh``), as in JAX.

Every random initializer is one case of :func:`variance_scaling`, which draws
weights of mean 0 and variance exactly ``scale / n`` with ``n`` the fan chosen
by ``mode``. Normal distributions are plain (not truncated) unless
``truncated=True`` (JAX's ``he_normal`` and friends are truncated); a
truncated normal is rescaled so that its variance is still exactly
``scale / n``.

Example:
  >>> import jax, jtricks
  >>> w = jtricks.init.he_normal()(jax.random.key(0), (784, 256))
  >>> w.shape
  (784, 256)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence, Union

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
#: An axis or several axes of a kernel, as in :mod:`jax.nn.initializers`.
Axes = Union[int, Sequence[int]]

_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
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


def _default_dtype(dtype) -> Any:
    """The ``dtype`` default of an initializer: the factory's, or float32."""
    return jnp.float32 if dtype is None else _float_dtype(dtype)


def _axis_tuple(name: str, axis: Axes) -> tuple[int, ...]:
    if not isinstance(axis, (int, np.integer, Sequence)):
        raise TypeError(f"{name}={axis!r} must be an int or a sequence of ints")
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"{name}={axis!r} must be an int or a sequence of ints")
    return tuple(int(a) for a in axes)


def _check_disjoint(given: dict[str, Axes], axes: dict[str, tuple[int, ...]]) -> None:
    names = list(axes)
    for i, a in enumerate(names):
        if len(set(axes[a])) < len(axes[a]):
            raise ValueError(f"{a}={given[a]!r} names an axis twice")
        for b in names[i + 1:]:
            shared = sorted(set(axes[a]) & set(axes[b]))
            if shared:
                raise ValueError(
                    f"{a}={given[a]!r} and {b}={given[b]!r} share axis {shared[0]}: the "
                    "inputs, outputs and batch axes of a kernel must be different axes"
                )


def _check_axes(in_axis: Axes, out_axis: Axes, batch_axis: Axes) -> None:
    """Construction-time check: ints or sequences of ints, no axis given twice."""
    given = {"in_axis": in_axis, "out_axis": out_axis, "batch_axis": batch_axis}
    _check_disjoint(given, {name: _axis_tuple(name, axis) for name, axis in given.items()})


def compute_fans(
    shape: Sequence[int], in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()
) -> tuple[int, int]:
    """Fan-in and fan-out of a kernel, as in :mod:`jax.nn.initializers`.

    Axes that are none of ``in_axis``, ``out_axis`` and ``batch_axis`` are the
    receptive field (a convolution's spatial axes).

    Args:
      shape: the kernel's shape.
      in_axis: the axis (or axes) of the inputs (default the second-to-last).
      out_axis: the axis (or axes) of the outputs (default the last).
      batch_axis: axes that count for neither fan (e.g. a stack of kernels).

    Returns:
      ``(fan_in, fan_out)``: the product of the ``in_axis`` sizes and of the
      ``out_axis`` sizes, each multiplied by the receptive-field size.

    Raises:
      ValueError: if ``shape`` has negative sizes, an axis is out of range for
        ``shape`` (the defaults need at least two axes) or two of the arguments
        name the same axis.
      TypeError: if ``shape`` is not a tuple of integers, or an axis is not an
        int or a sequence of ints.

    Example:
      >>> compute_fans((3, 3, 16, 32))
      (144, 288)
      >>> compute_fans((8, 32, 16), in_axis=-1, out_axis=-2, batch_axis=0)  # equinox (out, in)
      (16, 32)
    """
    shape = _canonical_shape(shape)
    given = {"in_axis": in_axis, "out_axis": out_axis, "batch_axis": batch_axis}
    axes = {}
    for name, axis in given.items():
        axes[name] = _axis_tuple(name, axis)
        bad = [a for a in axes[name] if not -len(shape) <= a < len(shape)]
        if bad:
            hint = (" (fewer than two axes: fan-in and fan-out need a kernel of shape "
                    "(..., n_in, n_out); use zeros/ones/uniform/normal for biases)"
                    if len(shape) < 2 else "")
            raise ValueError(f"{name}={axis!r} is out of range for shape={shape}{hint}")
        axes[name] = tuple(a % len(shape) for a in axes[name])
    _check_disjoint(given, axes)
    named = set().union(*axes.values())
    receptive = math.prod(d for i, d in enumerate(shape) if i not in named)
    size = {name: math.prod(shape[a] for a in ax) for name, ax in axes.items()}
    return size["in_axis"] * receptive, size["out_axis"] * receptive


def zeros(key, shape, dtype=jnp.float32, out_sharding=None) -> jax.Array:
    """All-zero initializer (for biases; never for weights: units stay identical).

    ``out_sharding`` (a ``NamedSharding`` or, under a mesh, a ``PartitionSpec``)
    places the result, as in :mod:`jax.nn.initializers`; so for every
    initializer here.
    """
    del key
    return jnp.zeros(_canonical_shape(shape), _float_dtype(dtype), out_sharding=out_sharding)


def ones(key, shape, dtype=jnp.float32, out_sharding=None) -> jax.Array:
    """All-one initializer (for normalisation scales; never for weights)."""
    del key
    return jnp.ones(_canonical_shape(shape), _float_dtype(dtype), out_sharding=out_sharding)


def constant(value, dtype=None) -> Initializer:
    """Initializer filling every entry with ``value``.

    Args:
      value: a finite real number (or an array broadcastable to the shape).
      dtype: the initializer's default dtype (float32 if ``None``).

    Raises:
      ValueError: if ``value`` is NaN or infinite.
      TypeError: if ``value`` is not a real number.

    Example:
      >>> constant(0.1)(jax.random.key(0), (2,))
      Array([0.1, 0.1], dtype=float32)
    """
    check_number("value", value, scalar=False)
    default = _default_dtype(dtype)

    def init(key, shape, dtype=default, out_sharding=None) -> jax.Array:
        del key
        return jnp.full(_canonical_shape(shape), value, _float_dtype(dtype),
                        out_sharding=out_sharding)

    return init


def _start(shape, dtype) -> tuple[tuple[int, ...], np.dtype, np.dtype]:
    """Canonical shape, the returned dtype and the dtype draws are made in (>= float32)."""
    dtype = _float_dtype(dtype)
    return _canonical_shape(shape), dtype, compute_dtype(dtype)


def uniform(scale=1e-2, dtype=None) -> Initializer:
    """Symmetric uniform initializer on ``[-scale, scale)``.

    The weights have mean 0 and variance exactly ``scale**2 / 3``. Unlike
    ``jax.nn.initializers.uniform`` (which samples ``[0, scale)``) the range is
    symmetric, as in the lesson.

    Args:
      scale: half-width of the interval, ``>= 0`` (may be a traced value).
      dtype: the initializer's default dtype (float32 if ``None``).

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32, out_sharding=None)``.

    Raises:
      ValueError: if ``scale`` is negative, NaN or infinite.
      TypeError: if ``scale`` is not a real number.

    Example:
      >>> w = uniform(0.05)(jax.random.key(0), (3, 4))
      >>> bool(jnp.all((w >= -0.05) & (w < 0.05)))
      True
    """
    check_non_negative("scale", scale)
    default = _default_dtype(dtype)

    def init(key, shape, dtype=default, out_sharding=None) -> jax.Array:
        shape, dtype, work = _start(shape, dtype)
        x = jax.random.uniform(key, shape, work, -1.0, 1.0, out_sharding=out_sharding)
        return (x * jnp.asarray(scale, work)).astype(dtype)

    return init


def normal(stddev=1.0, dtype=None, *, truncated: bool = False) -> Initializer:
    """Normal initializer N(0, stddev**2), independent of the fans.

    ``normal(1.0)`` is the lesson's "bad idea": with ``n`` inputs the output
    variance grows like ``n`` per layer. ``normal(s)`` equals
    ``jax.nn.initializers.normal(s)`` (whose default ``stddev`` is 0.01).

    Args:
      stddev: the standard deviation (variance is ``stddev**2``), ``>= 0``.
      dtype: the initializer's default dtype (float32 if ``None``).
      truncated: draw from a normal truncated at two standard deviations,
        rescaled so that the variance is still exactly ``stddev**2`` (equal to
        ``jax.nn.initializers.truncated_normal(stddev / 0.8796...)``).

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32, out_sharding=None)``.

    Raises:
      ValueError: if ``stddev`` is negative, NaN or infinite.
      TypeError: if ``stddev`` is not a real number or ``truncated`` not a bool.

    Example:
      >>> w = normal(0.01)(jax.random.key(0), (3, 4))
      >>> w.shape, float(jnp.abs(w).max()) < 0.05
      ((3, 4), True)
    """
    check_non_negative("stddev", stddev)
    check_bool("truncated", truncated)
    default = _default_dtype(dtype)

    def init(key, shape, dtype=default, out_sharding=None) -> jax.Array:
        shape, dtype, work = _start(shape, dtype)
        if truncated:
            x = jax.random.truncated_normal(key, -2, 2, shape, work, out_sharding=out_sharding)
            return (x * jnp.asarray(stddev / _TRUNCATED_STD, work)).astype(dtype)
        x = jax.random.normal(key, shape, work, out_sharding=out_sharding)
        return (x * jnp.asarray(stddev, work)).astype(dtype)

    return init


def variance_scaling(
    scale,
    mode: str,
    distribution: str,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype=None,
) -> Initializer:
    """The general initializer: mean 0 and variance exactly ``scale / n``.

    ``n`` is ``fan_in`` (``mode="fan_in"``), ``fan_out`` (``"fan_out"``),
    ``(fan_in + fan_out) / 2`` (``"fan_avg"``) or ``sqrt(fan_in * fan_out)``
    (``"fan_geo_avg"``), with the fans of :func:`compute_fans`. The
    distribution is

    - ``"normal"``: N(0, scale / n);
    - ``"truncated_normal"``: a normal truncated at two standard deviations and
      rescaled (by 1 / 0.8796...) so that its variance is still ``scale / n``;
    - ``"uniform"``: U[-limit, limit) with ``limit = sqrt(3 * scale / n)``.

    Arguments, their order and the values drawn for a float32 kernel are those
    of ``jax.nn.initializers.variance_scaling`` (bit for bit); half-precision
    kernels are drawn in float32 and rounded once. Complex dtypes are not
    supported.

    Args:
      scale: multiplier of the variance, ``> 0`` (may be a traced value).
      mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fan_geo_avg"``.
      distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
      in_axis: axis or axes of the kernel's inputs.
      out_axis: axis or axes of the kernel's outputs (equinox's ``Linear``
        weight is ``(out, in)``: ``in_axis=-1, out_axis=-2``).
      batch_axis: axis or axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).

    Returns:
      An initializer ``init(key, shape, dtype=jnp.float32, out_sharding=None)``;
      calling it on a shape the axes do not fit raises ``ValueError``.

    Raises:
      ValueError: at construction, for an unknown ``mode`` or ``distribution``,
        a ``scale`` that is not positive and finite, or an axis given twice;
        when called, for axes out of range of the shape.
      TypeError: if an axis is not an int or a sequence of ints.

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
    _check_axes(in_axis, out_axis, batch_axis)
    default = _default_dtype(dtype)

    def init(key, shape, dtype=default, out_sharding=None) -> jax.Array:
        shape, dtype, work = _start(shape, dtype)
        fan_in, fan_out = compute_fans(shape, in_axis, out_axis, batch_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
             "fan_geo_avg": (fan_in * fan_out) ** 0.5}[mode]
        # scale / n in Python when scale is a number: the rounding of jax's initializers
        variance = jnp.asarray(scale / max(n, 1), work)
        if distribution == "normal":
            x = jax.random.normal(key, shape, work, out_sharding=out_sharding)
            x = x * jnp.sqrt(variance)
        elif distribution == "truncated_normal":
            x = jax.random.truncated_normal(key, -2, 2, shape, work, out_sharding=out_sharding)
            x = x * (jnp.sqrt(variance) / jnp.asarray(_TRUNCATED_STD, work))
        else:  # U[-1, 1) has variance 1/3
            x = jax.random.uniform(key, shape, work, -1, out_sharding=out_sharding)
            x = x * jnp.sqrt(3 * variance)
        return x.astype(dtype)

    return init


def _normal_distribution(truncated: bool) -> str:
    return "truncated_normal" if check_bool("truncated", truncated) else "normal"


def gaussian(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
             dtype=None) -> Initializer:
    """The lesson's gaussian N(0, 1/n_in): variance exactly ``1 / fan_in``.

    Keeps a zero-mean unit-variance signal at unit variance through a linear
    layer. Same distribution as :func:`lecun_normal` (plain normal).

    Args:
      in_axis: the inputs' axis or axes (default the second-to-last).
      out_axis: the outputs' axis or axes (default the last).
      batch_axis: axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).

    Example:
      >>> w = gaussian()(jax.random.key(0), (100, 10))
      >>> w.shape, w.dtype
      ((100, 10), dtype('float32'))
      >>> float(w.var())            # 1 / n_in = 0.01
      0.0097
    """
    return variance_scaling(1.0, "fan_in", "normal", in_axis, out_axis, batch_axis, dtype)


def lecun_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None,
                 *, truncated: bool = False) -> Initializer:
    """LeCun normal: variance exactly ``1 / fan_in``.

    Args:
      in_axis: the inputs' axis or axes (default the second-to-last).
      out_axis: the outputs' axis or axes (default the last).
      batch_axis: axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).
      truncated: truncate at two standard deviations (variance unchanged);
        ``jax.nn.initializers.lecun_normal`` is the truncated one.

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
    return variance_scaling(1.0, "fan_in", _normal_distribution(truncated),
                            in_axis, out_axis, batch_axis, dtype)


def lecun_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                  dtype=None) -> Initializer:
    """LeCun uniform: variance exactly ``1 / fan_in``.

    Samples U[-limit, limit) with ``limit = sqrt(3 / fan_in)``.

    Args:
      in_axis: the inputs' axis or axes (default the second-to-last).
      out_axis: the outputs' axis or axes (default the last).
      batch_axis: axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).

    References:
      LeCun, Bottou, Orr, Müller. "Efficient BackProp". Neural Networks: Tricks of
      the Trade, https://doi.org/10.1007/3-540-49430-8_2, 1998.

    Example:
      >>> w = lecun_uniform()(jax.random.key(0), (100, 10))
      >>> float(w.var())            # 1 / n_in = 0.01
      0.0097
    """
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                   dtype=None) -> Initializer:
    """Glorot / Xavier uniform: variance exactly ``2 / (fan_in + fan_out)``.

    Samples U[-limit, limit) with ``limit = sqrt(6 / (fan_in + fan_out))``.

    Args:
      in_axis: the inputs' axis or axes (default the second-to-last).
      out_axis: the outputs' axis or axes (default the last).
      batch_axis: axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).

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
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None,
                  *, truncated: bool = False) -> Initializer:
    """Glorot / Xavier normal: variance exactly ``2 / (fan_in + fan_out)``.

    Args:
      in_axis: the inputs' axis or axes (default the second-to-last).
      out_axis: the outputs' axis or axes (default the last).
      batch_axis: axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).
      truncated: truncate at two standard deviations (variance unchanged);
        ``jax.nn.initializers.glorot_normal`` is the truncated one.

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
    return variance_scaling(1.0, "fan_avg", _normal_distribution(truncated),
                            in_axis, out_axis, batch_axis, dtype)


def he_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
               dtype=None) -> Initializer:
    """He / Kaiming uniform: variance exactly ``2 / fan_in`` (for ReLU).

    Samples U[-limit, limit) with ``limit = sqrt(6 / fan_in)``.

    Args:
      in_axis: the inputs' axis or axes (default the second-to-last).
      out_axis: the outputs' axis or axes (default the last).
      batch_axis: axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).

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
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def he_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype=None,
              *, truncated: bool = False) -> Initializer:
    """He / Kaiming normal: variance exactly ``2 / fan_in`` (for ReLU).

    Args:
      in_axis: the inputs' axis or axes (default the second-to-last).
      out_axis: the outputs' axis or axes (default the last).
      batch_axis: axes counted in neither fan.
      dtype: the initializer's default dtype (float32 if ``None``).
      truncated: truncate at two standard deviations (variance unchanged);
        ``jax.nn.initializers.he_normal`` is the truncated one.

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
    return variance_scaling(2.0, "fan_in", _normal_distribution(truncated),
                            in_axis, out_axis, batch_axis, dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


def orthogonal(scale=1.0, column_axis: int = -1, dtype=None) -> Initializer:
    """(Semi-)orthogonal initializer, as ``jax.nn.initializers.orthogonal``.

    The kernel is reshaped to a matrix with ``shape[column_axis]`` columns and
    the product of the other axes as rows; that matrix has orthonormal columns
    (or rows, if there are fewer rows), times ``scale``. Each entry then has
    mean 0 and variance exactly ``scale**2 / max(rows, columns)``. Unlike JAX's,
    it accepts ``out_sharding`` (the matrix is computed, then placed).

    Args:
      scale: multiplier of the matrix (variance multiplier ``scale**2``).
      column_axis: the axis of the columns (outputs).
      dtype: the initializer's default dtype (float32 if ``None``).

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
    default = _default_dtype(dtype)

    def init(key, shape, dtype=default, out_sharding=None) -> jax.Array:
        shape, dtype, work = _start(shape, dtype)
        if len(shape) < 2:
            raise ValueError(f"shape={shape} has fewer than two axes: orthogonal needs a matrix")
        axis = check_axis("column_axis", column_axis, len(shape))
        n_cols = shape[axis]
        n_rows = math.prod(shape) // max(n_cols, 1)
        a = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), work)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diag(r))  # uniform (Haar) distribution
        if n_rows < n_cols:
            q = q.T
        other = tuple(d for i, d in enumerate(shape) if i != axis)
        q = jnp.moveaxis(q.reshape(other + (n_cols,)), -1, column_axis)
        q = (q * jnp.asarray(scale, work)).astype(dtype)
        return q if out_sharding is None else jax.sharding.reshard(q, out_sharding)

    return init


__all__ = [
    "Axes",
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
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
