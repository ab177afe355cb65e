"""Small helpers shared by the transformations: counters, dtypes, tree checks.

Not public: every name here is an implementation detail of ``jtricks.optim``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from ._base import call_update as call_update  # re-exported for the wrappers


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the largest value of ``count``'s integer dtype."""
    count = jnp.asarray(count)
    top = jnp.iinfo(count.dtype).max
    return jnp.where(count < top, count + 1, top).astype(count.dtype)


def zero_count() -> jax.Array:
    """A fresh int32 step counter."""
    return jnp.zeros([], jnp.int32)


def zeros_like(x: Any, dtype=None) -> jax.Array:
    """Zeros of ``x``'s shape in ``dtype`` (default ``x``'s), never weakly typed.

    States built from weakly typed params (``jnp.full(n, 0.1)``) would otherwise
    change type after the first update and make a jitted step retrace once.
    """
    return jnp.zeros(jnp.shape(x), jnp.result_type(x) if dtype is None else dtype)


def full_like(x: Any, value: Any, dtype=None) -> jax.Array:
    """``value`` in ``x``'s shape and dtype (or ``dtype``), never weakly typed."""
    return jnp.full(jnp.shape(x), value, jnp.result_type(x) if dtype is None else dtype)


def compute_dtype(dtype) -> jnp.dtype:
    """The dtype statistics are computed in: ``dtype`` promoted to at least float32."""
    return jnp.promote_types(dtype, jnp.float32)


def as_dtype(x: Any, dtype) -> jax.Array:
    """A hyperparameter (number, array or tracer) as an array of ``dtype``.

    Casting hyperparameters to the leaf's compute dtype keeps a float32
    learning rate from promoting a bfloat16 computation (and a float64 one
    from promoting a float32 computation).
    """
    return jnp.asarray(x).astype(dtype)


def check_structure(name: str, updates: Any, reference: Any, what: str = "init") -> None:
    """Raises ``ValueError`` naming both structures when the trees differ.

    Args:
      name: the transformation's name, used in the message.
      updates: the tree given to ``update``.
      reference: a tree of the state with the structure given to ``init``.
      what: where ``reference`` came from, for the message.
    """
    got, want = jax.tree.structure(updates), jax.tree.structure(reference)
    if got != want:
        raise ValueError(
            f"{name}.update got updates with tree structure {got}, but the state was "
            f"built by {what} for tree structure {want}; pass gradients with the same "
            "structure as the params given to init"
        )


def map_leaves(fn: Callable, n_out: int, tree: Any, *rest: Any) -> tuple:
    """Applies ``fn(leaf, *rest_leaves) -> n_out-tuple`` leaf by leaf in one pass.

    ``rest`` trees must have ``tree``'s structure. Returns ``n_out`` trees with
    ``tree``'s structure, so a fused per-leaf update (e.g. Adam's ``mu``,
    ``nu`` and step) is a single Python loop over the leaves.
    """
    leaves, treedef = jax.tree.flatten(tree)
    rest_leaves = [treedef.flatten_up_to(r) for r in rest]
    outs = [fn(*args) for args in zip(leaves, *rest_leaves)]
    if not outs:
        return tuple(treedef.unflatten([]) for _ in range(n_out))
    return tuple(treedef.unflatten(list(col)) for col in zip(*outs))


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all leaves together, accumulated in at least float32."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    dtype = compute_dtype(jnp.result_type(*leaves))
    total = sum(jnp.sum(jnp.square(x.astype(dtype))) for x in leaves)
    return jnp.sqrt(total)
