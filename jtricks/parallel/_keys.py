"""Per-example randomness: dropout masks that do not depend on the device count.

A data-parallel step cuts the global batch into one shard per device. If each
device drew its dropout masks from one key for its whole shard, example ``i``
would get a different mask on 1, 2 or 8 devices, and the data-parallel step
could not equal the single-device step. jtricks fixes the rule instead:

    key of example i = fold_in(step_key, i)      (i = index in the global batch)

so the mask of an example depends only on the step key and on its place in
the global batch. :func:`apply_per_example` runs a batch model under this rule:
every example is a batch of one inside ``vmap``, drawing from its own key, and
batch statistics (batch norm) are averaged over the examples of the device and
over the devices, which gives exactly the statistics of the global batch.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

EXAMPLE_AXIS = "jtricks_example"
"""The ``vmap`` axis name :func:`apply_per_example` maps the examples over."""


def _global_offset(batch_size: int, axis_name) -> jax.Array:
    """Index in the global batch of this device's first example."""
    if axis_name is None:
        return jnp.zeros((), jnp.int32)
    return jax.lax.axis_index(axis_name) * batch_size


def example_keys(key: jax.Array, batch_size: int, *, axis_name=None) -> jax.Array:
    """The keys of this device's examples, ``fold_in(key, global index)``.

    Args:
      key: the step key, the same on every device.
      batch_size: the number of examples on this device (the shard size).
      axis_name: inside ``pmap`` / ``shard_map``, the data axis: device ``d``
        holds the examples ``d * batch_size ... (d + 1) * batch_size - 1`` of
        the global batch. ``None`` on one device (or under ``jit`` over a
        global, sharded batch).

    Returns:
      ``uint32[batch_size, 2]`` raw keys, one per example.

    Example:
      >>> keys = example_keys(jax.random.PRNGKey(0), 4)
      >>> keys.shape
      (4, 2)
    """
    index = _global_offset(batch_size, axis_name) + jnp.arange(batch_size)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)


def apply_per_example(
    apply: Callable[..., tuple[jax.Array, Any]],
    params: Any,
    model_state: Any,
    x: jax.Array,
    key: jax.Array,
    *,
    axis_name=None,
    **kwargs,
) -> tuple[jax.Array, Any]:
    """Runs ``apply`` so that example ``i`` draws its randomness from its own key.

    ``apply(params, model_state, x, *, key, axis_name, **kwargs) -> (y,
    new_state)`` is a batch model (a ``jtricks.nn`` model's ``apply``). Each
    example runs as a batch of one under ``vmap`` with the key
    ``fold_in(key, global index)`` (see :func:`example_keys`); the model gets
    ``axis_name=(EXAMPLE_AXIS, axis_name)``, so batch norm averages its
    statistics over the examples and the devices, i.e. over the global batch.
    The outputs therefore equal, to float rounding, those of the same model on
    the whole global batch on one device, and dropout masks are the same
    whatever the number of devices.

    Args:
      apply: the model's apply function.
      params: the model parameters.
      model_state: the model state (batch-norm running statistics).
      x: this device's inputs, batch axis first.
      key: the step key, the same on every device.
      axis_name: the data axis inside ``pmap`` / ``shard_map``, or ``None``.
      **kwargs: passed to ``apply`` (e.g. ``training=True``).

    Returns:
      ``(y, new_state)``: outputs with the batch axis first, and the model state
      (the same for every example, since its statistics are synchronised).

    References:
      C. Peng, T. Xiao, Z. Li et al., "MegDet: A Large Mini-Batch Object
      Detector" (cross-device batch norm), https://arxiv.org/abs/1711.07240, 2018.

    Example:
      >>> logits, state = apply_per_example(model.apply, params, state, x, key,
      ...                                   training=True, axis_name="data")
    """
    axes = EXAMPLE_AXIS if axis_name is None else (EXAMPLE_AXIS, axis_name)
    keys = example_keys(key, x.shape[0], axis_name=axis_name)

    def one(xi, ki):
        y, new_state = apply(params, model_state, xi[None], key=ki, axis_name=axes, **kwargs)
        return y[0], new_state

    y, new_state = jax.vmap(one, axis_name=EXAMPLE_AXIS)(x, keys)
    # Synchronised statistics are equal across examples: keep the first copy.
    return y, jax.tree.map(lambda s: s[0], new_state)
