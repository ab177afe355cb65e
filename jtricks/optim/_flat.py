"""One flat buffer per dtype: fast optimizer steps on any parameter tree.

An optimizer step is bound by memory bandwidth: it reads the parameters, the
gradients and the state and writes them back. Run leaf by leaf, a tree of
thousands of small leaves costs thousands of small kernels per step and
thousands of fusions to compile. Two tools here remove the tree from the step:

* :func:`ravel` keeps the *parameters* flat: the model reads its tree of
  parameters from ``unravel(flat)``, whose backward pass is one
  ``concatenate`` per dtype (not one zero-padded scatter per leaf), so the
  gradient arrives flat and any transformation (jtricks or optax) runs on a
  few big buffers; the step's time and compile time no longer depend on the
  number of leaves. This is the fast path.
* :func:`flatten` wraps any gradient transformation so that its state lives in
  ONE flat buffer per dtype while parameters and updates stay trees. Each
  update concatenates the gradient leaves of a dtype, runs the inner
  transformation on that single big leaf, and splits the result back. It is
  still a ``GradientTransformation``, so it chains, and it gives the same
  numbers as the inner transformation run on the tree.

Leaves are grouped by dtype (``bfloat16`` leaves are never promoted), in the
order of the tree's leaves. A flat tree is a ``dict`` mapping the dtype name to
a 1-D array.

Parameters split over a mesh axis (``jtricks.parallel.shard_params``: FSDP)
keep a per-device layout under :func:`flatten`: the leaves split along one
dimension over one axis of ``N`` devices go into a ``(N, size / N)`` buffer per
dtype (named ``"<dtype>@<axis>"``) whose row ``d`` holds device ``d``'s slices,
split by rows over the same axis; the whole leaves stay in the 1-D buffers. An
update then only reshapes each device's own slices: no buffer is ever gathered.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from ._base import GradientTransformation, call_update
from ._checks import transformation

__all__ = ["FlatState", "flatten", "ravel"]

PyTree = Any


class _Layout(NamedTuple):
    """Where every leaf of a tree lives in the flat buffers (static, hashable)."""

    treedef: Any
    shapes: tuple  # per leaf
    dtypes: tuple  # per leaf: dtype name, which is also the name of its buffer
    offsets: tuple  # per leaf: where it starts in its buffer
    sizes: tuple  # per buffer, sorted by name: (name, total size)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Pieces:
    """Which leaves are split over a mesh axis, and along which dimension (static:
    part of the state's tree structure, so that a jitted update knows it)."""

    mesh: Any  # a jax.sharding.Mesh
    axis: str
    dims: tuple  # per leaf: the dimension split over ``axis``, or -1 (whole)

    @property
    def devices(self) -> int:
        return int(self.mesh.shape[self.axis])


def _pieces(tree: PyTree) -> _Pieces | None:
    """The leaves of ``tree`` split along one dimension over one mesh axis (the
    first such axis found), from their shardings; ``None`` when there are none
    (or the leaves are traced: their layout is unknown)."""
    found, dims = None, []
    for leaf in jax.tree.leaves(tree):
        dim, sharding = -1, getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding) and not isinstance(leaf, jax.core.Tracer):
            named = [(d, e) for d, e in enumerate(sharding.spec) if e is not None]
            if len(named) == 1:
                d, entry = named[0]
                axes = (entry,) if isinstance(entry, str) else tuple(entry)
                if len(axes) == 1 and sharding.mesh.shape[axes[0]] > 1:
                    found = found or (sharding.mesh, axes[0])
                    dim = d if found == (sharding.mesh, axes[0]) else -1
        dims.append(dim)
    return None if found is None else _Pieces(found[0], found[1], tuple(dims))


def _layout(tree: PyTree, pieces: _Pieces | None = None) -> _Layout:
    leaves, treedef = jax.tree.flatten(tree)
    shapes, dtypes, offsets = [], [], []
    totals: dict[str, int] = {}
    for i, leaf in enumerate(leaves):
        shape = tuple(np.shape(leaf))
        dtype = jnp.result_type(leaf).name
        size = int(np.prod(shape, dtype=np.int64))
        if pieces is not None and pieces.dims[i] >= 0:  # a row of (N, size / N) per device
            dtype, size = f"{dtype}@{pieces.axis}", size // pieces.devices
        shapes.append(shape)
        dtypes.append(dtype)
        offsets.append(totals.get(dtype, 0))
        totals[dtype] = totals.get(dtype, 0) + size
    return _Layout(
        treedef, tuple(shapes), tuple(dtypes), tuple(offsets), tuple(sorted(totals.items()))
    )


