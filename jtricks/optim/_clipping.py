"""Gradient clipping: by value, by per-leaf norm and by global norm."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._numeric import abs_sq, compute_dtype, global_norm
from .. import _validate as v
from ._base import EmptyState, GradientTransformation
from ._checks import transformation
from ._common import as_dtype, map_tree


def _empty_init(params):
    del params
    return EmptyState()


def clip(max_delta: jax.typing.ArrayLike) -> GradientTransformation:
    """Clips every update element to ``[-max_delta, max_delta]`` (``optax.clip``).

    Args:
      max_delta: the largest absolute value, ``> 0`` (optax's name).

    Returns:
      A stateless ``GradientTransformation``.

    Raises:
      ValueError: for a non-positive ``max_delta``.

    Example:
      >>> tx = clip(1.0)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]   # each entry to [-1, 1]
      Array([ 1., -1.], dtype=float32)
    """
    v.check_positive("max_delta", max_delta)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def leaf(g):
            m = as_dtype(max_delta, compute_dtype(g.dtype))
            return jnp.clip(g.astype(m.dtype), -m, m).astype(g.dtype)

        return map_tree(leaf, updates), state

    return transformation("clip", _empty_init, update_fn)


def clip_by_norm(max_norm: jax.typing.ArrayLike) -> GradientTransformation:
    r"""Rescales each leaf separately so that its L2 norm is at most ``max_norm``:
    :math:`g \cdot \min(1, c / \lVert g \rVert)`.

    Args:
      max_norm: the largest norm of a leaf, ``> 0``.

    Returns:
      A stateless ``GradientTransformation``.

    Raises:
      ValueError: for a non-positive ``max_norm``.

    References:
      Pascanu, Mikolov, Bengio, "On the difficulty of training recurrent neural
      networks", https://arxiv.org/abs/1211.5063, 2013.

    Example:
      >>> tx = clip_by_norm(1.0)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]   # this leaf's norm to 1
      Array([ 0.4472136, -0.8944272], dtype=float32)
    """
    v.check_positive("max_norm", max_norm)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def leaf(g):
            cdt = compute_dtype(g.dtype)
            g32, c = g.astype(cdt), as_dtype(max_norm, cdt)
            norm = jnp.sqrt(jnp.sum(abs_sq(g32)))
            clipped = (g32 / jnp.where(norm > 0, norm, 1.0)) * c
            return jnp.where(norm < c, g32, clipped).astype(g.dtype)

        return map_tree(leaf, updates), state

    return transformation("clip_by_norm", _empty_init, update_fn)


class ClipByGlobalNormState(NamedTuple):
    """What the last step saw, for logging exploding gradients.

    Attributes:
      global_norm: the global L2 norm of the last updates, before clipping (float32).
      clipped: whether the last updates were rescaled.
    """

    global_norm: jax.Array
    clipped: jax.Array


def clip_by_global_norm(max_norm: jax.typing.ArrayLike) -> GradientTransformation:
    r"""Rescales all updates together so that their global L2 norm is at most
    ``max_norm``: :math:`g \cdot c / \lVert g \rVert` when :math:`\lVert g \rVert \ge c`
    (as ``optax.clip_by_global_norm``; each element is multiplied by the one number
    :math:`c / \lVert g \rVert` where optax divides it by :math:`\lVert g \rVert` and
    multiplies by :math:`c`, so the two differ by a rounding, and this one fuses into the
    next transformation's kernels).

    The state keeps the last pre-clip norm and whether it clipped, so a training
    loop can log exploding gradients.

    Args:
      max_norm: the largest global norm :math:`c`, ``> 0``.

    Returns:
      A ``GradientTransformation`` with state :class:`ClipByGlobalNormState`.

    Raises:
      ValueError: for a non-positive ``max_norm``.

    References:
      Pascanu, Mikolov, Bengio, "On the difficulty of training recurrent neural
      networks", https://arxiv.org/abs/1211.5063, 2013.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.chain(jo.clip_by_global_norm(1.0), jo.sgd(1.0))
      >>> grads = {"w": jnp.array([3.0, 4.0])}
      >>> updates, state = tx.update(grads, tx.init(grads))
      >>> updates["w"]                                   # norm 5 clipped to 1
      Array([-0.6, -0.8], dtype=float32)
      >>> state[0].global_norm, state[0].clipped         # logged for exploding gradients
      (Array(5., dtype=float32), Array(True, dtype=bool))
    """
    v.check_positive("max_norm", max_norm)

    def init_fn(params):
        del params
        return ClipByGlobalNormState(jnp.zeros([], jnp.float32), jnp.zeros([], jnp.bool_))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = global_norm(updates)
        c = as_dtype(max_norm, norm.dtype)
        keep = norm < c

        # The choice is made on a scalar, so each element is one multiplication,
        # ``g * (c / norm)`` when clipping (``g * 1``, exactly ``g``, otherwise), with
        # no parameter-sized select between two computed branches. Not optax's
        # ``(g / norm) * c``: XLA does not repeat an elementwise division in each of
        # its consumers, so on a tree of several leaves the divided gradients were
        # written out and read back before the next transformation (Adam's ``mu`` and
        # ``nu``); the multiplication fuses into them. Measured with Adam, 2 CPU cores,
        # one process: 8 leaves of 1M, 21.8 ms a step -> 10.8 ms, 1 leaf of 8M (where
        # XLA already rewrote the division) 10.7 ms either way. The results differ from
        # optax's by a rounding (at most 2 units in the last place) when clipping.
        scale = jnp.where(keep, jnp.ones_like(norm), c / norm)

        def leaf(g):
            cdt = compute_dtype(g.dtype)
            return (g.astype(cdt) * scale.astype(cdt)).astype(g.dtype)

        new_state = ClipByGlobalNormState(
            norm.astype(state.global_norm.dtype), jnp.logical_not(keep))
        return map_tree(leaf, updates), new_state

    return transformation("clip_by_global_norm", init_fn, update_fn, (ClipByGlobalNormState,))
