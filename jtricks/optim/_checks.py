"""The update-time checks of :mod:`jtricks.optim`, defined once for every transformation.

What a transformation checks when it is used (not when it is built; the
hyperparameters are checked by :mod:`jtricks._validate` in each factory):

* ``init``: the parameters are floating point (an integer leaf is a
  ``TypeError`` naming its path: its updates would be truncated to 0 and it
  would never move);
* ``update``: the state is one this transformation's ``init`` makes (a
  ``TypeError`` naming the transformation that made the state given), the
  updates are floating point and have the tree structure and the leaf shapes of
  the parameters (a ``ValueError`` naming the first leaf that differs and both
  shapes: a ``(3, 1)`` gradient against ``(3,)`` parameters must not broadcast);
* masks are trees of booleans known when tracing, with the parameters' structure.

Every check reads only static facts (types, tree structures, shapes, dtypes),
so under ``jit`` it runs once per trace and the compiled step does not change.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import optax

from .._validate import check_mask as check_mask
from .._validate import is_mask_fn as is_mask_fn
from .._validate import show
from .._validate import static_mask as static_mask

_MADE_BY: dict[type, list[str]] = {}


def path_str(path) -> str:
    """A leaf's path as the user would index it: ``['w']``, ``[0].b`` (``''`` at the root)."""
    return jax.tree_util.keystr(tuple(path))


def _dtype(leaf: Any):
    dtype = getattr(leaf, "dtype", None)  # arrays, tracers, ShapeDtypeStructs
    return jnp.result_type(leaf) if dtype is None else dtype


def check_float_leaves(name: str, tree: Any, what: str = "params") -> None:
    """Raises ``TypeError`` naming the first leaf of ``tree`` that is not floating point.

    Args:
      name: where the check runs, e.g. ``"scale_by_adam.init"``.
      tree: the parameters (or updates).
      what: the tree's name in the message.

    Example:
      >>> check_float_leaves("adam.init", {"w": jnp.zeros(2, jnp.int32)})
      Traceback (most recent call last):
      ...
      TypeError: adam.init: params['w'] has dtype int32, but parameters must be floating point ...
    """
    # The common case (every leaf floating) is checked without building paths,
    # which costs more than the check itself on a tree of thousands of leaves.
    if all(jnp.issubdtype(d, jnp.inexact) for d in {_dtype(x) for x in jax.tree.leaves(tree)}):
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = _dtype(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            why = ("parameters must be floating point (an integer parameter never moves: its "
                   "updates are truncated to 0); cast it, e.g. .astype(jnp.float32), or leave "
                   "it out with masked" if what == "params" else
                   "gradients must be floating point, in the params' dtype")
            raise TypeError(f"{name}: {what}{path_str(path)} has dtype {dtype}, but {why}")


def check_like(name: str, updates: Any, reference: Any, what: str = "init") -> None:
    """Raises ``ValueError`` when ``updates`` and ``reference`` differ in structure or shapes.

    Args:
      name: the transformation's name, used in the message.
      updates: the tree given to ``update``.
      reference: a tree with the parameters' structure and shapes (the params, or
        the part of the state built like them).
      what: where ``reference`` came from, for the message.

    Example:
      >>> check_like("adam", {"w": jnp.ones((3, 1))}, {"w": jnp.ones(3)})
      Traceback (most recent call last):
      ...
      ValueError: adam.update got updates['w'] of shape (3, 1), but the tree built by init ...
    """
    got: Any = jax.tree.structure(updates)
    want: Any = jax.tree.structure(reference)
    if got != want:
        raise ValueError(
            f"{name}.update got updates with tree structure {got}, but the state was "
            f"built by {what} for tree structure {want}; pass gradients with the same "
            "structure as the params given to init"
            if what == "init" else
            f"{name}.update got updates with tree structure {got}, but {what} have tree "
            f"structure {want}; pass gradients with the params' structure")
    ref_leaves = jax.tree.leaves(reference)
    if all(np.shape(u) == np.shape(r) for u, r in zip(jax.tree.leaves(updates), ref_leaves)):
        return  # the common case, without building the paths
    flat = jax.tree_util.tree_flatten_with_path(updates)[0]
    for (path, u), r in zip(flat, ref_leaves):
        if np.shape(u) != np.shape(r):
            where = "the tree built by init" if what == "init" else what
            raise ValueError(
                f"{name}.update got updates{path_str(path)} of shape {np.shape(u)}, but "
                f"{where} has shape {np.shape(r)} there; pass gradients with the shapes of "
                "the params given to init (they are not broadcast)")


def made_by(state: Any) -> str:
    """What made ``state``, in words, for a message naming a foreign state."""
    cls = type(state)
    if cls is tuple:
        return f"a tuple of {len(state)} states (the state of a chain)"
    own = cls.__module__.startswith("jtricks") or cls.__module__ == "builtins"
    name = cls.__qualname__ if own else f"{cls.__module__}.{cls.__qualname__}"
    label = f"a state of type {name}"
    if not jax.tree.leaves(state):
        return f"{label} (empty: the state of a stateless transformation)"
    makers = _MADE_BY.get(cls)
    return f"{label} (made by {' / '.join(makers)})" if makers else label


def check_state(name: str, state: Any, state_types: Optional[tuple]) -> None:
    """Raises ``TypeError`` when ``state`` was not made by this transformation's ``init``.

    Args:
      name: the transformation's name.
      state: the state given to ``update``.
      state_types: the state classes its ``init`` makes; ``None`` for a stateless
        transformation (any state without leaves is accepted).
    """
    if state_types is None:
        if not jax.tree.leaves(state):
            return
        expected = "the empty state of a stateless transformation"
    else:
        if isinstance(state, state_types):
            return
        expected = " or ".join(t.__name__ for t in state_types)
    raise TypeError(
        f"{name}.update got {made_by(state)}, but {name}.init makes {expected}: "
        "pass the state made by this transformation's init (a state of another "
        "optimizer does not fit)")


def transformation(name: str, init_fn: Callable, update_fn: Callable,
                   state_types: Optional[tuple] = None, *,
                   like: Optional[Callable[[Any], Any]] = None,
                   float_params: bool = True) -> optax.GradientTransformationExtraArgs:
    """``GradientTransformation(init_fn, update_fn)`` with the checks of this module.

    Args:
      name: the factory's name, used in every message.
      init_fn, update_fn: the transformation's functions.
      state_types: the classes of the state ``init_fn`` makes (``None``: stateless).
      like: ``state -> tree`` built like the params (e.g. Adam's ``mu``), checked
        against the updates' structure and shapes.
      float_params: whether ``init`` checks that the params are floating point
        (``False`` for wrappers whose inner transformation sees only part of them).

    Returns:
      The checked ``GradientTransformation``.
    """
    for cls in state_types or ():
        makers = _MADE_BY.setdefault(cls, [])
        if name not in makers:
            makers.append(name)

    def init(params):
        if float_params:
            check_float_leaves(f"{name}.init", params)
        return init_fn(params)

    def update(updates, state, params=None, **extra_args):
        check_state(name, state, state_types)
        if like is not None:
            check_like(name, updates, like(state))
        if params is not None and updates is not None:  # optax accepts a None updates tree
            check_like(name, updates, params, "the params given to update")
        check_float_leaves(f"{name}.update", updates, "updates")
        return update_fn(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init, update)
