"""Dropout and stochastic depth (drop path), keyed and pure.

``rate`` is always the probability of *dropping* (not of keeping, unlike
``jax.example_libraries.stax.Dropout``); survivors are scaled by ``1 / (1 -
rate)`` so the expected value is unchanged. ``rate`` may be a Python number or
a (traced) array: a sweep can ``vmap`` over it. At ``rate == 1`` everything is
dropped and the gradients are zeros, not NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtricks._validate import check_number


def _check(name: str, key, rate, training: bool) -> None:
    check_number("rate", rate, lo=0, hi=1)
    if training and key is None:
        raise ValueError(
            f"{name}: key=None but training=True; pass a PRNG key (e.g. from jax.random.split)"
        )


def _masked(key, x, rate, mask_shape):
    """``where(mask, x / (1 - rate), 0)`` with ``mask ~ Bernoulli(1 - rate)`` of ``mask_shape``."""
    keep = 1.0 - jnp.asarray(rate, jnp.promote_types(x.dtype, jnp.float32))
    safe_keep = jnp.where(keep > 0, keep, 1.0)
    scale = jnp.where(keep > 0, 1.0 / safe_keep, 0.0)
    mask = jax.random.bernoulli(key, keep, mask_shape)
    return jnp.where(mask, x * scale.astype(x.dtype), jnp.zeros((), x.dtype))


def dropout(key: jax.Array | None, x: jax.Array, rate, *, training: bool) -> jax.Array:
    """Zeroes each entry of ``x`` with probability ``rate``, scales the rest by ``1/(1-rate)``.

    Args:
      key: a PRNG key (needed when ``training``).
      x: input of any shape and floating dtype (kept).
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
      key: a PRNG key (needed when ``training``).
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
    """
    _check("drop_path", key, rate, training)
    x = jnp.asarray(x)
    if not training:
        return x
    if x.ndim < 1:
        raise ValueError(f"drop_path: input of shape {x.shape} has no batch axis")
    return _masked(key, x, rate, (x.shape[0],) + (1,) * (x.ndim - 1))
