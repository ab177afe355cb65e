"""``jtricks.sweep.train``: K configurations as one ``vmap``-ed program, in rounds."""

from __future__ import annotations

from typing import Any, Mapping, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jtricks import _validate
from jtricks.parallel import _mesh
from jtricks.train._state import as_key

from . import _rounds
from ._member import Build, SweepResult, check_data


def _sweep_mesh(mesh, hparams, k):
    """The mesh (Auto axes) a sweep runs on, or ``None``: ``mesh``, else the one the
    hyperparameters are split on along a ``member`` axis."""
    if mesh is None:
        sharding = getattr(next(iter(hparams.values())), "sharding", None)
        if not isinstance(sharding, NamedSharding) or not sharding.spec or sharding.spec[0] is None:
            return None
        mesh = cast(jax.sharding.Mesh, sharding.mesh)  # role_axes takes a Mesh
        if _mesh.role_axes(mesh)["member"] != sharding.spec[0]:
            raise ValueError(
                f"hparams are split over the mesh axis {sharding.spec[0]!r}; a sweep splits "
                "its members over an axis named 'member' (pass mesh=, e.g. "
                "jax.make_mesh((8,), ('member',)))")
    axes = _mesh.role_axes(mesh)
    if axes["member"] is None or axes["model"] is not None:
        raise ValueError(
            f"a sweep runs on a mesh with a 'member' axis and optionally a 'data' axis, got "
            f"axes {tuple(mesh.axis_names)}")
    n = mesh.shape[axes["member"]]
    if k % n:
        raise ValueError(f"the {k} members do not divide over the {n} devices of the 'member' "
                         f"axis; sweep a multiple of {n} configurations")
    auto = (jax.sharding.AxisType.Auto,) * len(mesh.axis_names)
    return mesh.update(axis_types=auto) if mesh.explicit_axes else mesh


