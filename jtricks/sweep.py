"""Hyperparameter sweeps: K configurations trained as one ``vmap``-ed, jitted program.

A sweep member is described by a ``build(hparams)`` function that makes the
model and the optimizer from a dict of scalar hyperparameters (learning rate,
weight decay, dropout rate, initializer scale, ...): it returns a
:class:`Member` (model, optimizer, and optionally its own loss, evaluation and
averager) or just a ``(model, tx)`` pair. Inside :func:`train` those scalars
are traced values of a ``vmap`` over the members, so one compilation trains all
``K`` configurations at once, and changing the values (not their number) does
not compile again.

A sweep is the engine under ``vmap``: every member runs
:func:`jtricks.train.make_run` — the same step, epoch, validation and early
stopping as :func:`jtricks.train.fit` — so member ``k`` equals ``fit`` run
alone on ``hparams[k]`` with the same keys. Members share one key (common
random numbers: they differ only by their hyperparameters) unless ``key`` has
one per member, stop on their own through
:func:`jtricks.train.early_stopping` on the validation loss, and keep their
best parameters. Under ``vmap`` the members run in lockstep: a stopped member
is frozen while the others go on, and the program ends when all have stopped
or ``epochs`` is reached.

Example:
  >>> def build(h):
  ...     model = jtricks.nn.mlp([16, 3], dropout=h["dropout"])
  ...     return model, jtricks.optim.adamw(h["learning_rate"], weight_decay=1e-4)
  >>> hparams = grid(learning_rate=[1e-3, 1e-2], dropout=[0.0, 0.3])
  >>> x = jax.random.normal(jax.random.key(0), (80, 4))
  >>> y = (x[:, 0] > 0).astype(jnp.int32)
  >>> result = train(build, hparams, (x[:60], y[:60]), (x[60:], y[60:]),
  ...                key=jax.random.key(1), epochs=5, batch_size=20, patience=2)
  >>> result.members.val_loss.shape
  (4, 5)
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Mapping, NamedTuple, Sequence, cast

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jtricks import _validate
from jtricks import train as _train
from jtricks.parallel import _mesh
from jtricks.data._batching import _num_examples
from jtricks.train._state import as_key

class Member(NamedTuple):
    """One configuration of a sweep, as ``build(hparams)`` returns it.

    Attributes:
      model: ``init(key, input_shape) -> (params, model_state)`` and ``apply``
        (a ``jtricks.nn`` model).
      tx: the gradient transformation.
      loss_fn: ``loss_fn(params, model_state, batch, key)``; default
        ``jtricks.train.classifier_loss(model)``.
      eval_fn: per-example validation metrics; default
        ``jtricks.train.classifier_eval(model)``.
      averager: optional ``ema`` / ``swa``.
    """

    model: Any
    tx: Any
    loss_fn: Callable | None = None
    eval_fn: Callable | None = None
    averager: Any = None


# build(hparams) -> Member, or a (model, tx) pair.
Build = Callable[[Mapping[str, jax.Array]], Any]


def member_of(build: Build, hparams) -> Member:
    """``build(hparams)`` as a :class:`Member` with its defaults filled in."""
    _validate.check_callable("build", build)
    built = build(hparams)
    if not isinstance(built, Member) and not (type(built) is tuple and len(built) == 2):
        raise TypeError(f"build returned {_validate.show(built)}; it must return a Member or "
                        "a (model, tx) pair")
    member = built if isinstance(built, Member) else Member(*built)
    return member._replace(
        loss_fn=member.loss_fn or _train.classifier_loss(member.model),
        eval_fn=member.eval_fn or _train.classifier_eval(member.model))


class MemberResult(NamedTuple):
    """What one member's training returns (with a leading ``K`` axis in a sweep).

    Attributes:
      params: the parameters of the best epoch (lowest validation loss).
      model_state: the model state (batch-norm statistics) of the best epoch.
      train_loss: ``float32[epochs]``, the mean training loss of every epoch,
        NaN after the member stopped.
      val_loss: ``float32[epochs]``, the validation loss after every epoch,
        NaN after the member stopped.
      best_value: the lowest validation loss.
      best_epoch: its 0-based epoch.
      epochs_run: how many epochs the member trained before it stopped.
      curves: every per-epoch curve of :func:`jtricks.train.make_run`
        (``train_accuracy``, ``val_accuracy``, ``grad_norm``, ...).
      final_state: the ``TrainState`` after the last epoch run.
      avg_state: the averager's state (``None`` without one).
    """

    params: Any
    model_state: Any
    train_loss: jax.Array
    val_loss: jax.Array
    best_value: jax.Array
    best_epoch: jax.Array
    epochs_run: jax.Array
    curves: dict
    final_state: Any
    avg_state: Any


class SweepResult(NamedTuple):
    """The ``K`` members of a sweep and the best of them.

    Attributes:
      hparams: the swept hyperparameters, ``{name: float32[K]}``.
      members: a :class:`MemberResult` whose leaves have a leading ``K`` axis.
      best: the index of the member with the lowest validation loss.
    """

    hparams: Mapping[str, Any]
    members: MemberResult
    best: int

    def member(self, k: int) -> MemberResult:
        """Member ``k`` of the sweep, without the leading axis."""
        return jax.tree.map(lambda leaf: leaf[k], self.members)


def grid(**values: Sequence[float]) -> dict[str, jax.Array]:
    """Every combination of the given hyperparameter values.

    Args:
      **values: ``name=[v1, v2, ...]`` for each hyperparameter (at least one
        value each).

    Returns:
      ``{name: float32[K]}`` with ``K`` the product of the lengths; the last
      name varies fastest.

    Raises:
      ValueError: if no hyperparameter or an empty list of values is given.

    Example:
      >>> grid(learning_rate=[0.1, 0.01], dropout=[0.0, 0.5])["dropout"]
      Array([0. , 0.5, 0. , 0.5], dtype=float32)
    """
    if not values:
        raise ValueError("grid() needs at least one hyperparameter, e.g. grid(learning_rate=[0.1, 0.01])")
    for name, options in values.items():
        if not isinstance(options, Sequence) or isinstance(options, str):
            raise TypeError(f"{name}={_validate.show(options)} must be a list of values")
        if len(options) == 0:
            raise ValueError(f"{name}={list(options)!r} must list at least one value")
        _validate.check_number(name, list(options), scalar=False)
    combos = list(itertools.product(*values.values()))
    return {name: jnp.asarray([c[i] for c in combos], jnp.float32) for i, name in enumerate(values)}


def fit_member(
    build: Build,
    hparams: Mapping[str, Any],
    train_data: Any,
    val_data: Any,
    *,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    init_params: Any = None,
    record: Callable | None = None,
) -> MemberResult:
    """Trains one configuration with the engine; pure and traceable, the body of a sweep.

    ``key`` splits into ``(init, train, data)`` keys: the model is initialised
    with the first (unless ``init_params`` is given), dropout draws from the
    second (``TrainState.key``) and the data order from the third, exactly as
    ``fit(TrainState.create(..., key=train_key), ..., data_key=data_key)``.

    Args:
      build: ``build(hparams) -> Member`` (or ``(model, tx)``).
      hparams: ``{name: scalar}``, Python numbers or (traced) arrays.
      train_data, val_data: ``(x, y)`` pairs (any pytree the loss takes).
      key: the PRNG key (raw or typed).
      epochs: the largest number of epochs.
      batch_size: examples per step.
      patience: early-stopping patience in epochs on the validation loss
        (Keras' meaning); ``None`` trains every epoch.
      init_params: optional ``(params, model_state)`` to start from.
      record: optional ``record(state, avg_state) -> {name: array}`` added to
        the curves (see :func:`jtricks.train.make_run`).

    Returns:
      A :class:`MemberResult`.

    Raises:
      ValueError: for a non-positive ``epochs`` / ``batch_size``, a negative
        ``patience``, or a batch larger than the training set.
    """
    epochs = _validate.check_int("epochs", epochs, lo=1)
    batch_size = _validate.check_int("batch_size", batch_size, lo=1)
    patience = _validate.check_int("patience", patience, lo=0, allow_none=True)
    n = _num_examples(train_data, "train_data", allow_empty=False)
    _num_examples(val_data, "val_data", allow_empty=False)
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    member = member_of(build, hparams)
    init_key, train_key, data_key = jax.random.split(key, 3)
    if init_params is None:
        init_params = member.model.init(init_key, jax.tree.leaves(train_data)[0].shape[1:])
    params, model_state = init_params
    state = _train.TrainState.create(params=params, tx=member.tx, key=train_key,
                                     model_state=model_state)
    run = _train.make_run(loss_fn=cast(Callable, member.loss_fn), tx=member.tx, batch_size=batch_size,
                          epochs=epochs, eval_fn=member.eval_fn, averager=member.averager,
                          early_stopping=_train.early_stopping(
                              epochs if patience is None else patience),
                          record=record)
    out = run(state, train_data, val_data, data_key)
    best_params, best_model_state = out.stop_state.best_params
    return MemberResult(best_params, best_model_state, out.curves["train_loss"],
                        out.curves["val_loss"], out.stop_state.best_value,
                        out.stop_state.best_epoch, out.epochs_run, out.curves, out.state,
                        out.avg_state)


def _on_data(build, sharding):
    """``build`` whose members' losses split their batch as ``sharding`` says."""

    def split_build(hparams):
        member = member_of(build, hparams)
        loss_fn = member.loss_fn
        assert loss_fn is not None  # member_of fills it in

        def split_loss(params, model_state, batch, key):
            return loss_fn(params, model_state,
                           jax.lax.with_sharding_constraint(batch, sharding), key)

        return member._replace(loss_fn=split_loss)

    return split_build


@functools.lru_cache(maxsize=32)
def _compiled_sweep(build, epochs, batch_size, patience, key_axis, mesh=None):
    """The jitted, vmapped sweep; on a mesh (Auto axes) the members are split over
    its ``member`` axis and each member's batches over its ``data`` axis."""
    axes = _mesh.role_axes(mesh) if mesh is not None else {}
    if mesh is not None and axes.get("data"):
        build = _on_data(build, NamedSharding(mesh, P(axes["data"])))
    fit = functools.partial(fit_member, build, epochs=epochs, batch_size=batch_size,
                            patience=patience)
    member = axes.get("member")
    swept = jax.vmap(lambda h, tr, va, key: fit(h, tr, va, key=key),
                     in_axes=(0, None, None, key_axis), spmd_axis_name=member)
    if mesh is None:
        return jax.jit(swept)
    split, whole = NamedSharding(mesh, P(member)), NamedSharding(mesh, P())
    return jax.jit(swept, in_shardings=(split, whole, whole, whole if key_axis is None else split),
                   out_shardings=split)


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
) -> SweepResult:
    """Trains every configuration of ``hparams`` at once, as one compiled program.

    The compiled program is cached per ``(build, epochs, batch_size,
    patience)``: a second sweep with other values (and the same number of
    members and data shapes) runs without compiling again.

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

    Returns:
      A :class:`SweepResult`; ``result.best`` is the member with the lowest
      validation loss and ``result.member(result.best)`` its results.

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
    run = _compiled_sweep(build, epochs, batch_size, patience, None if single else 0, mesh)
    members = run(hparams, *data, key)
    best = int(np.nanargmin(np.asarray(members.best_value)))
    return SweepResult(hparams, members, best)


def _typed(key) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


# The learning-rate range test is a sweep over rates (its own module, built on train above).
from jtricks._lr_range import (LRRangeResult, lr_range_test, plot_lr_range,  # noqa: E402
                               suggest_learning_rate)

__all__ = ["LRRangeResult", "Member", "MemberResult", "SweepResult", "fit_member", "grid",
           "lr_range_test", "member_of", "plot_lr_range", "suggest_learning_rate", "train"]


# Every NamedTuple here serializes with jax.export (jtricks/_export.py).
from jtricks._export import register_namedtuples as _register_namedtuples  # noqa: E402

_register_namedtuples(__name__)
