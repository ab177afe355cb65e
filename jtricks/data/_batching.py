"""Mini-batches: a keyed, reproducible iterator over a pytree of arrays."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._validate import check_bool, check_int
from jtricks._xla import RUN_ONCE


def _num_examples(data: Any, name: str = "data", *, allow_empty: bool = True) -> int:
    """The examples in ``data``: the leading axis its arrays share (concrete or traced)."""
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError(f"{name} has no arrays to batch")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    shapes = [np.shape(leaf) for leaf in leaves]
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"every array in {name} needs the same leading (example) axis; got shapes {shapes}"
        )
    n = sizes.pop()
    if n == 0 and not allow_empty:
        raise ValueError(f"{name} holds no examples (shapes {shapes})")
    return cast(int, n)


# ``jax.random.permutation(key, n)`` as one compiled program per ``n`` (run eagerly it
# compiles its iota and its shuffle separately), with RUN_ONCE's options: it runs for
# microseconds, once per split or epoch, and compiles in a fraction of the time.
permutation = jax.jit(jax.random.permutation, static_argnums=1, compiler_options=RUN_ONCE)


def on_device(data: Any) -> Any:
    """``data`` with every leaf as a JAX array, NumPy arrays moved without compiling.

    ``jnp.asarray`` of a NumPy array compiles a small copy program for every new
    shape and dtype (``jit(stage)``); ``jax.device_put`` moves it as is (with
    the same dtype canonicalisation). Other leaves (lists, scalars, JAX arrays)
    go through ``jnp.asarray``.

    Example:
      >>> x, y = on_device((np.zeros((3, 2), np.float32), np.arange(3, dtype=np.int64)))
      >>> isinstance(y, jax.Array), x.dtype, y.dtype         # int64 canonicalised as by jnp
      (True, dtype('float32'), dtype('int32'))
    """
    def one(leaf):
        if isinstance(leaf, (np.ndarray, np.generic)):
            return jax.device_put(leaf)
        return jnp.asarray(leaf)

    return jax.tree.map(one, data)


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    """The number of batches ``batches`` yields for ``n`` examples.

    Args:
      n: the number of examples.
      batch_size: examples per batch.
      drop_last: whether the final, smaller batch is dropped.

    Returns:
      ``n // batch_size`` with ``drop_last``, else ``ceil(n / batch_size)``.

    Example:
      >>> num_batches(10, 4), num_batches(10, 4, drop_last=True)
      (3, 2)
    """
    n = check_int("n", n, lo=0)
    batch_size = check_int("batch_size", batch_size, lo=1)
    return n // batch_size if check_bool("drop_last", drop_last) else -(-n // batch_size)


def batches(
    key: jax.Array | None,
    data: Any,
    batch_size: int,
    *,
    drop_last: bool = False,
) -> Iterator[Any]:
    """Iterates over one epoch of mini-batches.

    Args:
      key: a PRNG key to shuffle the examples (a new key each epoch, e.g.
        ``jax.random.fold_in(key, epoch)``), or ``None`` to keep their order.
      data: a pytree of arrays (NumPy or JAX) sharing the leading axis, e.g.
        ``(images, labels)`` or ``{"x": x, "y": y}``.
      batch_size: examples per batch.
      drop_last: drop the final, smaller batch (keeps shapes static under ``jit``).

    Yields:
      Pytrees with the structure of ``data`` holding ``batch_size`` examples each
      (the last one may be smaller unless ``drop_last``). Arrays keep their type.

    Raises:
      ValueError: if the arrays do not share the leading axis or ``batch_size < 1``
        (checked when ``batches`` is called, not at the first batch).
      TypeError: if ``batch_size`` is not an integer or ``drop_last`` not a bool.

    Example:
      >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
      >>> [yb.tolist() for _, yb in batches(None, (x, y), 2)]           # in order
      [[0, 1], [2, 3], [4]]
      >>> key = jax.random.key(0)
      >>> for epoch in range(2):                         # a new order every epoch
      ...     for xb, yb in batches(jax.random.fold_in(key, epoch), (x, y), 2, drop_last=True):
      ...         assert xb.shape == (2, 2) and (xb[:, 0] == 2 * yb).all()
    """
    batch_size = check_int("batch_size", batch_size, lo=1)
    count = num_batches(_num_examples(data), batch_size, drop_last=drop_last)
    return _batches(key, data, batch_size, count)  # the arguments are checked now, not lazily


def _batches(key, data, batch_size: int, count: int) -> Iterator[Any]:
    n = _num_examples(data)
    order = np.arange(n) if key is None else np.asarray(permutation(key, n))
    for b in range(count):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield jax.tree.map(lambda leaf: leaf[idx], data)
