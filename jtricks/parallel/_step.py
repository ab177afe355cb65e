"""The step body shared by the ``pmap`` and ``shard_map`` forms, and batch checks."""

from __future__ import annotations

from typing import Any, cast

import jax

from jtricks._validate import check_bool, check_callable, check_int, show
from jtricks.train import train_step
from jtricks.train._steps import check_tx

def local_step(loss_fn, tx, axis_name, micro_batches=1):
    """``train_step`` on one device's shard, inside ``pmap`` / ``shard_map``.

    ``train_step(axis_name=...)`` traces the loss inside
    :func:`jtricks.nn.data_parallel` over ``axis_name``, so a loss written as
    on one device is right here too: batch norm (``axis_name=None``) averages
    its statistics over the devices, and the models draw example ``i``'s masks
    from ``fold_in(step_key, global index of i)`` with the step key that one
    device would use. (One key per device, ``fold_in(step_key, device
    index)``, made the masks depend on the device count and measured no
    faster: see ``scripts/bench_scale.py --part keys``.)
    """

    def step(state, batch):
        return train_step(state, batch, loss_fn=loss_fn, tx=tx, axis_name=axis_name,
                          micro_batches=micro_batches)

    return step


def check_step_args(loss_fn, tx, axis_name, donate) -> None:
    """The checks that ``pmap_step`` and ``sharded_step`` share."""
    check_callable("loss_fn", loss_fn)
    check_tx(tx)
    check_axis_name(axis_name)
    check_bool("donate", donate)


def check_axis_name(axis_name) -> None:
    """A mesh / pmap axis name: a non-empty string."""
    if not isinstance(axis_name, str) or not axis_name:
        raise TypeError(f"axis_name={show(axis_name)} must be a non-empty string")


def device_count(num_devices: int | None, available: int, what: str) -> int:
    """``num_devices`` checked against the ``available`` devices (all of them if ``None``)."""
    n = check_int("num_devices", num_devices, lo=1, allow_none=True)
    if n is None:
        return available
    if n > available:
        raise ValueError(f"num_devices={n} exceeds the {available} {what}")
    return n


def batch_size(batch: Any) -> int:
    """The common leading size of the batch's leaves (``ValueError`` if they differ)."""
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree.leaves(batch)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"batch leaves must share a leading batch axis, got leading sizes {sorted(map(str, sizes))}"
        )
    return cast(int, sizes.pop())


def check_divisible(size: int, num_devices: int, where: str = "") -> None:
    """Raises unless ``size`` examples split evenly over ``num_devices`` (of ``where``)."""
    if size % num_devices:
        raise ValueError(
            f"batch size {size} does not divide by the {num_devices} devices"
            f"{f' of {where}' if where else ''}; "
            f"use a batch size that is a multiple of {num_devices} (e.g. "
            f"{size - size % num_devices} or {size + num_devices - size % num_devices}): "
            "jtricks does not pad, since padded examples would change the batch "
            "statistics and the mean loss"
        )
