"""Multi-host wiring: ``jax.distributed`` and each process's share of a batch.

The same script runs as ``N`` processes (one per host, or several on one
machine for testing). Each calls :func:`initialize` first, builds the same
mesh over *all* devices (:func:`~jtricks.parallel.data_mesh`), feeds its own
part of the global batch (:func:`process_slice`, then
:func:`~jtricks.parallel.shard_batch`), and runs the same
:func:`~jtricks.parallel.sharded_step`; the collectives cross the processes.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jtricks._validate import check_int

from ._step import batch_size


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_count: int | None = None,
    cpu_collectives: str | None = "gloo",
    timeout: int = 300,
) -> None:
    """Joins this process to a multi-process JAX run.

    Call it once, before any other JAX call. ``None`` arguments are taken from
    the environment: ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID`` (the last two read here: ``jax.distributed`` itself
    reads only the first), else from a cluster JAX detects (such as SLURM).
    ``JAX_NUM_CPU_DEVICES`` sets the simulated CPU devices of each process.

    Args:
      coordinator_address: ``"host:port"`` of process 0's coordinator.
      num_processes: the number of processes.
      process_id: this process's rank, ``0 <= process_id < num_processes``.
      local_device_count: on CPU, how many devices this process simulates
        (sets ``jax_num_cpu_devices``); ``None`` leaves it.
      cpu_collectives: the cross-process collectives used on CPU
        (``"gloo"`` or ``"mpi"``; ``None`` leaves JAX's setting).
      timeout: seconds to wait for all processes to join.

    Raises:
      ValueError: for a bad ``num_processes``, ``process_id`` or
        ``local_device_count``.

    Usage, in each of the processes (``tests/test_multihost.py`` runs two on
    127.0.0.1), before any other JAX call::

        jtricks.parallel.initialize("10.0.0.1:1234", num_processes=2, process_id=rank)
    """
    if coordinator_address is not None and not isinstance(coordinator_address, str):
        raise TypeError(f"coordinator_address={coordinator_address!r} must be 'host:port' "
                        f"or None, got {type(coordinator_address).__name__}")
    if cpu_collectives is not None and not isinstance(cpu_collectives, str):
        raise TypeError(f"cpu_collectives={cpu_collectives!r} must be a string such as "
                        "'gloo', or None")
    timeout = check_int("timeout", timeout, lo=1)
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = _env_int("JAX_NUM_PROCESSES")
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = _env_int("JAX_PROCESS_ID")
    num_processes = check_int("num_processes", num_processes, lo=1, allow_none=True)
    process_id = check_int("process_id", process_id, lo=0, allow_none=True)
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise ValueError(f"process_id={process_id} must be < num_processes={num_processes}")
    local_device_count = check_int(
        "local_device_count", local_device_count, lo=1, allow_none=True
    )
    if local_device_count is not None:
        jax.config.update("jax_num_cpu_devices", local_device_count)
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        initialization_timeout=timeout,
    )


def process_rows(global_batch_size: int) -> slice:
    """The rows of every global batch that this process feeds.

    Process ``p`` of ``P`` feeds the examples ``p * B/P ... (p + 1) * B/P - 1``
    of each global batch of ``B``; with a mesh over the devices in process
    order (:func:`~jtricks.parallel.data_mesh`, ``jax.make_mesh``) they land
    on its own devices. The one rule of :func:`process_slice` and
    :func:`process_batches`.

    Args:
      global_batch_size: ``B``, the examples of one global batch.

    Returns:
      ``slice(p * B/P, (p + 1) * B/P)``.

    Raises:
      ValueError: if ``B`` does not divide by the process count.

    Example:
      >>> process_rows(8)  # one process feeds the whole batch
      slice(0, 8, None)
    """
    size, count = check_int("global_batch_size", global_batch_size, lo=1), jax.process_count()
    if size % count:
        raise ValueError(f"batch size {size} does not divide by the {count} processes")
    part = size // count
    return slice(jax.process_index() * part, (jax.process_index() + 1) * part)


def process_slice(batch: Any) -> Any:
    """This process's equal, contiguous part of a global batch.

    For a batch every process holds whole (small data, or a test); a process
    that should read only its own examples computes the batch's indices and
    gathers ``indices[process_rows(B)]`` (as :func:`process_batches` does for
    a whole epoch). ``shard_batch(process_slice(batch), mesh)`` is the same
    global array on every number of processes.

    Args:
      batch: the global batch, a pytree with a common leading axis.

    Returns:
      The part of every leaf that this process feeds (:func:`process_rows`).

    Raises:
      ValueError: if the batch size does not divide by the process count.
    """
    rows = process_rows(batch_size(batch))
    return jax.tree.map(lambda x: x[rows], batch)


def process_batches(data: Any, order: Any, mesh: Any) -> Any:
    """An epoch's global batches, each process reading only its rows of them.

    Every process passes the same ``order`` (the example indices of each
    batch, e.g. :func:`jtricks.train.epoch_order` of the epoch's key) and its
    own view of ``data`` (host arrays, e.g. NumPy memory maps: only the rows
    this process feeds are read). Process ``p`` gathers
    ``order[:, process_rows(B)]`` and the global array is assembled with
    ``jax.make_array_from_process_local_data``, split along the mesh's data
    axis: the same arrays as gathering the whole batches on one host.

    Args:
      data: a pytree of host arrays with the examples on the leading axis.
      order: ``(steps, B)`` integer indices into ``data``, equal on every process.
      mesh: the mesh the batches are split over (its ``data`` axis).

    Returns:
      ``data``'s tree of global arrays ``(steps, B, ...)`` split over the
      ``data`` axis along dimension 1.

    Raises:
      ValueError: if ``B`` does not divide by the process count or the data axis.

    Example:
      >>> from jtricks.parallel import data_mesh
      >>> x = np.arange(20.0).reshape(10, 2)
      >>> order = np.array([[3, 1, 4, 0], [9, 2, 6, 5]])
      >>> batches = process_batches({"x": x}, order, data_mesh(4))
      >>> batches["x"].shape, batches["x"][1, :, 0].tolist()
      ((2, 4, 2), [18.0, 4.0, 12.0, 10.0])
    """
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from ._mesh import DATA, axis_size, data_spec, role_axes
    from ._step import check_divisible

    order = np.asarray(order)
    if order.ndim != 2:
        raise ValueError(f"order must be (steps, batch) indices, got shape {order.shape}")
    rows = order[:, process_rows(order.shape[1])]
    sharding = NamedSharding(mesh, P(None, *data_spec(mesh)))
    check_divisible(order.shape[1], axis_size(mesh, role_axes(mesh)[DATA]), "mesh")
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)[rows]), data)
