"""Imbalanced classes: class weights and balanced, over- and under-sampling.

Two remedies from the lesson: penalise errors on the rare classes more (pass
``class_weights`` to ``jtricks.losses.cross_entropy``), or resample so that every
class is equally frequent. With the "balanced" weights below, the weighted loss
on the imbalanced set equals the expected loss on a balanced resampling.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jtricks._validate import check_int, concrete_value


def check_labels(labels: ArrayLike, num_classes: int, name: str = "labels") -> None:
    """Raises ``ValueError`` if concrete integer ``labels`` fall outside ``[0, num_classes)``.

    Traced labels are not checked (see the callers for what happens then).
    """
    arr = concrete_value(labels)
    if arr is None:
        return
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        values = np.unique(arr[bad])
        shown = ", ".join(map(str, values[:10].tolist())) + (" ..." if values.size > 10 else "")
        raise ValueError(
            f"{name} contain {int(bad.sum())} value(s) outside [0, {num_classes}) "
            f"(num_classes={num_classes}): {shown}"
        )


def class_weights(labels: ArrayLike, num_classes: int) -> jax.Array:
    """Balanced class weights ``w_c = n / (num_classes * n_c)``.

    The same rule as scikit-learn's ``class_weight="balanced"``: a class twice as
    rare weighs twice as much, and when every class is present the weights
    average to 1 over the examples (``sum_i w[y_i] = n``). Classes absent from
    ``labels`` get weight 0 (not inf). Works under ``jit`` (traced labels cannot
    be checked; out-of-range ones are then left out of the counts).

    Args:
      labels: integer class indices, any shape.
      num_classes: the number of classes.

    Returns:
      float32 array of shape ``(num_classes,)``.

    Raises:
      ValueError: if concrete labels fall outside ``[0, num_classes)``.

    Example:
      >>> y_train = jnp.array([0, 0, 0, 1])
      >>> w = class_weights(y_train, 2)                  # n / (num_classes * count)
      >>> w
      Array([0.6666667, 2.       ], dtype=float32)
      >>> logits = jnp.zeros((4, 2))
      >>> jtricks.losses.cross_entropy(logits, y_train, class_weights=w)
      Array(0.6931472, dtype=float32)
    """
    num_classes = check_int("num_classes", num_classes, lo=1)
    check_labels(labels, num_classes)
    return _class_weights(jnp.asarray(labels), num_classes)


@functools.partial(jax.jit, static_argnums=1)
def _class_weights(labels: jax.Array, num_classes: int) -> jax.Array:
    counts = jnp.bincount(labels.reshape(-1), length=num_classes).astype(jnp.float32)
    n = jnp.float32(labels.size)
    return jnp.where(counts > 0, n / (num_classes * jnp.maximum(counts, 1)), 0.0)


def balanced_sample(
    key: jax.Array, labels: ArrayLike, num_classes: int, num_samples: int
) -> jax.Array:
    """Draws example indices so that every present class is equally likely.

    Each draw picks a class uniformly among the classes present, then an example
    of that class uniformly (with replacement): example ``i`` has probability
    ``w[y_i] / n`` with ``w = class_weights(labels, num_classes)``. Works under ``jit``
    (``num_samples`` static).

    Args:
      key: a PRNG key.
      labels: integer class indices of shape ``(n,)``.
      num_classes: the number of classes.
      num_samples: how many indices to draw.

    Returns:
      int32 indices of shape ``(num_samples,)``.

    Example:
      >>> y_train = jnp.array([0] * 90 + [1] * 10)
      >>> idx = balanced_sample(jax.random.key(0), y_train, 2, 1000)
      >>> idx.shape, float(y_train[idx].mean())          # about half of each class
      ((1000,), 0.5...)
    """
    num_samples = check_int("num_samples", num_samples, lo=0)
    num_classes = check_int("num_classes", num_classes, lo=1)
    check_labels(labels, num_classes)
    return _balanced_sample(key, jnp.asarray(labels), num_classes, num_samples)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _balanced_sample(key, labels, num_classes, num_samples):
    w = _class_weights(labels, num_classes)[labels]
    idx = jax.random.choice(key, labels.shape[0], (num_samples,), p=w / jnp.sum(w))
    return idx.astype(jnp.int32)


def _host_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded by the key: keyed and reproducible, without one XLA
    compilation per class size (the output sizes here depend on the data anyway)."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key).astype(np.uint64).ravel().tolist())


def _per_class(key, labels, num_classes, target_fn, resample):
    check_labels(labels, num_classes)
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    target = target_fn(counts[counts > 0])
    rng = _host_rng(key)
    idx = np.concatenate([resample(rng, np.flatnonzero(labels == c), target)
                          for c in np.flatnonzero(counts)])
    return jnp.asarray(rng.permutation(idx), dtype=jnp.int32)


def oversample(key: jax.Array, labels: ArrayLike, num_classes: int) -> jax.Array:
    """Indices that repeat the rarer classes up to the size of the largest class.

    Every example is kept once; each smaller class is topped up with examples drawn
    from it with replacement. Combine with augmentation so the repeats differ.

    Args:
      key: a PRNG key.
      labels: integer class indices of shape ``(n,)`` (concrete: the output size
        depends on the class counts).
      num_classes: the number of classes.

    Returns:
      Shuffled int32 indices with ``max_count`` examples of every present class.

    Example:
      >>> y_train = jnp.array([0, 0, 0, 1])
      >>> idx = oversample(jax.random.key(0), y_train, 2)
      >>> jnp.bincount(y_train[idx])                     # class 1 repeated to 3 examples
      Array([3, 3], dtype=int32)
    """
    num_classes = check_int("num_classes", num_classes, lo=1)

    def top_up(rng, members, target):
        return np.concatenate([members, rng.choice(members, target - members.size, replace=True)])

    return _per_class(key, labels, num_classes, np.max, top_up)


def undersample(key: jax.Array, labels: ArrayLike, num_classes: int) -> jax.Array:
    """Indices that keep a random subset of each class, the size of the smallest class.

    Args:
      key: a PRNG key.
      labels: integer class indices of shape ``(n,)`` (concrete).
      num_classes: the number of classes.

    Returns:
      Shuffled int32 indices with ``min_count`` examples of every present class,
      drawn without replacement.

    Example:
      >>> y_train = jnp.array([0, 0, 0, 1])
      >>> idx = undersample(jax.random.key(0), y_train, 2)
      >>> jnp.bincount(y_train[idx])                     # one example of each class
      Array([1, 1], dtype=int32)
    """
    num_classes = check_int("num_classes", num_classes, lo=1)

    def subset(rng, members, target):
        return rng.choice(members, target, replace=False)

    return _per_class(key, labels, num_classes, np.min, subset)
