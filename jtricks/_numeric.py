"""The small numeric mechanisms every layer of jtricks shares, each defined once.

Core (``optim``, ``init``, ``nn``, ``data``, ``losses``), the engine (``train``)
and the front-ends call these; none of them writes its own copy.

* :func:`compute_dtype` — the dtype statistics and updates are computed in:
  the input dtype promoted to at least float32.
* :func:`safe_increment` / :func:`zero_count` — step and patience counters
  that saturate at the top of their integer dtype instead of wrapping.
* :func:`abs_sq` — ``|x|**2 = x * conj(x)``, real also for complex ``x``.
* :func:`global_norm` — the L2 norm over every leaf of a pytree.
* :func:`all_finite` — whether every floating leaf of a pytree is finite.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def compute_dtype(dtype) -> jnp.dtype:
    """``dtype`` promoted to at least float32 (bf16 / f16 -> f32, f64 stays f64).

    Example:
      >>> compute_dtype(jnp.bfloat16)
      dtype('float32')
    """
    return jnp.promote_types(dtype, jnp.float32)


def upcast(x: Any) -> jax.Array:
    """``x`` as an array in :func:`compute_dtype` of its dtype."""
    x = jnp.asarray(x)
    return x.astype(compute_dtype(x.dtype))


def zero_count() -> jax.Array:
    """A fresh int32 counter."""
    return jnp.zeros([], jnp.int32)


def safe_increment(count: Any) -> jax.Array:
    """``count + 1``, saturating at the largest value of ``count``'s integer dtype.

    Example:
      >>> int(safe_increment(jnp.iinfo(jnp.int32).max))
      2147483647
    """
    count = jnp.asarray(count)
    top = jnp.iinfo(count.dtype).max
    return jnp.where(count < top, count + 1, top).astype(count.dtype)


def abs_sq(x: Any) -> jax.Array:
    """``|x|**2`` elementwise: ``x * x`` for real ``x``, ``x.real**2 + x.imag**2`` (real) for
    complex ``x`` — the squared magnitude every second moment and norm is built from.

    Example:
      >>> abs_sq(jnp.array([3.0 + 4.0j]))
      Array([25.], dtype=float32)
    """
    x = jnp.asarray(x)
    if jnp.iscomplexobj(x):
        return jnp.square(x.real) + jnp.square(x.imag)
    return x * x


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all leaves together (``|x|`` for complex ones), accumulated in at
    least float32.

    Example:
      >>> float(global_norm({"a": jnp.array([3.0]), "b": jnp.array([4.0])}))
      5.0
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    dtype = compute_dtype(jnp.result_type(*leaves))
    # One reduction per leaf, summed in leaf order: optax.tree.norm's order, so that
    # clip_by_global_norm gives optax's numbers bit for bit (reducing small leaves from
    # one concatenation compiles fewer kernels but rounds differently).
    return jnp.sqrt(ordered_sum([jnp.sum(abs_sq(jnp.asarray(x).astype(dtype))) for x in leaves]))


_CHAIN_MAX = 64  # scalars summed as one chain of adds; more go through a loop


def ordered_sum(scalars: list) -> jax.Array:
    """``sum(scalars)``: the same additions in the same order, so the same bits.

    Up to ``_CHAIN_MAX`` scalars are added as Python's ``sum`` adds them. More
    are stacked and added one by one by a ``lax.scan``: XLA fuses a chain of
    ``n`` scalar adds into one kernel whose compile time grows faster than
    ``n**2`` (the 4096 leaf norms of a 4096-leaf tree took minutes to compile;
    the loop compiles once, whatever ``n``).

    Example:
      >>> ordered_sum([jnp.float32(0.1)] * 100) == sum([jnp.float32(0.1)] * 100)
      Array(True, dtype=bool)
    """
    if len(scalars) <= _CHAIN_MAX:
        return jnp.asarray(sum(scalars))
    stacked = jnp.stack(scalars)
    total, _ = jax.lax.scan(lambda acc, s: (acc + s, None), jnp.zeros((), stacked.dtype),
                            stacked, unroll=8)
    return total


def all_finite(tree: Any) -> jax.Array:
    """Whether every entry of every inexact (floating or complex) leaf is finite.

    Integer and boolean leaves cannot be non-finite and are ignored; an empty
    tree is finite.

    Example:
      >>> bool(all_finite({"w": jnp.array([1.0, jnp.inf]), "step": jnp.array(3)}))
      False
    """
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


__all__ = ["abs_sq", "all_finite", "compute_dtype", "global_norm", "safe_increment", "upcast",
           "zero_count"]
