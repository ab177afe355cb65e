"""Data parallelism with ``pmap``: one replica of the state per local device.

The ``pmap`` layout stacks a leading device axis on every array: the state is
replicated (:func:`replicate`), the batch is split into equal shards
(:func:`split_batch`), and :func:`pmap_step` runs ``train_step`` on each shard
with ``axis_name``, which averages gradients, loss and metrics with
``lax.pmean``. Under JAX >= 0.8 ``pmap`` is built on ``jit`` + ``shard_map``;
:mod:`jtricks.parallel._sharded` offers that form directly.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jtricks.train._state import raw_keys, typed_like

from ._step import batch_size, check_divisible, check_step_args, device_count, local_step


def _device_count(num_devices) -> int:
    return device_count(num_devices, jax.local_device_count(), "local devices")


def replicate(tree: Any, num_devices: int | None = None) -> Any:
    """Stacks ``num_devices`` copies of every leaf along a new leading axis.

    Args:
      tree: a pytree (e.g. a ``TrainState``).
      num_devices: the number of local devices to replicate over (all of
        them by default).

    Returns:
      The tree with leaves of shape ``(num_devices, *leaf.shape)``, as
      read-only NumPy views of one host copy (no device memory is used until
      :func:`pmap_step` places them on the devices); typed PRNG keys stay
      typed keys.

    Raises:
      ValueError: if ``num_devices`` is not positive or exceeds the local
        device count.

    Example:
      >>> tree = {"w": jnp.ones(3), "key": jax.random.key(0)}
      >>> replicated = replicate(tree, 2)
      >>> replicated["w"].shape, replicated["key"].shape
      ((2, 3), (2,))
    """
    n = _device_count(num_devices)
    raw = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))),
                       raw_keys(tree))
    return typed_like(raw, tree)


def unreplicate(tree: Any) -> Any:
    """The first replica of a replicated tree (the inverse of :func:`replicate`)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if np.ndim(leaf) == 0:
            raise ValueError(f"tree{jax.tree_util.keystr(path)} has shape (): not a replicated "
                             "tree (every leaf needs a leading device axis, see replicate)")
    return jax.tree.map(lambda x: x[0], tree)


def split_batch(batch: Any, num_devices: int | None = None) -> Any:
    """Reshapes every leaf from ``(B, ...)`` to ``(num_devices, B // num_devices, ...)``.

    Device ``d`` receives the examples ``d * B // n ... (d + 1) * B // n - 1``,
    in order, which is the layout that the example-key rule assumes
    (:func:`~jtricks.nn.example_keys`).

    Args:
      batch: a pytree of arrays with a common leading batch axis.
      num_devices: the number of devices (all local devices by default).

    Returns:
      The batch with a leading device axis.

    Raises:
      ValueError: if the batch size does not divide by ``num_devices``:
        jtricks does not pad a batch (padding would change batch statistics
        and the mean loss); choose a batch size that is a multiple.

    Example:
      >>> x, y = split_batch((jnp.zeros((64, 8, 8, 1)), jnp.zeros(64)), 8)
      >>> x.shape, y.shape
      ((8, 8, 8, 8, 1), (8, 8))
    """
    n = _device_count(num_devices)
    size = batch_size(batch)
    check_divisible(size, n, "" if num_devices is None else f"num_devices={num_devices!r}")
    return jax.tree.map(lambda x: x.reshape(n, size // n, *x.shape[1:]), batch)


def pmap_step(
    loss_fn,
    tx,
    *,
    axis_name: str = "data",
    num_devices: int | None = None,
    donate: bool = False,
    micro_batches: int = 1,
):
    """A data-parallel ``train_step`` over the local devices, with ``pmap``.

    Args:
      loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss,
        (new_model_state, metrics))``, run on each device's shard and written
        as on one device (e.g. :func:`jtricks.train.classifier_loss`): it is
        traced inside :func:`jtricks.nn.data_parallel` over ``axis_name``, so
        batch norm shares its statistics over the devices and dropout masks
        follow the example-key rule without the loss passing ``axis_name``:
        example ``i`` of the global batch draws its masks from
        ``fold_in(step_key, i)`` (:func:`~jtricks.nn.example_keys`), so masks
        differ across devices and the step equals the single-device step on
        the whole batch, whatever the device count.
      tx: the gradient transformation.
      axis_name: the name of the device axis.
      num_devices: how many local devices to use (all by default).
      donate: donate the input state's buffers to the output.
      micro_batches: gradient accumulation inside the step (see
        :func:`jtricks.train.train_step`): each device sums the gradients of
        its micro-batches locally and the devices average them once per step.

    Returns:
      ``step(state, batch) -> (state, metrics)`` taking a :func:`replicate`-d
      state and a :func:`split_batch`-ed batch; metrics are replicated.

    Across processes (:func:`~jtricks.parallel.initialize`) every process
    runs the step on all of its local devices, with its part of the global
    batch (:func:`~jtricks.parallel.process_slice`, then :func:`split_batch`):
    the averages span every device of every process, and the result is the
    one-process run on the same global devices.

    Raises:
      ValueError: for a bad ``num_devices``, or one that leaves out local
        devices in a multi-process run.

    References:
      P. Goyal, P. Dollár, R. Girshick et al., "Accurate, Large Minibatch SGD:
      Training ImageNet in 1 Hour", https://arxiv.org/abs/1706.02677, 2017.

    Example:
      >>> from jtricks.train import TrainState, classifier_loss
      >>> model = jtricks.nn.mlp([16, 3], batch_norm=True, dropout=0.5)
      >>> params, model_state = model.init(jax.random.key(0), (4,))
      >>> tx = jtricks.optim.sgd(0.1)
      >>> state = TrainState.create(params=params, tx=tx, key=jax.random.key(1),
      ...                           model_state=model_state)
      >>> batch = (jnp.ones((8, 4)), jnp.zeros(8, jnp.int32))
      >>> step = pmap_step(classifier_loss(model), tx, num_devices=2)
      >>> state, metrics = step(replicate(state, 2), split_batch(batch, 2))
      >>> state.step.tolist(), metrics["loss"].shape     # one replica per device
      ([1, 1], (2,))
    """
    check_step_args(loss_fn, tx, axis_name, donate)
    devices = jax.local_devices()[: _device_count(num_devices)]
    if jax.process_count() > 1 and len(devices) != jax.local_device_count():
        raise ValueError(
            f"num_devices={num_devices}: across {jax.process_count()} processes pmap_step "
            f"runs on every device of every process; leave num_devices=None (each process "
            f"feeds its {jax.local_device_count()} local devices)")
    pmapped = jax.pmap(
        local_step(loss_fn, tx, axis_name, micro_batches),
        axis_name=axis_name,
        # Across processes pmap must span the devices of all of them (devices=None):
        # a list of this process's devices would average the gradients over its
        # own devices only, and every process would train its own model.
        devices=devices if jax.process_count() == 1 else None,
        donate_argnums=(0,) if donate else (),
    )
    # The layout pmap gives its outputs: placing the inputs the same way up
    # front makes the first and every later call hit one compiled program.
    layout = NamedSharding(Mesh(np.array(devices), (axis_name,)), P(axis_name))

    def step(state, batch):
        return pmapped(*jax.device_put((state, batch), layout))

    return step
