"""Input scaling fitted on training data: min-max scaling and standardisation.

Both scalers are fitted once, on the training part only, and then applied to
every part (training, validation, test) with the same statistics, so the
validation and test data never influence the transformation.

Statistics are *global* by default (``axis=None``: one minimum / maximum or one
mean / standard deviation over every value of the training array). This is the
right default for images, where per-pixel statistics are meaningless and often
undefined: in the 8x8 digits some border pixels are zero in every image, so a
per-pixel range is zero there. Pass ``axis=0`` for per-feature statistics
(tabular data); features whose range or standard deviation is zero then raise a
``ValueError`` naming them instead of dividing by zero.
"""

from __future__ import annotations

from typing import NamedTuple

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jtricks._numeric import compute_dtype
from jtricks._validate import check_int, check_number, concrete_value


def _out_dtype(x: jax.Array) -> jnp.dtype:
    """Floating inputs keep their dtype; integer inputs (raw pixels) become float32."""
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.dtype(jnp.float32)


def _normalise_axis(axis, ndim: int):
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        check_int("axis", a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axis={axis!r} is out of range for training data with {ndim} dims")
        out.append(int(a) % ndim)
    return tuple(out)


def _training_data(train: ArrayLike) -> jax.Array:
    """``train`` as an array; refuses empty data (no statistics to fit)."""
    train = jnp.asarray(train)
    if train.size == 0:
        raise ValueError(f"train has shape {train.shape}: no values to fit the scaler on")
    return train


def _check_nonzero(name: str, spread: jax.Array, axis, axes, what: str) -> None:
    """Raises if a concrete ``spread`` (range or std) is zero anywhere."""
    arr = concrete_value(spread)
    if arr is None:
        return
    if axes is not None:
        arr = arr.squeeze(axis=axes)  # index features by the axes that were kept
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name}: the training data contains NaN or inf, so its statistics are not finite"
        )
    bad = ~(arr > 0)
    if not bad.any():
        return
    if axis is None:
        raise ValueError(
            f"{name}: the training data has zero {what} (every value is equal), so it "
            "cannot be scaled; check that the training array is not constant"
        )
    where = [tuple(int(i) for i in idx) for idx in np.argwhere(bad)]
    shown = ", ".join(map(str, where[:10])) + (" ..." if len(where) > 10 else "")
    raise ValueError(
        f"{name}: {len(where)} feature(s) have zero {what} in the training data (axis={axis}), "
        f"at index {shown} (of the feature shape {arr.shape}); scaling them "
        "would divide by zero. Use axis=None for global statistics, or drop those features"
    )


class MinMaxScaler(NamedTuple):
    """A fitted min-max scaler: ``low + (x - data_min) * (high - low) / (data_max - data_min)``.

    A pytree (``jit`` / ``vmap`` / checkpoint friendly) and callable on any array
    that broadcasts against the statistics: ``scaler(x_test)``.

    Attributes:
      data_min: minimum of the training data (scalar, or per feature with kept dims).
      data_max: maximum of the training data.
      low: lower end of the target range.
      high: upper end of the target range.
    """

    data_min: jax.Array
    data_max: jax.Array
    low: jax.Array
    high: jax.Array

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Scales ``x`` with the training statistics (floating dtypes are kept)."""
        return _minmax_apply(self, jnp.asarray(x))

    def inverse(self, y: ArrayLike) -> jax.Array:
        """Maps scaled values back to the original units."""
        y = jnp.asarray(y)
        span = self.data_max - self.data_min
        x = self.data_min + (y.astype(span.dtype) - self.low) * (span / (self.high - self.low))
        return x.astype(_out_dtype(y))


class StandardScaler(NamedTuple):
    """A fitted standardiser: ``(x - mean) / std``.

    Attributes:
      mean: mean of the training data (scalar, or per feature with kept dims).
      std: population standard deviation (``ddof=0``) of the training data.
    """

    mean: jax.Array
    std: jax.Array

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Standardises ``x`` with the training statistics (floating dtypes are kept)."""
        return _standard_apply(self, jnp.asarray(x))

    def inverse(self, y: ArrayLike) -> jax.Array:
        """Maps standardised values back to the original units."""
        y = jnp.asarray(y)
        return (y.astype(self.std.dtype) * self.std + self.mean).astype(_out_dtype(y))


