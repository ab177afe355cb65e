"""Data (and parameter) parallelism with ``jit`` over a device mesh (``NamedSharding``, ``shard_map``).

The mesh's axes are named by role (:mod:`jtricks.parallel._mesh`): the global
batch is split along the ``data`` axis (:func:`shard_batch`); the state lives
whole on every device (:func:`replicate_on_mesh`) or, on a mesh with a
``model`` axis, with every large parameter and its optimizer state split over
that axis (:func:`~jtricks.parallel.shard_params`, then
``TrainState.create``). :func:`sharded_step` compiles one step for the whole
mesh, in one of two forms:

* ``per_device=False`` (default): ``jit`` over the *global* batch
  (:func:`shard_loss`). The loss is written as on one device (no
  ``axis_name``); XLA partitions it and inserts the all-reduces, so batch-norm
  statistics are those of the global batch, and the per-example keys
  ``fold_in(step_key, i)`` of the global indices ``i`` and their masks are
  partitioned along the batch axis: each device computes the masks of its own
  examples, the very masks one device would draw, with no all-gather. The
  parameters split over ``model`` are gathered where a layer needs them and
  their gradients reduce-scattered; the optimizer update runs on each
  device's slice (FSDP).
* ``per_device=True`` (a data-only mesh): ``shard_map`` runs ``train_step`` on each device's
  shard with manual collectives over ``axis_name``, exactly like
  :func:`~jtricks.parallel.pmap_step` (the same loss, traced inside
  :func:`jtricks.nn.data_parallel`).

Both work unchanged on a multi-host mesh (:func:`~jtricks.parallel.initialize`).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jtricks._validate import check_bool, check_callable
from jtricks.train import train_step
from jtricks.train._state import raw_keys, typed_like

from ._mesh import (DATA, MEMBER, MODEL, auto_sharding, axis_size, data_spec, role_axes,
                    run_auto, state_shardings)
from ._step import batch_size, check_divisible, device_count, local_step
from ._step import check_axis_name, check_step_args


def data_mesh(num_devices: int | None = None, *, axis_name: str = "data") -> Mesh:
    """A one-axis mesh over the first ``num_devices`` devices of all processes.

    Args:
      num_devices: how many devices (all of ``jax.devices()`` by default, i.e.
        every device of every process).
      axis_name: the name of the data axis.

    Returns:
      A ``jax.sharding.Mesh`` with one ``Auto`` axis ``axis_name``.

    Raises:
      ValueError: if ``num_devices`` is not positive or exceeds the device count.

    Example:
      >>> mesh = data_mesh(8)
      >>> mesh.axis_names, mesh.size
      (('data',), 8)
    """
    check_axis_name(axis_name)
    devices = jax.devices()
    n = device_count(num_devices, len(devices), "devices")
    return jax.make_mesh((n,), (axis_name,), (AxisType.Auto,), devices=devices[:n])


def _check_mesh(mesh: Mesh) -> None:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh={mesh!r} must be a jax.sharding.Mesh (e.g. data_mesh()), "
                        f"got {type(mesh).__name__}")


def _data_size(mesh: Mesh) -> int:
    _check_mesh(mesh)
    return axis_size(mesh, role_axes(mesh)[DATA])


def replicate_on_mesh(tree: Any, mesh: Mesh) -> Any:
    """Places a full copy of every leaf on every device of ``mesh``.

    On several hosts every process passes the same values.

    Args:
      tree: a pytree of arrays (e.g. a ``TrainState``).
      mesh: the mesh (see :func:`data_mesh`).

    Returns:
      The tree as global arrays with the replicated sharding ``P()`` (typed
      PRNG keys stay typed keys).

    Example:
      >>> tree = replicate_on_mesh({"w": jnp.ones(3), "key": jax.random.key(0)}, data_mesh(4))
      >>> tree["w"].sharding.is_fully_replicated, len(tree["key"].devices())
      (True, 4)
    """
    _check_mesh(mesh)
    sharding = NamedSharding(mesh, P())
    raw = jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
        raw_keys(tree))
    return typed_like(raw, tree)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Splits a batch along the mesh's data axis.

    On one host ``batch`` is the global batch; on several hosts it is this
    process's part (process ``p`` of ``P`` passing examples ``p * B/P ... (p +
    1) * B/P - 1`` of the global batch, see
    :func:`~jtricks.parallel.process_slice`), and the result is the global
    batch of ``P`` times its size.

    Args:
      batch: a pytree of arrays with a common leading batch axis.
      mesh: the mesh (see :func:`data_mesh`).

    Returns:
      The global batch as arrays sharded with ``P(axis)``.

    Raises:
      ValueError: if the global batch size does not divide by the number of
        devices of the mesh (jtricks does not pad: padding would change batch
        statistics and the mean loss).

    Example:
      >>> x, y = shard_batch((jnp.zeros((16, 4)), jnp.zeros(16)), data_mesh(8))
      >>> x.shape, x.addressable_shards[0].data.shape
      ((16, 4), (2, 4))
    """
    check_divisible(batch_size(batch) * jax.process_count(), _data_size(mesh), "mesh")
    sharding = NamedSharding(mesh, data_spec(mesh))
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch
    )


