"""Initializers that do not depend on the fans: constants, uniform, normal, orthogonal."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jtricks._validate import check_axis, check_bool, check_int, check_non_negative, check_number

from ._common import _TRUNCATED_STD, Initializer, _canonical_shape, _default_dtype, _float_dtype, _start


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
