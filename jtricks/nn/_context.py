"""Where a forward pass runs: the data axis of a per-device step, and the example-key rule.

jtricks fixes one rule for the randomness of a batch (dropout, drop path)::

    key of example i = fold_in(step_key, i)      (i = its index in the global batch)

so an example's masks depend only on the step key and on its place in the
global batch, never on how the batch is cut over devices. The masks' random
words come from that key by a cheap counter-based hash (:func:`example_bits`):
the two words of ``fold_in(step_key, i)`` per example, then one pair of
integer mixes per word, elementwise in (example, word position), so a ``vmap`` over
sweep members with one key each pays little more than one shared key. On one device, and
under ``jit`` over a global sharded batch, ``i = arange(batch)``. Inside
per-device code (``pmap``, ``shard_map``) a model sees only its shard and
cannot know where it lies in the global batch: :func:`data_parallel` tells it.
``jtricks.train.train_step(axis_name=...)`` — and so every per-device form of
:mod:`jtricks.parallel` — traces the loss inside it, so a loss written as on
one device gets, without calling anything special,

* the global example indices ``axis_index(axis) * shard + arange(shard)``
  for its masks (:func:`example_keys`, used by :func:`jtricks.nn.dropout`,
  :func:`jtricks.nn.drop_path` and the models), and
* batch statistics over the global batch (:func:`jtricks.nn.batch_norm`
  with ``axis_name=None`` averages over :func:`data_axis`).

The context is read while tracing; it costs nothing at run time. It is part
of ``jax.jit``'s cache key (``jax.make_user_context``), so a function jitted
on its own and first traced outside the context is traced again inside it.
"""

from __future__ import annotations

import contextlib
from typing import Hashable, Iterator, NamedTuple

import jax
import jax.numpy as jnp

from jtricks._validate import check_bool, check_int


class _Data(NamedTuple):
    axis_name: Hashable | tuple | None
    per_example: bool


# A jit-cache-sensitive context: a function jitted on its own and traced outside
# data_parallel is traced again inside it (and the reverse), never reused wrongly.
_DATA = jax.make_user_context(_Data(None, True))


@contextlib.contextmanager
def data_parallel(axis_name: Hashable | tuple, *, per_example: bool = True) -> Iterator[None]:
    """Declares, while tracing per-device code, the mesh axis (or axes) the batch is split over.

    Device ``d`` along ``axis_name`` must hold the examples ``d * b ... (d +
    1) * b - 1`` of the global batch (``b`` its shard size), the layout of
    :func:`jtricks.parallel.split_batch` and :func:`jtricks.parallel.shard_batch`.
    Contexts nest; ``data_parallel(None)`` switches the rule off inside one.

    Args:
      axis_name: a ``pmap`` / ``shard_map`` axis name, or a tuple of them
        (their devices in row-major order).
      per_example: ``False`` gives up the rule inside the context: masks are
        drawn from the key the model receives for its whole (local) batch in
        one draw, so they depend on how the batch is split. It is the
        baseline that ``scripts/bench_scale.py --part keys`` measures the
        rule against (no measurable difference); not for training.

    Example:
      >>> f = jax.pmap(lambda x: example_indices(x.shape[0]), axis_name="d")
      >>> with data_parallel("d"):
      ...     f(jnp.zeros((2, 3))).tolist()
      [[0, 1, 2], [3, 4, 5]]
    """
    with _DATA(_Data(axis_name, check_bool("per_example", per_example))):
        yield


def data_axis():
    """The data axis declared by the innermost :func:`data_parallel`, or ``None``.

    Example:
      >>> with data_parallel("data"):
      ...     data_axis()
      'data'
    """
    return _DATA.value.axis_name


def per_example() -> bool:
    """Whether masks follow the per-example key rule here (``False`` only inside
    ``data_parallel(..., per_example=False)``)."""
    return _DATA.value.per_example


def example_indices(batch_size: int, *, axis_name=None) -> jax.Array:
    """The global indices of a batch of ``batch_size`` examples (this shard's, per device).

    Args:
      batch_size: the leading size of the (local) batch.
      axis_name: the data axis; by default the one of :func:`data_parallel`
        (none outside it: the batch is the global batch, indices ``0 ... B-1``).

    Returns:
      ``int32[batch_size]``: ``axis_index(axis_name) * batch_size + arange(batch_size)``.

    Example:
      >>> example_indices(3).tolist()
      [0, 1, 2]
    """
    batch_size = check_int("batch_size", batch_size, lo=0)
    axis_name = data_axis() if axis_name is None else axis_name
    index = jnp.arange(batch_size, dtype=jnp.int32)
    if axis_name is None:
        return index
    return jax.lax.axis_index(axis_name) * batch_size + index


