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
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    if not leaves:
        return jnp.zeros([], jnp.float32)
    dtype = compute_dtype(jnp.result_type(*leaves))
    # Small leaves are reduced together, from one concatenation: a reduction per
    # leaf is two kernels per leaf for XLA to compile and launch, which on a tree
    # of thousands of small leaves costs more than copying them once. Big leaves,
    # and leaves known to be sharded (never gathered across devices), are reduced
    # where they are.
    small = [x for x in leaves if x.size <= _GROUP_MAX_SIZE and not _is_sharded(x)]
    parts = [x for x in leaves if x.size > _GROUP_MAX_SIZE or _is_sharded(x)]
    if len(small) > 1:
        parts.append(jnp.concatenate([x.astype(dtype).ravel() for x in small]))
    else:
        parts += small
    return jnp.sqrt(sum(jnp.sum(abs_sq(x.astype(dtype))) for x in parts))


_GROUP_MAX_SIZE = 1 << 14
"""Leaves of at most this many elements are reduced together by :func:`global_norm`."""


def _is_sharded(x: jax.Array) -> bool:
    """Whether ``x`` is known to be split over devices (a concrete array's sharding, or
    a traced one's under explicit sharding); unknown under ``jit``'s automatic sharding."""
    if not isinstance(x, jax.core.Tracer):
        sharding = getattr(x, "sharding", None)
        return sharding is not None and not sharding.is_fully_replicated
    spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
    return spec is not None and any(axis is not None for axis in spec)


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
