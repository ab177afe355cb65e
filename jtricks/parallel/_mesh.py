"""The axes of a device mesh by role, and running one-device code on Auto or Explicit meshes.

A jtricks mesh names its axes by what they split:

* ``data``: the batch; gradients and batch statistics are averaged over it;
* ``model``: the parameters and the optimizer state (FSDP-style: each device
  holds a slice of every large leaf, see :func:`~jtricks.parallel.shard_params`);
* ``member``: the ``K`` configurations of a sweep (:func:`jtricks.sweep.train`).

A one-axis mesh whose axis has another name (``data_mesh(axis_name="batch")``)
is a data mesh. Axes may be ``Auto`` or ``Explicit`` (``jax.make_mesh``'s
default): a loss written as on one device runs with the mesh's axes as
``Auto`` (:func:`run_auto`), so XLA's partitioner, not the sharding-in-types
rules, decides how a model's slices and reductions are split.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA, MODEL, MEMBER = "data", "model", "member"
ROLES = (DATA, MODEL, MEMBER)


def role_axes(mesh: Mesh) -> dict[str, str | None]:
    """``{role: axis name or None}`` for the roles ``data``, ``model`` and ``member``.

    Raises:
      ValueError: if an axis of a mesh with several axes names no role.

    Example:
      >>> role_axes(jax.make_mesh((2, 4), ("data", "model")))
      {'data': 'data', 'model': 'model', 'member': None}
      >>> role_axes(jax.make_mesh((8,), ("batch",)))["data"]
      'batch'
    """
    names = tuple(mesh.axis_names)
    if len(names) == 1 and names[0] not in ROLES:
        return {DATA: names[0], MODEL: None, MEMBER: None}
    unknown = [name for name in names if name not in ROLES]
    if unknown:
        raise ValueError(
            f"mesh axes {names} must be named by role, {', '.join(map(repr, ROLES))}; "
            f"got {', '.join(map(repr, unknown))} (e.g. jax.make_mesh((2, 4), ('data', 'model')))"
        )
    return {role: role if role in names else None for role in ROLES}


def axis_size(mesh: Mesh, axis: str | None) -> int:
    """The number of devices along ``axis`` (1 for ``None``)."""
    return 1 if axis is None else mesh.shape[axis]


def run_auto(fn: Callable, mesh: Mesh) -> Callable:
    """``fn`` traced with the mesh's axes as ``Auto``, its outputs replicated.

    On a mesh with ``Explicit`` axes every array's layout is part of its type,
    and code written for one device (a batch norm taking ``x[:1]`` of a split
    batch, a gather by example index) is refused by the sharding rules. Inside
    ``run_auto`` the axes are ``Auto`` again: XLA partitions ``fn`` and inserts
    the collectives, as on an ``Auto`` mesh; the outputs come back replicated
    (``P()``), the gradients of the inputs with the inputs' layouts. On an
    ``Auto`` mesh it returns ``fn`` itself. Inside ``fn`` name layouts with
    :func:`auto_sharding`.
    """
    explicit = mesh.explicit_axes
    if not explicit:
        return fn

    def auto(*args):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return jax.sharding.auto_axes(fn, axes=explicit, out_sharding=P())(*args)

    return auto


def auto_sharding(mesh: Mesh, spec: P) -> NamedSharding:
    """The sharding ``spec`` on ``mesh`` with every axis ``Auto`` (for code under :func:`run_auto`)."""
    if mesh.explicit_axes:
        mesh = mesh.update(axis_types=(jax.sharding.AxisType.Auto,) * len(mesh.axis_names))
    return NamedSharding(mesh, spec)


def place(tree: Any, sharding: NamedSharding) -> Any:
    """``tree`` laid out as ``sharding`` inside a traced function, on any mesh.

    On ``Auto`` axes this is a hint to the partitioner
    (``with_sharding_constraint``); on ``Explicit`` axes the layout is part of
    the type and changes with ``jax.sharding.reshard``.
    """
    if sharding.mesh.explicit_axes:
        return jax.sharding.reshard(tree, sharding)
    return jax.lax.with_sharding_constraint(tree, sharding)


def data_spec(mesh: Mesh) -> P:
    """The layout of a batch: split along the ``data`` axis (whole without one)."""
    axis = role_axes(mesh)[DATA]
    return P() if axis is None else P(axis)


def param_shardings(tree: Any, mesh: Mesh) -> Any:
    """Where every leaf of a parameter tree lives on ``mesh`` (FSDP-style).

    A leaf is split over the mesh's ``model`` axis along its largest
    dimension that the axis size divides (the first such, on ties); a leaf
    with no such dimension, and every leaf of a mesh without a ``model`` axis,
    is whole on every device. The rule depends only on the shapes, so it also
    places abstract trees (``jax.eval_shape``): initialise a model too large
    for one device already split, with
    ``jax.jit(init, out_shardings=param_shardings(jax.eval_shape(init, ...), mesh))``.

    Args:
      tree: a pytree of arrays or ``jax.ShapeDtypeStruct``.
      mesh: the mesh, its axes named by role.

    Returns:
      A tree of ``NamedSharding`` of the same structure.

    Example:
      >>> mesh = jax.make_mesh((2, 4), ("data", "model"))
      >>> specs = param_shardings({"w": jnp.zeros((3, 8)), "b": jnp.zeros(3)}, mesh)
      >>> specs["w"].spec, specs["b"].spec
      (P(None, 'model'), P())
    """
    axis = role_axes(mesh)[MODEL]
    n = axis_size(mesh, axis)

    def sharding(leaf):
        shape = tuple(getattr(leaf, "shape", ()))
        dims = [d for d, size in enumerate(shape) if axis is not None and size % n == 0]
        if not dims:
            return NamedSharding(mesh, P())
        d = max(dims, key=lambda d: (shape[d], -d))
        return NamedSharding(mesh, P(*(None,) * d, axis))

    return jax.tree.map(sharding, tree)


def shard_params(tree: Any, mesh: Mesh) -> Any:
    """Places a parameter tree on ``mesh`` as :func:`param_shardings` says.

    Every process passes the same values (on several hosts each one keeps only
    the slices of its own devices). Build the training state from the result:
    ``TrainState.create`` and every jtricks ``init`` give the optimizer state
    the parameters' shardings, so a ``model``-sharded run holds ``1/N`` of the
    state per device from the start.

    Example:
      >>> mesh = jax.make_mesh((8,), ("model",))
      >>> w = shard_params({"w": jnp.ones((16, 4))}, mesh)["w"]
      >>> w.shape, w.addressable_shards[0].data.shape
      ((16, 4), (2, 4))
    """
    def put(leaf, sharding):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree, param_shardings(tree, mesh))


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """The layout a step keeps ``state`` in: each leaf's own sharding on ``mesh``;
    leaves placed elsewhere (a fresh step counter or key, host arrays) whole on
    every device."""
    def sharding(leaf):
        own = getattr(leaf, "sharding", None)
        if isinstance(own, NamedSharding) and own.mesh == mesh:
            return own
        return NamedSharding(mesh, P())

    return jax.tree.map(sharding, state)
