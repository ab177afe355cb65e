"""Keyed image augmentation (shift, rotate, zoom) for one example at a time.

Each function takes a key and ONE image of shape ``(height, width, channels)``
(or ``(height, width)``) and returns an image of the same shape and dtype. They
are pure and jit-able; for a batch, ``vmap`` over images with one key each::

    keys = jax.random.split(key, images.shape[0])
    images = jax.vmap(lambda k, im: random_shift(k, im, 2.0))(keys, images)

All three are one affine resampling around the image centre with bilinear
interpolation (``jax.scipy.ndimage.map_coordinates``, ``order=1``); pixels that
come from outside the image take ``cval`` (0 by default, the digits background).
Hyperparameters may be traced, so a sweep can ``vmap`` over them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates
from jax.typing import ArrayLike

from jtricks._numeric import compute_dtype
from jtricks._validate import (
    check_choice,
    check_non_negative,
    check_number,
    concrete_value,
    show,
)

# The boundary modes of jax.scipy.ndimage.map_coordinates.
_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


def affine_transform(
    image: ArrayLike,
    matrix: ArrayLike,
    offset: ArrayLike | tuple[float, float] = (0.0, 0.0),
    *,
    mode: str = "constant",
    cval: float = 0.0,
) -> jax.Array:
    """Resamples ``image`` at ``matrix @ (p - c) + c - offset`` for every output pixel ``p``.

    ``c`` is the image centre, so ``matrix`` rotates / zooms about the centre and
    ``offset`` (rows, columns) shifts the content by that many pixels (down, right).

    Args:
      image: ``(H, W)`` or ``(H, W, C)``.
      matrix: the 2x2 map from output to input coordinates (inverse transform).
      offset: shift of the content in pixels ``(dy, dx)``.
      mode: boundary mode of ``map_coordinates``.
      cval: fill value for ``mode="constant"`` (a Python number).

    Returns:
      The transformed image, same shape and dtype.

    Raises:
      ValueError: if ``image`` is not one 2-d or 3-d image, ``matrix`` is not 2x2
        or ``offset`` not a pair, a concrete ``matrix`` / ``offset`` / ``cval``
        is not finite, or ``mode`` is not one of ``"constant"``, ``"nearest"``,
        ``"wrap"``, ``"mirror"``, ``"reflect"``.
      TypeError: if ``cval`` is not a real number.

    Example:
      >>> image = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
      >>> affine_transform(image, jnp.array([[1.0, 0.0], [0.0, -1.0]]))  # mirror
      Array([[3., 2., 1.],
             [6., 5., 4.]], dtype=float32)
      >>> affine_transform(image, jnp.eye(2), offset=(0.0, 1.0))         # one pixel right
      Array([[0., 1., 2.],
             [0., 4., 5.]], dtype=float32)
    """
    check_choice("mode", mode, _MODES)
    check_number("cval", cval)
    for name, value, shape in (("matrix", matrix, (2, 2)), ("offset", offset, (2,))):
        if np.shape(value) != shape:
            raise ValueError(f"{name}={show(value)} must have shape {shape}, "
                             f"got {np.shape(value)}")
        check_number(name, value, scalar=False)
    image = jnp.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image has shape {image.shape}; expected one image (H, W) or (H, W, C) — "
            "vmap over a batch with one key per example"
        )
    return _affine(image, jnp.asarray(matrix), jnp.asarray(offset), mode, float(cval))


@functools.partial(jax.jit, static_argnums=(3, 4))
def _affine(image, matrix, offset, mode, cval):
    h, w = image.shape[:2]
    dtype = image.dtype
    work = compute_dtype(dtype)  # integer pixels -> float32, bf16 -> f32, f64 stays
    matrix = matrix.astype(work)
    offset = offset.astype(work)
    centre = jnp.array([(h - 1) / 2.0, (w - 1) / 2.0], work)
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=work), jnp.arange(w, dtype=work), indexing="ij")
    out = jnp.stack([rows.ravel(), cols.ravel()])  # (2, H*W)
    src = matrix @ (out - centre[:, None]) + (centre - offset)[:, None]

    def one_channel(channel):
        vals = map_coordinates(channel.astype(work), list(src), order=1, mode=mode, cval=cval)
        return vals.reshape(h, w)

    if image.ndim == 2:
        result = one_channel(image)
    else:
        result = jax.vmap(one_channel, in_axes=2, out_axes=2)(image)
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        result = jnp.clip(jnp.round(result), info.min, info.max)
    return result.astype(dtype)


def random_shift(key: jax.Array, image: ArrayLike, max_shift: float = 2.0, **kwargs) -> jax.Array:
    """Shifts the image by a random offset, uniform in ``[-max_shift, max_shift]`` pixels per axis.

    Args:
      key: a PRNG key (one per example).
      image: one image ``(H, W[, C])``.
      max_shift: the largest shift in pixels (fractional shifts interpolate).
      **kwargs: ``mode`` / ``cval`` for ``affine_transform``.

    Returns:
      The shifted image, same shape and dtype.

    Example:
      >>> image = jnp.zeros((8, 8)).at[3:5, 3:5].set(1.0)
      >>> shifted = random_shift(jax.random.key(0), image, max_shift=1.0)
      >>> shifted.shape, float(jnp.abs(shifted - image).max()) > 0
      ((8, 8), True)
    """
    check_non_negative("max_shift", max_shift)
    offset = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0) * max_shift
    return affine_transform(image, jnp.eye(2), offset, **kwargs)


def random_rotate(key: jax.Array, image: ArrayLike, max_degrees: float = 15.0, **kwargs) -> jax.Array:
    """Rotates the image about its centre by a random angle in ``[-max_degrees, max_degrees]``.

    Args:
      key: a PRNG key (one per example).
      image: one image ``(H, W[, C])``.
      max_degrees: the largest rotation, in degrees.
      **kwargs: ``mode`` / ``cval`` for ``affine_transform``.

    Returns:
      The rotated image, same shape and dtype.

    Example:
      >>> image = jnp.zeros((8, 8)).at[2:6, 3:5].set(1.0)
      >>> rotated = random_rotate(jax.random.key(0), image, max_degrees=10.0)
      >>> rotated.shape, rotated.dtype
      ((8, 8), dtype('float32'))
    """
    check_non_negative("max_degrees", max_degrees)
    angle = jnp.deg2rad(jax.random.uniform(key, (), minval=-1.0, maxval=1.0) * max_degrees)
    c, s = jnp.cos(angle), jnp.sin(angle)
    return affine_transform(image, jnp.array([[c, -s], [s, c]]), **kwargs)


def random_zoom(
    key: jax.Array, image: ArrayLike, zoom_range: tuple[float, float] = (0.9, 1.1), **kwargs
) -> jax.Array:
    """Zooms about the centre by a random factor, uniform in ``zoom_range``.

    A factor above 1 enlarges the content (zoom in), below 1 shrinks it.

    Args:
      key: a PRNG key (one per example).
      image: one image ``(H, W[, C])``.
      zoom_range: ``(low, high)`` with ``0 < low <= high``.
      **kwargs: ``mode`` / ``cval`` for ``affine_transform``.

    Returns:
      The zoomed image, same shape and dtype.

    Example:
      >>> image = jnp.zeros((8, 8)).at[2:6, 2:6].set(1.0)
      >>> zoomed = random_zoom(jax.random.key(0), image, (0.8, 1.2))
      >>> zoomed.shape, zoomed.dtype
      ((8, 8), dtype('float32'))
    """
    low, high = _zoom_range(zoom_range)
    factor = jax.random.uniform(key, (), minval=low, maxval=high)
    return affine_transform(image, jnp.eye(2) / factor, **kwargs)


def _zoom_range(zoom_range) -> tuple:
    """Checks ``zoom_range``: a pair ``0 < low <= high`` (concrete values only)."""
    try:
        low, high = zoom_range
    except (TypeError, ValueError):
        raise TypeError(f"zoom_range={show(zoom_range)} must be a pair (low, high)") from None
    check_number("zoom_range[0]", low, lo=0, lo_open=True)
    check_number("zoom_range[1]", high, lo=0, lo_open=True)
    lo_c, hi_c = concrete_value(low), concrete_value(high)
    if lo_c is not None and hi_c is not None and lo_c > hi_c:
        raise ValueError(f"zoom_range={show(zoom_range)} must have low <= high")
    return low, high


def random_affine(
    key: jax.Array,
    image: ArrayLike,
    *,
    max_shift: float = 0.0,
    max_degrees: float = 0.0,
    zoom_range: tuple[float, float] = (1.0, 1.0),
    **kwargs,
) -> jax.Array:
    """Shift, rotation and zoom drawn at once and applied in ONE resampling.

    Composing ``random_shift``, ``random_rotate`` and ``random_zoom`` interpolates
    three times and blurs small images such as the 8x8 digits; this draws the
    three parameters (same distributions as the single functions) and
    interpolates once. The content is zoomed and rotated about the centre, then
    shifted.

    Args:
      key: a PRNG key (one per example).
      image: one image ``(H, W[, C])``.
      max_shift: the largest shift in pixels per axis.
      max_degrees: the largest rotation in degrees.
      zoom_range: ``(low, high)`` zoom factors.
      **kwargs: ``mode`` / ``cval`` for ``affine_transform``.

    Returns:
      The augmented image, same shape and dtype.

    Example:
      >>> images = jnp.zeros((4, 8, 8, 1)).at[:, 2:6, 3:5].set(1.0)
      >>> keys = jax.random.split(jax.random.key(0), len(images))
      >>> aug = jax.vmap(lambda k, im: random_affine(k, im, max_shift=1.0, max_degrees=10.0,
      ...                                            zoom_range=(0.9, 1.1)))(keys, images)
      >>> aug.shape                                      # one transform per image
      (4, 8, 8, 1)
    """
    check_non_negative("max_shift", max_shift)
    check_non_negative("max_degrees", max_degrees)
    low, high = _zoom_range(zoom_range)
    k_shift, k_angle, k_zoom = jax.random.split(key, 3)
    offset = jax.random.uniform(k_shift, (2,), minval=-1.0, maxval=1.0) * max_shift
    angle = jnp.deg2rad(jax.random.uniform(k_angle, (), minval=-1.0, maxval=1.0) * max_degrees)
    factor = jax.random.uniform(k_zoom, (), minval=low, maxval=high)
    c, s = jnp.cos(angle), jnp.sin(angle)
    matrix = jnp.array([[c, -s], [s, c]]) / factor
    return affine_transform(image, matrix, offset, **kwargs)