def _place(x, shape, spec, pieces: _Pieces):
    """``x`` reshaped to ``shape``, laid out as ``spec`` on the pieces' mesh."""
    sharding = NamedSharding(pieces.mesh, spec)
    if pieces.mesh.axis_types[pieces.mesh.axis_names.index(pieces.axis)] == AxisType.Explicit:
        return jax.lax.reshape(x, shape, out_sharding=sharding)
    return jax.lax.with_sharding_constraint(x.reshape(shape), sharding)


def _to_rows(x, dim: int, pieces: _Pieces):
    """A leaf split along ``dim`` as ``(N, size / N)``: row ``d`` is device ``d``'s slice."""
    n, shape = pieces.devices, x.shape
    split = shape[:dim] + (n, shape[dim] // n) + shape[dim + 1:]
    x = _place(x, split, P(*([None] * dim), pieces.axis), pieces)
    x = jnp.moveaxis(x, dim, 0)
    return _place(x, (n, x.size // n), P(pieces.axis), pieces)


def _from_rows(rows, shape, dim: int, pieces: _Pieces):
    """The inverse of :func:`_to_rows`."""
    n = pieces.devices
    local = (n,) + shape[:dim] + (shape[dim] // n,) + shape[dim + 1:]
    x = jnp.moveaxis(_place(rows, local, P(pieces.axis), pieces), 0, dim)
    return _place(x, shape, P(*([None] * dim), pieces.axis), pieces)


def _concat(layout: _Layout, leaves, pieces: _Pieces | None = None) -> dict:
    """The flat buffers of ``leaves`` (one concatenate per buffer)."""
    parts: dict[str, list] = {name: [] for name, _ in layout.sizes}
    for i, (leaf, name) in enumerate(zip(leaves, layout.dtypes)):
        if pieces is not None and pieces.dims[i] >= 0:
            parts[name].append(_to_rows(jnp.asarray(leaf), pieces.dims[i], pieces))
        else:
            parts[name].append(jnp.ravel(leaf))
    return {
        name: parts[name][0] if len(parts[name]) == 1 else jnp.concatenate(parts[name], -1)
        for name, _ in layout.sizes
    }


def _split(layout: _Layout, flat: dict, pieces: _Pieces | None = None) -> list:
    """The leaves stored in ``flat`` (static slices, reshaped)."""
    leaves = []
    for i, (shape, name, offset) in enumerate(zip(layout.shapes, layout.dtypes,
                                                  layout.offsets)):
        buf = flat[name]
        size = int(np.prod(shape, dtype=np.int64)) // (1 if buf.ndim == 1 else buf.shape[0])
        part = buf if size == buf.shape[-1] else jax.lax.slice_in_dim(
            buf, offset, offset + size, axis=buf.ndim - 1)
        if pieces is not None and pieces.dims[i] >= 0:
            leaves.append(_from_rows(part, shape, pieces.dims[i], pieces))
        else:
            leaves.append(part.reshape(shape))
    return leaves


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _unravel(layout: _Layout, flat: dict) -> list:
    return _split(layout, flat)


def _unravel_fwd(layout, flat):
    return _split(layout, flat), None


def _unravel_bwd(layout, _, cotangents):
    cts = [
        jnp.zeros(shape, dtype) if ct is None else ct
        for ct, shape, dtype in zip(cotangents, layout.shapes, layout.dtypes)
    ]
    return (_concat(layout, cts),)


_unravel.defvjp(_unravel_fwd, _unravel_bwd)


def ravel(tree: PyTree) -> tuple[dict, Callable[[dict], PyTree]]:
    """Ravels ``tree`` into one flat buffer per dtype, once.

    Keep the parameters flat for the whole training run: the model calls
    ``unravel(flat)`` to read its tree of parameters, the gradient with respect
    to ``flat`` is itself flat (the backward pass of ``unravel`` is a single
    ``concatenate`` per dtype, not one zero-padded scatter per leaf), and the
    optimizer runs on a handful of big buffers whatever the tree looks like.

    Args:
      tree: a pytree of arrays (any dtypes and shapes, scalars included).

    Returns:
      ``(flat, unravel)``: ``flat`` is a dict mapping each dtype name
      (``"float32"``, ``"bfloat16"``, ...) to a 1-D array holding the leaves of
      that dtype in tree order; ``unravel(flat)`` rebuilds the tree (same
      structure, shapes and dtypes) and is differentiable, jit- and
      vmap-compatible.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jtricks.optim as jo
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> flat, unravel = jo.ravel(params)
      >>> flat["float32"].shape
      (8,)
      >>> grads = jax.grad(lambda f: jnp.sum(unravel(f)["w"]))(flat)
    """
    layout = _layout(tree)
    flat = _concat(layout, jax.tree.leaves(tree))

    def unravel(flat: dict) -> PyTree:
        return jax.tree.unflatten(layout.treedef, _unravel(layout, flat))

    return flat, unravel


class FlatState(NamedTuple):
    """State of :func:`flatten`: the inner state over the flat buffers.

    Attributes:
      inner: the inner transformation's state, initialised on the dict of flat
        buffers (one 1-D array per dtype; one ``(N, size / N)`` array per dtype
        for the leaves split over a mesh axis of ``N`` devices).
      pieces: ``None``, or (static, no arrays) which parameters were split over
        which mesh axis at ``init``: the update keeps that per-device layout.
    """

    inner: Any
    pieces: Any = None


def flatten(tx) -> GradientTransformation:
    """Runs ``tx`` on one flat buffer per dtype instead of leaf by leaf.

    The wrapper concatenates the update leaves of each dtype into one 1-D
    buffer, runs ``tx`` on the dict of buffers (with the parameters raveled the
    same way when given), and splits the result back into the tree. The numbers
    are those of ``tx`` on the tree for every transformation that treats
    elements independently or through global reductions (Adam, RMSProp, SGD,
    momentum, ``clip``, ``clip_by_global_norm``, weight decay, schedules ...).
    Per-leaf transformations (``clip_by_norm``, per-leaf masks) see one big
    leaf per dtype instead, which changes their meaning: apply them outside,
    e.g. ``masked(flatten(tx), mask)`` or ``chain(flatten(adam), clip_by_norm)``.

    The optimizer's own work then runs as a few big kernels whatever the tree,
    but the updates still leave as a tree, one slice per leaf, so the step and
    its compile time keep a per-leaf part. For the fastest step keep the
    parameters flat with :func:`ravel`: then there is nothing to concatenate or
    split, and any transformation runs directly on the flat buffers.

    Args:
      tx: any gradient transformation (jtricks or optax).

    Returns:
      A ``GradientTransformation`` whose state is a :class:`FlatState`.

    Raises:
      TypeError: if ``tx`` has no ``init`` / ``update``.

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import jtricks.optim as jo
      >>> params = [jnp.ones(3), jnp.ones((2, 2))]
      >>> tx = jo.flatten(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)))
      >>> state = tx.init(params)
      >>> updates, state = tx.update(params, state, params)
      >>> updates[0], updates[1]              # the same numbers as on the tree
      (Array([-0.00099999, -0.00099999, -0.00099999], dtype=float32), Array([[-0.00099999, -0.00099999],
             [-0.00099999, -0.00099999]], dtype=float32))
    """
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            "flatten expects a gradient transformation with init and update (e.g. "
            f"adam(1e-3), not adam), got tx={tx!r}")

    def init_fn(params):
        pieces = _pieces(params)
        layout = _layout(params, pieces)
        return FlatState(tx.init(_concat(layout, jax.tree.leaves(params), pieces)), pieces)

    def update_fn(updates, state, params=None, **extra_args):
        pieces = state.pieces
        layout = _layout(updates, pieces)
        flat_updates = _concat(layout, jax.tree.leaves(updates), pieces)
        flat_params = None
        if params is not None:
            flat_params = _concat(layout, jax.tree.leaves(params), pieces)
        flat_updates, inner = call_update(tx, flat_updates, state.inner, flat_params, extra_args)
        # Materialise the flat updates once: otherwise XLA fuses the whole inner
        # computation into every leaf's slice, and a step over thousands of
        # leaves recomputes it (and re-gathers the concatenation) leaf by leaf.
        leaves = _split(layout, jax.lax.optimization_barrier(flat_updates), pieces)
        return jax.tree.unflatten(layout.treedef, leaves), FlatState(inner, pieces)

    return transformation("flatten", init_fn, update_fn, (FlatState,))