def _minmax_formula(xp, scaler: MinMaxScaler, x):
    """The min-max map with the array module ``xp`` (``jnp`` compiled, ``np`` eager)."""
    span = scaler.data_max - scaler.data_min
    span = xp.where(span > 0, span, 1)  # only reachable with traced statistics
    y = scaler.low + (x.astype(span.dtype) - scaler.data_min) * ((scaler.high - scaler.low) / span)
    return y.astype(_out_dtype(x))


def _standard_formula(xp, scaler: StandardScaler, x):
    std = xp.where(scaler.std > 0, scaler.std, 1)  # only reachable with traced statistics
    return ((x.astype(std.dtype) - scaler.mean) / std).astype(_out_dtype(x))


def _range_formula(xp, train, axes):
    x = train.astype(compute_dtype(train.dtype))
    keep = axes is not None
    return xp.min(x, axis=axes, keepdims=keep), xp.max(x, axis=axes, keepdims=keep)


def _moment_formula(xp, train, axes):
    x = train.astype(compute_dtype(train.dtype))
    keep = axes is not None
    mean = xp.mean(x, axis=axes, keepdims=keep)
    var = xp.mean(xp.square(x - mean), axis=axes, keepdims=keep)
    # Exact zero test on the range: a constant feature can get a rounding-noise std.
    span = xp.max(x, axis=axes, keepdims=keep) - xp.min(x, axis=axes, keepdims=keep)
    std = xp.where(span > 0, xp.sqrt(xp.maximum(var, 0)), 0).astype(mean.dtype)
    return mean, std, span


_minmax_apply = jax.jit(functools.partial(_minmax_formula, jnp))
_standard_apply = jax.jit(functools.partial(_standard_formula, jnp))
_range_stats = jax.jit(functools.partial(_range_formula, jnp), static_argnums=1)
_moment_stats = jax.jit(functools.partial(_moment_formula, jnp), static_argnums=1)


def fit_numpy(kind: str, train: np.ndarray, feature_range=(-1.0, 1.0)):
    """The scaler ``kind`` (``"minmax"`` or ``"standardize"``, global statistics) fitted
    on a NumPy array with NumPy, and ``apply(x)``, the same map in NumPy.

    Data preparation (:func:`jtricks.data.load_split`) runs once per run on host
    arrays: NumPy computes the same formulas as the compiled scalers without
    compiling a program per statistic and per split's shape.
    """
    train = np.asarray(train)
    train = train.astype(jax.dtypes.canonicalize_dtype(train.dtype), copy=False)
    if train.size == 0:
        raise ValueError(f"train has shape {train.shape}: no values to fit the scaler on")
    dtype = compute_dtype(train.dtype)
    scaler: MinMaxScaler | StandardScaler
    if kind == "minmax":
        data_min, data_max = _range_formula(np, train, None)
        _check_nonzero("minmax_scale", data_max - data_min, None, None, "range (max == min)")
        low, high = (np.asarray(v, dtype) for v in feature_range)
        scaler = MinMaxScaler(*jax.device_put((data_min, data_max, low, high)))
        numpy_scaler = MinMaxScaler._make((data_min, data_max, low, high))
        return scaler, lambda x: _minmax_formula(np, numpy_scaler, np.asarray(x))
    mean, std, span = _moment_formula(np, train, None)
    _check_nonzero("standardize", span, None, None, "standard deviation (max == min)")
    numpy_standard = StandardScaler._make((mean, std))
    return (StandardScaler(*jax.device_put((mean, std))),
            lambda x: _standard_formula(np, numpy_standard, np.asarray(x)))


