"""The variance-scaling family: fans, ``variance_scaling`` and LeCun / Glorot / He."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._validate import check_bool, check_choice, check_positive

from ._common import _TRUNCATED_STD, Axes, Initializer, _canonical_shape, _default_dtype, _start

_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")


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