def train(
    build: Build,
    hparams: Mapping[str, Any],
    train_data: Any,
    val_data: Any,
    *,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    seeds: int | None = None,
    rounds: int | None = None,
) -> SweepResult:
    """Trains every configuration of ``hparams`` at once, as one compiled program.

    The compiled programs are cached per ``(build, epochs, batch_size,
    patience)``: a second sweep with other values (and the same number of
    members and data shapes) runs without compiling again. The members run
    ``rounds`` epochs at a time; after a round, the members still running are
    gathered into a batch of ``n * 2**j`` members (``n`` the devices of the
    ``member`` axis) when they fit in half of the current one, so a sweep
    compiles at most ``1 + log2(K / n)`` round programs and a member that
    stopped costs nothing once the batch shrinks. Every member's results are
    those of :func:`fit_member` (``jtricks.train.make_run``) run alone.

    Args:
      build: ``build(hparams) -> Member`` or ``(model, tx)``, called inside
        ``vmap`` with traced scalars: it must build everything from them with
        ``jnp`` operations (jtricks optimizers, initializers and models accept
        traced hyperparameters).
      hparams: ``{name: array[K]}``, e.g. from :func:`grid`.
      train_data, val_data: ``(x, y)`` pairs, shared by all members.
      key: one PRNG key shared by all members (common random numbers), or
        ``K`` keys (shape ``(K, 2)`` raw or ``(K,)`` typed), one per member
        (e.g. a sweep over seeds).
      epochs: the largest number of epochs.
      batch_size: examples per step.
      patience: early-stopping patience in epochs (each member stops on its
        own); ``None`` trains every member for ``epochs``.
      mesh: optional device mesh with a ``member`` axis, and optionally a
        ``data`` axis (``jax.make_mesh((4, 2), ("member", "data"))``, Auto
        or Explicit): the ``K`` members are split over ``member`` (``K``
        must divide by its size; each device trains ``K / size`` of them)
        and each member's batches over ``data``. By default, the mesh that
        ``hparams`` are already split on along a ``member`` axis, if any;
        else one device. The results are those of one device.
      seeds: train every configuration with this many seeds: seed ``s``
        gives every configuration the same key (initialisation, dropout,
        data order), ``jax.random.split(key, seeds)[s]`` for one ``key``, or
        ``key[s]`` for ``seeds`` keys. The results' leaves then have leading
        axes ``(K, seeds)`` and ``best`` is the configuration with the lowest
        mean best validation loss over the seeds.
      rounds: epochs per round (default ``ceil(epochs / 8)``, or ``epochs``
        without ``patience``; ``epochs`` runs the sweep in one round and
        drops nothing).

    Returns:
      A :class:`SweepResult`; ``result.best`` is the member with the lowest
      validation loss and ``result.member(result.best)`` its results.

    Example:
      >>> def build(h):
      ...     return jtricks.nn.mlp([8, 2]), jtricks.optim.sgd(h["learning_rate"])
      >>> x = jax.random.normal(jax.random.key(0), (40, 3))
      >>> y = (x[:, 0] > 0).astype(jnp.int32)
      >>> result = train(build, jtricks.sweep.grid(learning_rate=[0.01, 0.1, 1.0]), (x[:30], y[:30]),
      ...                (x[30:], y[30:]), key=jax.random.key(1), epochs=4, batch_size=10,
      ...                seeds=2)
      >>> result.members.val_loss.shape        # 3 configurations x 2 seeds x 4 epochs
      (3, 2, 4)

    Raises:
      ValueError: if ``hparams`` is empty or its arrays are not all of one
        length ``K``, if ``key`` holds neither one key nor ``K``, and for the
        bad arguments of :func:`fit_member`.

    References:
      J. Bergstra, Y. Bengio, "Random Search for Hyper-Parameter Optimization",
      https://jmlr.org/papers/v13/bergstra12a.html, 2012 (grids and their cost).
    """
    _validate.check_callable("build", build)
    _validate.check_int("epochs", epochs, lo=1)
    _validate.check_int("batch_size", batch_size, lo=1)
    _validate.check_int("patience", patience, lo=0, allow_none=True)
    _validate.check_int("seeds", seeds, lo=1, allow_none=True)
    rounds = _validate.check_int("rounds", rounds, lo=1, allow_none=True)
    check_data(train_data, val_data, batch_size)
    if not isinstance(hparams, Mapping):
        raise TypeError(f"hparams={_validate.show(hparams)} must map names to arrays "
                        "(e.g. grid(learning_rate=[0.1, 0.01]))")
    for name, value in hparams.items():
        # inf may mean "no limit" (a clipping threshold); NaN never means anything
        _validate.check_number(f"hparams[{name!r}]", value, scalar=False, finite=False)
    hparams = {name: jnp.asarray(value, jnp.float32) for name, value in hparams.items()}
    shapes = {value.shape for value in hparams.values()}
    if len(shapes) != 1 or len(shapes.pop()) != 1:
        raise ValueError(
            "hparams must map names to 1-d arrays of one length K, got shapes "
            f"{ {name: value.shape for name, value in hparams.items()} }"
        )
    k = next(iter(hparams.values())).shape[0]
    key = as_key(key)
    single = key.shape == (() if _typed(key) else (2,))
    configs = hparams
    if seeds is not None:
        if not single and key.shape[:1] != (seeds,):
            raise ValueError(f"key of shape {key.shape} must be one key or {seeds} keys, "
                             f"one per seed (seeds={seeds})")
        per_seed = jax.random.split(key, seeds) if single else key
        key = jnp.tile(per_seed, (k,) + (1,) * (per_seed.ndim - 1))
        hparams = {name: jnp.repeat(value, seeds) for name, value in hparams.items()}
        k, single = k * seeds, False
    if not single and key.shape[:1] != (k,):
        raise ValueError(f"key of shape {key.shape} must be one key or {k} keys, one per member")
    mesh = _sweep_mesh(mesh, hparams, k)
    data = jax.tree.map(jnp.asarray, (train_data, val_data))
    if mesh is not None:
        split = NamedSharding(mesh, P(_mesh.role_axes(mesh)["member"]))
        hparams = jax.device_put(hparams, split)
        data = jax.device_put(data, NamedSharding(mesh, P()))
        key = jax.device_put(key, NamedSharding(mesh, P()) if single else split)
        data_axis = _mesh.role_axes(mesh)["data"]
        if data_axis is not None and batch_size % mesh.shape[data_axis]:
            raise ValueError(f"batch_size={batch_size} does not divide by the "
                             f"{mesh.shape[data_axis]} devices of the 'data' axis")
    key_axis = None if single else 0
    program = _rounds.program(build, epochs, batch_size, patience, key_axis, mesh)
    members = _rounds.run(program, hparams, data[0], data[1], key, key_axis, epochs=epochs,
                          rounds=rounds or (epochs if patience is None else -(-epochs // 8)))
    best_values = _rounds.host(members.best_value)
    if seeds is not None:
        members = jax.tree.map(lambda leaf: leaf.reshape(-1, seeds, *leaf.shape[1:]), members)
        best_values = np.nanmean(best_values.reshape(-1, seeds), axis=1)
    return SweepResult(configs, members, int(np.nanargmin(best_values)))


def _typed(key) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
