"""Dropout and stochastic depth (drop path), keyed and pure.

``rate`` is always the probability of *dropping* (not of keeping, unlike
``jax.example_libraries.stax.Dropout``); survivors are scaled by ``1 / (1 -
rate)`` so the expected value is unchanged. ``rate`` may be a Python number or
a (traced) array: a sweep can ``vmap`` over it. At ``rate == 1`` everything is
dropped and the gradients are zeros, not NaN.

Masks are drawn by :func:`keep_masks`: 16-bit uniforms, two per random word,
so the keep probability is resolved to 1/65536; the models of
:mod:`jtricks.nn` draw all the masks of a forward pass at once. The first axis
is the batch: example ``i``'s words are a function of ``fold_in(key, i)``
only, ``i`` its index in the global batch, through a cheap counter-based hash
(:func:`jtricks.nn._context.example_bits`), so masks do not depend on the
number of devices a step runs on, and a sweep with one key per member pays
little for its own masks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jtricks._validate import check_bool, check_number
from jtricks.nn._context import example_bits, per_example


def _check(name: str, key, rate, training: bool) -> None:
    check_number("rate", rate, lo=0, hi=1)
    if check_bool("training", training) and key is None:
        raise ValueError(
            f"{name}: key=None but training=True; pass a PRNG key (e.g. from jax.random.split)"
        )


def _uniforms(key, batch: int, per_example_size: int) -> jax.Array:
    """``uint32[batch, >= per_example_size]`` 16-bit uniforms, two per random word.

    Row ``i`` is a function of ``fold_in(key, global index of i)`` only
    (:func:`example_bits`: that key's two words, then two integer mixes per
    word). Inside ``data_parallel(..., per_example=False)`` the rows
    come from one ``jax.random.bits`` draw of ``key`` for the whole local batch
    instead.
    """
    half = (per_example_size + 1) // 2
    if per_example():
        words = example_bits(key, batch, half)
    else:
        words = jax.random.bits(key, (batch, half), jnp.uint32)
    return jnp.concatenate([words >> 16, words & 0xFFFF], axis=1)  # contiguous halves


def keep_masks(key: jax.Array, keeps, shapes) -> list[jax.Array]:
    """Boolean masks of ``shapes``, each entry ``True`` with its mask's probability in ``keeps``.

    The shapes share a leading batch axis, and example ``i``'s entries of
    every mask come from random words that depend only on ``fold_in(key, i)``
    (:func:`jtricks.nn._context.example_bits`), ``i`` its index in the global
    batch (:func:`jtricks.nn.example_keys`: ``arange``
    on one device or under ``jit`` over a sharded global batch, shifted by the
    shard's offset inside :func:`jtricks.nn.data_parallel`), so the masks do
    not depend on how many devices share the batch.

    All the masks come from one random draw, and each random 32-bit word gives
    two 16-bit uniforms: a model that draws every dropout (or drop-path) mask
    of a forward pass here pays for one random-number kernel at half the
    bits, instead of one ``jax.random.bernoulli`` per layer. Generating the
    random bits is most of dropout's cost, and the words are two integer mixes
    each instead of threefry's 20 rounds per two words, so
    :func:`jtricks.nn.mlp` with dropout is as fast as, or faster than, the same
    model in flax, and one key per sweep member costs a few percent of a
    step. The price is resolution:
    the keep probability is ``round(keep * 65536) / 65536`` (0 and 1 stay
    exact), within 7.7e-6 of ``keep``.

    Args:
      key: a PRNG key (any implementation), the same on every device.
      keeps: one keep probability per shape, or one for all; values in
        ``[0, 1]`` (may be traced; outside values are clipped).
      shapes: the masks' shapes, batch axis first (a 0-d shape is a batch of
        one).

    Returns:
      A list of boolean arrays, one per shape; different masks use disjoint
      random bits, so they are independent.

    Raises:
      ValueError: if the shapes do not share their leading (batch) size.

    Example:
      >>> a, b = keep_masks(jax.random.key(0), [0.5, 0.9], [(4, 3), (4, 1)])
      >>> a.shape, b.shape
      ((4, 3), (4, 1))
      >>> (first_two,) = keep_masks(jax.random.key(0), 0.5, [(2, 3)])  # example i: same bits
      >>> bool((first_two == keep_masks(jax.random.key(0), 0.5, [(4, 3)])[0][:2]).all())
      True
    """
    shapes = [tuple(s) for s in shapes]
    rows = [s[1:] if s else () for s in shapes]
    batches = {s[0] if s else 1 for s in shapes}
    if len(batches) != 1:
        raise ValueError(f"keep_masks: shapes {shapes} must share their leading (batch) size")
    (batch,) = batches
    sizes = [math.prod(r) for r in rows]
    if not isinstance(keeps, (list, tuple)):
        keeps = [keeps] * len(shapes)
    uniforms = _uniforms(key, batch, sum(sizes))
    masks, start = [], 0
    for shape, size, keep in zip(shapes, sizes, keeps):
        keep = jnp.clip(jnp.asarray(keep, jnp.float32), 0.0, 1.0)
        threshold = jnp.round(keep * 65536.0).astype(jnp.uint32)  # in [0, 65536]
        masks.append(uniforms[:, start : start + size].reshape(shape) < threshold)
        start += size
    return masks


def keep_and_scale(rate, dtype):
    """``(1 - rate, 1 / (1 - rate))`` in at least f32, with scale 0 (not inf) at ``rate == 1``."""
    keep = 1.0 - jnp.asarray(rate, jnp.promote_types(dtype, jnp.float32))
    safe_keep = jnp.where(keep > 0, keep, 1.0)
    return keep, jnp.where(keep > 0, 1.0 / safe_keep, 0.0)


def apply_mask(x, mask, scale):
    """``where(mask, x * scale, 0)`` in ``x``'s dtype: dropout with a drawn mask."""
    return jnp.where(mask, x * jnp.asarray(scale).astype(x.dtype), jnp.zeros((), x.dtype))