def shard_loss(loss_fn, mesh: Mesh):
    """Makes any jitted loop over ``loss_fn`` data-parallel over ``mesh``.

    The wrapped loss constrains its batch to be split along the mesh's data
    axis (``with_sharding_constraint``); with the state replicated on the mesh
    (:func:`replicate_on_mesh`), XLA then partitions the forward and backward
    pass over the devices and averages the gradients itself. Nothing else
    changes: the loss is written as on one device, over the global batch, so
    an existing training loop (e.g. :func:`jtricks.train.fit`) becomes
    data-parallel without touching its step.

    Args:
      loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, aux)``.
      mesh: the mesh (:func:`data_mesh`, or any mesh whose axes are named by
        role: ``data``, ``model``); the batch size must divide by the size
        of its data axis. Auto and Explicit axes both work: the loss runs
        with the axes as Auto.

    Returns:
      The loss function with the same signature.

    Example:
      >>> from jtricks.train import TrainState, classifier_loss, fit
      >>> model = jtricks.nn.mlp([16, 2], dropout=0.2)
      >>> params, model_state = model.init(jax.random.key(0), (4,))
      >>> tx = jtricks.optim.adam(1e-2)
      >>> state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
      >>> x = jax.random.normal(jax.random.key(2), (64, 4))
      >>> y = (x[:, 0] > 0).astype(jnp.int32)
      >>> mesh = data_mesh(8)
      >>> result = fit(replicate_on_mesh(state, mesh), (x, y),
      ...              loss_fn=shard_loss(classifier_loss(model), mesh), tx=tx,
      ...              epochs=2, batch_size=16, progress=False)
      >>> int(result.state.step)
      8
    """
    check_callable("loss_fn", loss_fn)
    _check_mesh(mesh)
    split, size = auto_sharding(mesh, data_spec(mesh)), _data_size(mesh)

    def split_loss(params, model_state, batch, key):
        return loss_fn(params, model_state, jax.lax.with_sharding_constraint(batch, split), key)

    auto = run_auto(split_loss, mesh)

    def sharded(params, model_state, batch, key):
        check_divisible(batch_size(batch), size)
        return auto(params, model_state, batch, key)

    return sharded