def minmax_scale(
    train: ArrayLike,
    feature_range: tuple[float, float] = (-1.0, 1.0),
    *,
    axis: int | tuple[int, ...] | None = None,
) -> MinMaxScaler:
    """Fits a min-max scaler on training data.

    The returned scaler maps the training data exactly onto ``feature_range``
    (``[-1, 1]`` by default, ``(0, 1)`` for ``[0, 1]``); other data is mapped
    with the same statistics and may fall slightly outside the range.

    Args:
      train: the training data only (never the validation or test part).
      feature_range: ``(low, high)`` with ``low < high``.
      axis: axes reduced to compute the statistics. ``None`` (default): one global
        minimum and maximum. ``0``: per-feature statistics over the examples.
        ``(0, 1, 2)`` on NHWC images: per-channel statistics.

    Returns:
      A fitted ``MinMaxScaler``; call it on any array: ``scaler(x_test)``.

    Raises:
      ValueError: if ``feature_range`` is not increasing, ``axis`` is out of range,
        the training data is empty or has a zero range (globally, or for the named features).

    Example:
      >>> x = jnp.array([0.0, 5.0, 10.0, 20.0])
      >>> train_idx, test_idx = jnp.array([0, 1, 2]), jnp.array([3])
      >>> scaler = minmax_scale(x[train_idx])          # fitted on training data only
      >>> x_train, x_test = scaler(x[train_idx]), scaler(x[test_idx])
      >>> x_train, x_test                              # test data may leave [-1, 1]
      (Array([-1.,  0.,  1.], dtype=float32), Array([3.], dtype=float32))
    """
    try:
        low, high = feature_range
    except (TypeError, ValueError):
        raise TypeError(f"feature_range={feature_range!r} must be a pair (low, high)") from None
    check_number("feature_range[0]", low)
    check_number("feature_range[1]", high)
    lo_c, hi_c = concrete_value(low), concrete_value(high)
    if lo_c is not None and hi_c is not None and not lo_c < hi_c:
        raise ValueError(f"feature_range={feature_range!r} must have low < high")
    train = _training_data(train)
    dtype = compute_dtype(train.dtype)
    axes = _normalise_axis(axis, train.ndim)
    data_min, data_max = _range_stats(train, axes)
    _check_nonzero("minmax_scale", data_max - data_min, axis, axes, "range (max == min)")
    return MinMaxScaler(data_min, data_max, jnp.asarray(low, dtype), jnp.asarray(high, dtype))


def standardize(
    train: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = None,
) -> StandardScaler:
    """Fits a standardiser (zero mean, unit variance) on training data.

    After scaling, the training data has mean 0 and variance 1; for roughly normal
    data about 68% of the values then lie in ``[-1, 1]``.

    Args:
      train: the training data only.
      axis: axes reduced to compute the statistics; ``None`` (default) for one
        global mean and standard deviation, ``0`` for per-feature statistics.

    Returns:
      A fitted ``StandardScaler``; call it on any array.

    Raises:
      ValueError: if the training data is empty or has zero standard deviation
        (globally, or for the named features) or ``axis`` is out of range.

    Example:
      >>> x = jnp.array([[0.0, 10.0], [2.0, 30.0], [1.0, 20.0]])
      >>> train_idx, val_idx = jnp.array([0, 1]), jnp.array([2])
      >>> scaler = standardize(x[train_idx], axis=0)   # per-feature statistics
      >>> scaler(x[train_idx])
      Array([[-1., -1.],
             [ 1.,  1.]], dtype=float32)
      >>> x_val = scaler(x[val_idx])
      >>> x_val
      Array([[0., 0.]], dtype=float32)
    """
    train = _training_data(train)
    axes = _normalise_axis(axis, train.ndim)
    mean, std, span = _moment_stats(train, axes)
    _check_nonzero("standardize", span, axis, axes, "standard deviation (max == min)")
    return StandardScaler(mean, std)
