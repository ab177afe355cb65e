"""The training state: everything that changes during training, as one pytree."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._numeric import zero_count


def as_key(key: Any) -> jax.Array:
    """A PRNG key from an int seed (a raw ``uint32[2]`` key), or the key as given
    (raw or typed)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.PRNGKey(int(key))
    return jnp.asarray(key)


def _is_typed_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def raw_keys(tree):
    """``tree`` with every typed PRNG key (``jax.random.key``) as its raw ``uint32``
    data: what orbax and the digest can store."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_typed_key(x) else x, tree)


def typed_like(tree, target):
    """The inverse of :func:`raw_keys`: where ``target`` holds a typed key, wrap
    ``tree``'s raw data back into a key of the same implementation."""
    return jax.tree.map(
        lambda x, t: jax.random.wrap_key_data(x, impl=jax.random.key_impl(t))
        if _is_typed_key(t) else x, tree, target)


class TrainState(NamedTuple):
    """Everything that changes during training, as one pytree.

    The optimizer itself (a ``GradientTransformation``) is not part of the
    state: it is a pair of functions that step builders close over, so the
    state stays a plain pytree that ``jit``, ``vmap``, ``pmap`` and checkpoints
    accept.

    Attributes:
      step: int32 scalar, the number of optimizer steps taken (saturates at
        ``2**31 - 1`` instead of overflowing).
      params: the model parameters.
      model_state: non-trained model state, e.g. batch-norm running statistics
        (``None`` or ``{}`` when the model has none).
      opt_state: the optimizer state, ``tx.init(params)``.
      key: a PRNG key, raw ``uint32[2]`` or typed (``jax.random.key``), split
        once per step for dropout; checkpoints keep its kind.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    key: jax.Array

    @classmethod
    def create(cls, *, params, tx, key, model_state=None) -> "TrainState":
        """Builds the initial state.

        Args:
          params: the initial parameters.
          tx: the gradient transformation; ``tx.init(params)`` gives ``opt_state``.
          key: a PRNG key (raw ``uint32[2]``, typed ``jax.random.key(...)``,
            or an int seed, which gives a raw key).
          model_state: optional non-trained state (batch-norm statistics).

        Returns:
          A ``TrainState`` at step 0.
        """
        from ._steps import check_tx

        check_tx(tx)
        return cls(
            step=zero_count(),
            params=params,
            model_state={} if model_state is None else model_state,
            opt_state=tx.init(params),
            key=as_key(key),
        )