def sharded_step(
    loss_fn,
    tx,
    mesh: Mesh,
    *,
    per_device: bool = False,
    donate: bool = False,
    micro_batches: int = 1,
):
    """A data-parallel ``train_step`` compiled once for the whole mesh.

    Args:
      loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss,
        (new_model_state, metrics))``, written as on one device. With
        ``per_device=False`` it sees the global batch; with
        ``per_device=True`` it sees one device's shard and is traced inside
        :func:`jtricks.nn.data_parallel` over the mesh's axis, as under
        :func:`~jtricks.parallel.pmap_step`.
      tx: the gradient transformation.
      mesh: a data mesh (:func:`data_mesh`), or a mesh whose axes are named
        by role, ``data`` and ``model`` (e.g. ``jax.make_mesh((2, 4),
        ("data", "model"))``), Auto or Explicit.
      per_device: run the step per device under ``shard_map`` (manual
        collectives) instead of over the global batch under ``jit``.
      donate: donate the input state's buffers to the output.
      micro_batches: gradient accumulation inside the step (see
        :func:`jtricks.train.train_step`). With ``per_device=True`` each
        device sums its micro-batches' gradients locally and the devices
        average them once per step; under ``jit`` XLA places the reductions.

    Returns:
      ``step(state, batch) -> (state, metrics)`` taking a state on the mesh
      (:func:`replicate_on_mesh`, or built from
      :func:`~jtricks.parallel.shard_params`-ed parameters) and a
      :func:`shard_batch`-ed batch; the new state keeps the state's layout
      (leaves not on the mesh, such as a fresh step counter, become
      replicated), the metrics are replicated. ``step.lower(state, batch)``
      lowers the compiled program.

    Raises:
      ValueError: for mesh axes not named by role, or ``per_device=True`` on
        a mesh with a ``model`` or ``member`` axis.

    References:
      P. Goyal, P. Dollár, R. Girshick et al., "Accurate, Large Minibatch SGD:
      Training ImageNet in 1 Hour", https://arxiv.org/abs/1706.02677, 2017.

    Example:
      >>> from jtricks.train import TrainState, classifier_loss
      >>> model = jtricks.nn.mlp([16, 3], batch_norm=True, dropout=0.5)
      >>> params, model_state = model.init(jax.random.key(0), (4,))
      >>> tx = jtricks.optim.adam(1e-3)
      >>> state = TrainState.create(params=params, tx=tx, key=jax.random.key(1),
      ...                           model_state=model_state)
      >>> mesh = data_mesh(8)
      >>> step = sharded_step(classifier_loss(model), tx, mesh)
      >>> batch = (jnp.ones((16, 4)), jnp.zeros(16, jnp.int32))
      >>> state, metrics = step(replicate_on_mesh(state, mesh), shard_batch(batch, mesh))
      >>> int(state.step), metrics["loss"].sharding.is_fully_replicated
      (1, True)
    """
    _check_mesh(mesh)
    roles = role_axes(mesh)
    check_step_args(loss_fn, tx, roles[DATA] or DATA, donate)
    check_bool("per_device", per_device)
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, data_spec(mesh))
    if per_device:
        if roles[MODEL] is not None or roles[MEMBER] is not None:
            raise ValueError(
                f"per_device=True runs the loss on each device's shard with whole parameters; "
                f"mesh axes {tuple(mesh.axis_names)} hold more than a data axis: use "
                "per_device=False")
        axis = roles[DATA]
        body = jax.shard_map(
            local_step(loss_fn, tx, axis, micro_batches),
            mesh=mesh,
            in_specs=(P(), P(axis)),
            out_specs=(P(), P()),
            # train_step averages the per-device gradients with lax.pmean, as
            # under pmap; with the varying-axes checker on, the gradient of the
            # replicated parameters would come back already summed over the
            # devices (the transpose of the implicit pvary), n times too large.
            check_vma=False,
        )
    else:

        def body(state, batch):
            return train_step(state, batch, loss_fn=shard_loss(loss_fn, mesh), tx=tx,
                              micro_batches=micro_batches)

    compiled = {}

    def placed(state):
        # The state keeps its own layout (state_shardings): whole on every
        # device, or split over the model axis as shard_params placed the
        # parameters and init the optimizer state. Placing the leaves that are
        # not on the mesh yet (a fresh step counter) up front gives the first
        # and every later call the same input types: one compilation.
        layout = state_shardings(state, mesh)
        cache_key = (jax.tree.structure(layout), tuple(jax.tree.leaves(layout)))
        if cache_key not in compiled:
            compiled[cache_key] = jax.jit(
                body,
                in_shardings=(layout, split),
                out_shardings=(layout, replicated),
                donate_argnums=(0,) if donate else (),
            )
        return compiled[cache_key], jax.device_put(state, layout)

    def step(state, batch):
        fn, state = placed(state)
        return fn(state, batch)

    def lower(state, batch):
        fn, state = placed(state)
        return fn.lower(state, batch)

    step.lower = lower  # type: ignore[attr-defined]
    return step