def _masked(key, x, rate, mask_shape):
    """``where(mask, x / (1 - rate), 0)`` with ``mask ~ Bernoulli(1 - rate)`` of ``mask_shape``."""
    keep, scale = keep_and_scale(rate, x.dtype)
    (mask,) = keep_masks(key, keep, [mask_shape])
    return apply_mask(x, mask, scale)


def dropout(key: jax.Array | None, x: jax.Array, rate, *, training: bool) -> jax.Array:
    """Zeroes each entry of ``x`` with probability ``rate``, scales the rest by ``1/(1-rate)``.

    Args:
      key: a PRNG key (needed when ``training``), the step key, the same on
        every device.
      x: input of any shape and floating dtype (kept), batch axis first:
        example ``i``'s entries are dropped with bits that depend only on
        ``fold_in(key, i)``, ``i`` its index in the global batch (see
        :func:`keep_masks`).
      rate: the drop probability in ``[0, 1]`` (may be traced).
      training: when ``False`` the input is returned unchanged.

    Returns:
      An array like ``x``; ``E[dropout(x)] = x``; all zeros (with zero, finite
      gradients) when ``rate == 1``.

    Raises:
      ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, or
        ``key`` is ``None`` while ``training``.

    References:
      Srivastava, Hinton, Krizhevsky, Sutskever, Salakhutdinov. "Dropout: A Simple
      Way to Prevent Neural Networks from Overfitting". JMLR,
      https://jmlr.org/papers/v15/srivastava14a.html, 2014.

    Example:
      >>> y = dropout(jax.random.key(0), jnp.ones((4, 8)), 0.5, training=True)
      >>> sorted(set(y.ravel().tolist()))   # dropped, or kept and scaled by 1 / (1 - 0.5)
      [0.0, 2.0]
      >>> dropout(jax.random.key(0), jnp.ones(3), 0.5, training=False)   # evaluation: identity
      Array([1., 1., 1.], dtype=float32)
    """
    _check("dropout", key, rate, training)
    x = jnp.asarray(x)
    if not training:
        return x
    return _masked(key, x, rate, x.shape)


def drop_path(key: jax.Array | None, x: jax.Array, rate, *, training: bool) -> jax.Array:
    """Stochastic depth: drops the whole of ``x`` per example with probability ``rate``.

    Apply it to the output of a residual branch before adding the shortcut
    (``y = shortcut + drop_path(key, branch, rate, training=True)``): for each
    example (first axis) the branch is kept, scaled by ``1/(1-rate)``, or
    zeroed, so the block is skipped for that example.

    Args:
      key: a PRNG key (needed when ``training``); example ``i`` is kept or
        dropped with bits that depend only on ``fold_in(key, i)`` (see
        :func:`keep_masks`).
      x: the branch output ``(batch, ...)``.
      rate: the probability of dropping the branch, in ``[0, 1]`` (may be traced).
      training: when ``False`` the input is returned unchanged.

    Returns:
      An array like ``x``.

    Raises:
      ValueError: if a concrete ``rate`` is outside ``[0, 1]`` or NaN, or
        ``key`` is ``None`` while ``training``.

    References:
      Huang, Sun, Liu, Sedra, Weinberger. "Deep Networks with Stochastic Depth".
      https://arxiv.org/abs/1603.09382, 2016.

    Example:
      >>> y = drop_path(jax.random.key(0), jnp.ones((4, 8, 8, 16)), 0.2, training=True)
      >>> y[:, 0, 0, 0]          # whole examples dropped, the others scaled by 1 / 0.8
      Array([0.  , 1.25, 1.25, 1.25], dtype=float32)
    """
    _check("drop_path", key, rate, training)
    x = jnp.asarray(x)
    if not training:
        return x
    if x.ndim < 1:
        raise ValueError(f"drop_path: input of shape {x.shape} has no batch axis")
    return _masked(key, x, rate, (x.shape[0],) + (1,) * (x.ndim - 1))