def example_keys(key: jax.Array, batch_size: int, *, axis_name=None) -> jax.Array:
    """The keys of a batch's examples: ``fold_in(key, global index)``, the one key rule.

    Args:
      key: the step key (raw ``uint32[2]`` or typed), the same on every device.
      batch_size: the number of examples of this (local) batch.
      axis_name: inside ``pmap`` / ``shard_map``, the data axis; by default the
        one declared by :func:`data_parallel`, or none (one device, or ``jit``
        over a global sharded batch).

    Returns:
      ``batch_size`` keys of ``key``'s kind stacked on a leading axis
      (``uint32[batch_size, 2]`` for a raw key).

    Example:
      >>> keys = example_keys(jax.random.PRNGKey(0), 4)
      >>> keys.shape
      (4, 2)
      >>> bool((keys[1] == jax.random.fold_in(jax.random.PRNGKey(0), 1)).all())
      True
    """
    index = example_indices(batch_size, axis_name=axis_name)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)


# Chris Wellons' 32-bit integer mixers ("Prospecting for Hash Functions",
# https://nullprogram.com/blog/2018/07/31/, public domain): each is a bijection of
# uint32 built from xorshifts and odd multiplies, found by hash-prospector to have
# near-ideal avalanche (lowbias32: bias 0.17; triple32: 0.021, within the spread
# of a random permutation's).
def _lowbias32(x: jax.Array) -> jax.Array:
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _triple32(x: jax.Array) -> jax.Array:
    x = x ^ (x >> 17)
    x = x * jnp.uint32(0xED5AD4BB)
    x = x ^ (x >> 11)
    x = x * jnp.uint32(0xAC4C1B51)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x31848BAB)
    return x ^ (x >> 14)


def example_bits(key: jax.Array, batch_size: int, num_words: int, *,
                 axis_name=None) -> jax.Array:
    """``uint32[batch_size, num_words]`` random words, row ``i`` a function of example ``i``'s key.

    Row ``i`` depends only on ``fold_in(key, global index of i)``
    (:func:`example_keys`): ``(a, b)`` its first two key words (the whole key
    of the default threefry implementation), then word ``j`` is ::

        triple32(lowbias32(a ^ triple32(j)) ^ b)

    with Wellons' 32-bit mixers lowbias32 and triple32 (bijections of
    ``uint32`` with near-ideal avalanche, https://nullprogram.com/blog/2018/07/31/).
    The per-word work is two mixes, elementwise in (example, position): it
    vectorises, is the same under any sharding, device count or ``vmap``, and
    costs a fraction of a threefry draw (20 rounds of threefry-2x32 per two
    words), which is what makes one key per sweep member cheap. Statistics:
    within a row the words are distinct (each step is a bijection of
    ``triple32(j)``, itself distinct for every ``j``); the example's 64 key bits
    are keyed in before and after the first mix, so rows and keys get unrelated
    streams. It is a statistical generator (tested in ``tests/test_nn_dropout.py``
    for the mean at several rates, the correlation of neighbouring examples,
    positions, 2x2 blocks and keys), not a cryptographic one, which dropout
    does not need.

    Args:
      key: the step key (raw or typed), the same on every device.
      batch_size: the number of examples of this (local) batch.
      num_words: random words per example.
      axis_name: as for :func:`example_keys`.

    Returns:
      ``uint32[batch_size, num_words]``.

    Example:
      >>> words = example_bits(jax.random.key(0), 4, 3)
      >>> words.shape, words.dtype
      ((4, 3), dtype('uint32'))
      >>> bool((example_bits(jax.random.key(0), 2, 3) == words[:2]).all())  # row i: example i
      True
    """
    num_words = check_int("num_words", num_words, lo=0)
    keys = example_keys(key, batch_size, axis_name=axis_name)
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.key_data(keys)
    a, b = keys[:, :1], keys[:, 1:2]
    column = _triple32(jnp.arange(num_words, dtype=jnp.uint32))[None, :]
    return _triple32(_lowbias32(a ^ column) ^ b)
