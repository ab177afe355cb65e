"""The members of a sweep: what ``build`` returns, what each member's training returns,
and one member trained alone by the engine (the oracle every sweep equals)."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, NamedTuple, Sequence, cast

import jax
import jax.numpy as jnp

from jtricks import _validate
from jtricks import train as _train
from jtricks.data._batching import _num_examples


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


def check_data(train_data, val_data, batch_size: int) -> None:
    """Refuses empty data and a batch larger than the training set."""
    n = _num_examples(train_data, "train_data", allow_empty=False)
    _num_examples(val_data, "val_data", allow_empty=False)
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")


def initial_state(member: Member, init_key, train_key, train_data, init_params=None):
    """A member's first :class:`jtricks.train.TrainState`: ``model.init(init_key, one
    example's shape)`` (or ``init_params``), its optimizer state, ``train_key`` for dropout."""
    if init_params is None:
        init_params = member.model.init(init_key, jax.tree.leaves(train_data)[0].shape[1:])
    params, model_state = init_params
    return _train.TrainState.create(params=params, tx=member.tx, key=train_key,
                                    model_state=model_state)


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
    check_data(train_data, val_data, batch_size)
    member = member_of(build, hparams)
    init_key, train_key, data_key = jax.random.split(key, 3)
    state = initial_state(member, init_key, train_key, train_data, init_params)
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
