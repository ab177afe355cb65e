"""The gradient-transformation protocol: ``GradientTransformation``, ``chain``,
``identity`` and ``apply_updates``.

A gradient transformation is a pair of pure functions::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params=None, **extra_args)

exactly as in optax, so jtricks transformations work inside ``optax.chain``,
``flax.training.train_state.TrainState`` and ``flax.nnx.Optimizer``, and optax
transformations work inside :func:`chain`. ``extra_args`` carries values such
as the monitored loss of :func:`reduce_on_plateau` (``value=loss``); every
jtricks ``update`` accepts and ignores the ones it does not use.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ._checks import made_by, path_str, transformation

Params = Any
Updates = Any
OptState = Any


GradientTransformation = optax.GradientTransformationExtraArgs
"""optax's own ``GradientTransformationExtraArgs``: a ``NamedTuple`` ``(init, update)``.

``init(params) -> state``; ``update(updates, state, params=None, **extra_args) ->
(updates, state)``. Being optax's type, ``isinstance(tx,
optax.GradientTransformation)`` holds for every jtricks transformation and
optax's combinators forward extra arguments (``value=``) to it.
"""


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


def _accepts_extra_args(tx) -> bool:
    """Whether ``tx.update`` may be given keyword ``extra_args`` (optax's rule:
    only ``GradientTransformationExtraArgs`` promise to accept them)."""
    return isinstance(tx, optax.GradientTransformationExtraArgs)


def call_update(tx, updates, state, params, extra_args: dict):
    """Calls ``tx.update``, passing ``extra_args`` only where ``tx`` accepts them.

    The one place that decides how a wrapper or a chain forwards extra
    arguments (such as ``value=loss``) to an inner transformation.
    """
    if extra_args and _accepts_extra_args(tx):
        return tx.update(updates, state, params, **extra_args)
    return tx.update(updates, state, params)


def identity() -> GradientTransformation:
    """The transformation that returns the updates unchanged.

    Returns:
      A stateless ``GradientTransformation``.
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return transformation("identity", init_fn, update_fn)


def chain(*transforms) -> GradientTransformation:
    """Applies ``transforms`` one after the other; the state is a tuple of theirs.

    Any object with ``init`` and ``update`` attributes is accepted, optax
    transformations included.

    Args:
      *transforms: gradient transformations, applied in order.

    Returns:
      A ``GradientTransformation`` whose state is the tuple of the inner states.

    Raises:
      TypeError: if an argument has no ``init`` / ``update``.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.chain(jo.clip_by_global_norm(1.0), jo.scale_by_adam(), jo.scale(-1e-3))
      >>> g = jnp.array([3.0, -4.0])
      >>> tx.update(g, tx.init(g))[0]
      Array([-0.00099999,  0.00099999], dtype=float32)
    """
    for i, tx in enumerate(transforms):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise TypeError(
                f"chain argument {i} must be a gradient transformation with init and "
                f"update, got {type(tx).__name__}: {tx!r}"
            )

    def init_fn(params):
        return tuple(tx.init(params) for tx in transforms)

    def update_fn(updates, state, params=None, **extra_args):
        if type(state) is not tuple or len(state) != len(transforms):  # noqa: E721
            raise TypeError(
                f"chain.update got {made_by(state)}, but a chain of "
                f"{len(transforms)} transformations makes a tuple of {len(transforms)} inner "
                "states: pass the state made by this chain's init")
        new_state = []
        for tx, s in zip(transforms, state):
            updates, s = call_update(tx, updates, s, params, extra_args)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init_fn, update_fn)


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns ``params + updates``, leaf by leaf, keeping each parameter's dtype.

    Args:
      params: a pytree of arrays; ``None`` leaves (or ``None`` for the whole tree) stay
        ``None``, as in optax.
      updates: a pytree of the same structure (``None`` leaves leave the parameter as it is).

    Returns:
      The updated parameters, each leaf in the dtype of the parameter.

    Raises:
      ValueError: if ``updates`` has another tree structure, or a leaf of another
        shape (it would broadcast and reshape the parameter).
      TypeError: if a floating-point update meets an integer parameter (it would be
        truncated, and the parameter would never move).
    """
    if params is None:  # optax: a None params tree stays None
        return None

    def leaf(path, p, u):
        if u is None:
            return p
        where = f"apply_updates: updates{path_str(path)}"
        if jnp.shape(u) != jnp.shape(p):
            raise ValueError(f"{where} has shape {jnp.shape(u)}, but params{path_str(path)} "
                             f"has shape {jnp.shape(p)}; updates are not broadcast")
        p_dtype, u_dtype = jnp.result_type(p), jnp.result_type(u)
        if jnp.issubdtype(u_dtype, jnp.inexact) and not jnp.issubdtype(p_dtype, jnp.inexact):
            raise TypeError(f"{where} has dtype {u_dtype}, but params{path_str(path)} has "
                            f"dtype {p_dtype}: the update would be truncated and the "
                            "parameter would never move; keep parameters floating point")
        return jnp.asarray(p + u).astype(p_dtype)

    is_none = lambda x: x is None  # noqa: E731
    got: Any = jax.tree.structure(updates, is_leaf=is_none)
    want: Any = jax.tree.structure(params)
    if got != want:
        raise ValueError(f"apply_updates got updates with tree structure {got}, but the "
                         f"params have tree structure {want}")
    return jax.tree_util.tree_map_with_path(leaf, params, updates, is_leaf=is_none)
