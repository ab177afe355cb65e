"""Honest train / validation / test splits, keyed and reproducible."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jtricks._validate import check_int
from jtricks.data._batching import permutation

_TOL = 1e-6


def _check_fractions(fractions) -> np.ndarray:
    try:
        f = np.asarray([float(v) for v in fractions], dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"fractions={fractions!r} must be a sequence of numbers") from None
    if f.size == 0:
        raise ValueError("fractions=() must contain at least one fraction")
    if np.isnan(f).any() or (f < 0).any():
        raise ValueError(f"fractions={tuple(fractions)!r} must all be >= 0")
    if abs(f.sum() - 1.0) > _TOL:
        raise ValueError(f"fractions={tuple(fractions)!r} must sum to 1, got {f.sum():.6g}")
    return f


def _part_sizes(n: int, f: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding of ``n * f`` (ties to the earlier part); sums to ``n``."""
    quota = n * f
    sizes = np.floor(quota + _TOL).astype(np.int64)
    rest = n - sizes.sum()
    order = np.argsort(-(quota - sizes), kind="stable")
    sizes[order[:rest]] += 1
    return sizes


def _stratified_table(counts: np.ndarray, f: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per-class part sizes with row sums ``counts`` and column sums ``totals``.

    Each class gets the floor of its quota in every part; the leftover examples go,
    one per part, to the parts with the largest remainders that still have room.
    """
    quota = counts[:, None] * f[None, :]
    table = np.floor(quota + _TOL).astype(np.int64)
    room = totals - table.sum(axis=0)
    for c in np.argsort(-(quota - table).max(axis=1), kind="stable"):
        for _ in range(counts[c] - table[c].sum()):
            remainders = np.where(room > 0, quota[c] - table[c], -np.inf)
            j = int(np.argmax(remainders))
            table[c, j] += 1
            room[j] -= 1
    return table


def split(
    key: jax.Array,
    n: int,
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    stratify: ArrayLike | None = None,
) -> tuple[jax.Array, ...]:
    """Randomly splits ``range(n)`` into parts of the given fractions.

    The default ``(0.7, 0.2, 0.1)`` is the lesson's honest evaluation: 70% training,
    20% validation (for every decision, after every epoch) and 10% test (used once,
    at the end). Part sizes are ``n * fraction`` rounded by largest remainder, so
    they sum to ``n`` exactly. The same key always gives the same split.

    With ``stratify`` (the class labels), every class is split in the same
    proportions, so each part keeps the class frequencies of the whole set. The
    part sizes are still exactly those of the unstratified split; each class's
    share of a part is ``count * fraction`` rounded up or down (rarely off by more).

    Args:
      key: a PRNG key.
      n: the number of examples.
      fractions: the fraction of examples in each part; non-negative, summing to 1.
      stratify: optional integer class labels of shape ``(n,)``.

    Returns:
      A tuple with one int32 index array per part, each sorted ascending; together
      they cover ``range(n)`` exactly once.

    Raises:
      ValueError: if the fractions are negative or do not sum to 1, if ``stratify``
        has the wrong shape, or if a class is too small to appear in every part
        with a non-zero fraction.

    Example:
      >>> labels = jnp.array([0] * 10 + [1] * 10)
      >>> images = jnp.arange(20.0)
      >>> train, val, test = split(jax.random.PRNGKey(0), len(labels), stratify=labels)
      >>> len(train), len(val), len(test)
      (14, 4, 2)
      >>> jnp.bincount(labels[test])                     # each class in each part
      Array([1, 1], dtype=int32)
      >>> x_train, y_train = images[train], labels[train]
    """
    n = check_int("n", n, lo=1)
    f = _check_fractions(fractions)
    totals = _part_sizes(n, f)
    if stratify is None:
        perm = np.asarray(permutation(key, n))
        bounds = np.cumsum(totals)[:-1]
        parts = np.split(perm, bounds)
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratify has shape {labels.shape}, expected ({n},) to match n={n}")
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        table = _stratified_table(counts, f, totals)
        empty = (table == 0) & (f[None, :] > 0)
        if empty.any():
            c, j = map(int, np.argwhere(empty)[0])
            need = int(np.ceil(1.0 / f[f > 0].min() - _TOL))
            raise ValueError(
                f"stratify: class {classes[c].item()!r} has only {counts[c]} example(s), too few to "
                f"appear in every part of fractions={tuple(fractions)!r} (part {j} would get "
                f"none); each class needs about {need} examples, or split without stratify"
            )
        perm = np.asarray(permutation(key, n))
        by_class = perm[np.argsort(inverse[perm], kind="stable")]  # shuffled within class
        chunks: list[list[np.ndarray]] = [[] for _ in f]
        start = 0
        for c in range(len(classes)):
            for j, size in enumerate(table[c]):
                chunks[j].append(by_class[start : start + size])
                start += size
        parts = [np.concatenate(ch) for ch in chunks]
    return tuple(jnp.asarray(np.sort(p), dtype=jnp.int32) for p in parts)
