"""Hyperparameter sweeps: K configurations trained as one ``vmap``-ed, jitted program.

A sweep member is described by a ``build(hparams) -> (model, tx)`` function
that makes the model and the optimizer from a dict of scalar hyperparameters
(learning rate, weight decay, dropout rate, initializer scale, ...). Inside
:func:`train` those scalars are traced values of a ``vmap`` over the members,
so one compilation trains all ``K`` configurations at once, and changing the
values (not their number) does not compile again.

Every member sees the same data order and draws from the same key (common
random numbers: the members differ only by their hyperparameters), stops on
its own through :func:`jtricks.train.early_stopping` on the validation loss,
and keeps its best parameters. Under ``vmap`` the members run in lockstep: a
stopped member is frozen while the others go on, and the program ends when
all have stopped or ``epochs`` is reached. Member ``k`` of a sweep equals
:func:`fit_member` run alone on ``hparams[k]``.

Example:
  >>> def build(h):
  ...     model = jtricks.nn.mlp([64, 10], dropout=h["dropout"])
  ...     return model, jtricks.optim.adamw(h["learning_rate"], weight_decay=h["weight_decay"])
  >>> hparams = grid(learning_rate=[1e-3, 1e-2], weight_decay=[0.0, 1e-4], dropout=[0.0, 0.3])
  >>> result = train(build, hparams, (x, y, x_val, y_val), key=jax.random.PRNGKey(0),
  ...                epochs=50, batch_size=64, patience=5)
  >>> result.best, result.member(result.best).best_value
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import _validate
from jtricks import losses as _losses
from jtricks import train as _train

# build(hparams) -> (model, tx); model has init(key, input_shape) and
# apply(params, state, x, *, training, key=None).
Build = Callable[[Mapping[str, jax.Array]], tuple[Any, Any]]


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
    """

    params: Any
    model_state: Any
    train_loss: jax.Array
    val_loss: jax.Array
    best_value: jax.Array
    best_epoch: jax.Array
    epochs_run: jax.Array


class SweepResult(NamedTuple):
    """The ``K`` members of a sweep and the best of them.

    Attributes:
      hparams: the swept hyperparameters, ``{name: float32[K]}``.
      members: a :class:`MemberResult` whose leaves have a leading ``K`` axis.
      best: the index of the member with the lowest validation loss.
    """

    hparams: dict
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
        if len(options) == 0:
            raise ValueError(f"{name}={list(options)!r} must list at least one value")
    combos = list(itertools.product(*values.values()))
    return {name: jnp.asarray([c[i] for c in combos], jnp.float32) for i, name in enumerate(values)}


def fit_member(
    build: Build,
    hparams: Mapping[str, Any],
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    *,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> MemberResult:
    """Trains one configuration; pure and traceable, the body of a sweep.

    Every epoch shuffles the training set with ``fold_in(key, epoch)``, takes
    ``len(x) // batch_size`` full batches (the remainder is left out), then
    evaluates the validation loss in evaluation mode and updates early stopping.

    Args:
      build: ``build(hparams) -> (model, tx)``.
      hparams: ``{name: scalar}``, Python numbers or (traced) arrays.
      data: ``(x_train, y_train, x_val, y_val)``, labels as int class indices.
      key: the PRNG key for initialisation, dropout and data order.
      epochs: the largest number of epochs.
      batch_size: examples per step.
      patience: early-stopping patience in epochs; ``None`` trains every epoch.
      loss_fn: ``loss_fn(logits, labels) -> scalar``; mean cross-entropy by default.

    Returns:
      A :class:`MemberResult`.

    Raises:
      ValueError: for a non-positive ``epochs`` / ``batch_size``, a negative
        ``patience``, or a batch larger than the training set.
    """
    epochs = _validate.check_int("epochs", epochs, lo=1)
    batch_size = _validate.check_int("batch_size", batch_size, lo=1)
    patience = _validate.check_int("patience", patience, lo=0, allow_none=True)
    x, y, x_val, y_val = data
    if batch_size > x.shape[0]:
        raise ValueError(f"batch_size={batch_size} exceeds the {x.shape[0]} training examples")
    loss_fn = _losses.cross_entropy if loss_fn is None else loss_fn
    steps = x.shape[0] // batch_size

    model, tx = build(hparams)
    init_key, train_key, data_key = jax.random.split(key, 3)
    params, model_state = model.init(init_key, x.shape[1:])
    state = _train.TrainState.create(params=params, tx=tx, key=train_key, model_state=model_state)
    stopper = _train.early_stopping(epochs if patience is None else patience)

    def batch_loss(params, model_state, batch, key):
        xb, yb = batch
        logits, model_state = model.apply(params, model_state, xb, training=True, key=key)
        return loss_fn(logits, yb), (model_state, {})

    def one_step(state, index):
        state, metrics = _train.train_step(state, (x[index], y[index]), loss_fn=batch_loss, tx=tx)
        return state, metrics["loss"]

    def one_epoch(carry):
        epoch, state, stop_state, train_loss, val_loss = carry
        order = jax.random.permutation(jax.random.fold_in(data_key, epoch), x.shape[0])
        state, losses = jax.lax.scan(one_step, state, order[: steps * batch_size].reshape(steps, -1))
        logits, _ = model.apply(state.params, state.model_state, x_val, training=False)
        value = loss_fn(logits, y_val)
        stop_state = stopper.update(value, stop_state, (state.params, state.model_state))
        train_loss = train_loss.at[epoch].set(losses.mean())
        return epoch + 1, state, stop_state, train_loss, val_loss.at[epoch].set(value)

    def running(carry):
        epoch, _, stop_state, _, _ = carry
        return (epoch < epochs) & ~stop_state.stop

    nan = jnp.full((epochs,), jnp.nan, jnp.float32)
    carry = (jnp.zeros((), jnp.int32), state, stopper.init((params, model_state)), nan, nan)
    epoch, _, stop_state, train_loss, val_loss = jax.lax.while_loop(running, one_epoch, carry)
    best_params, best_model_state = stop_state.best_params
    return MemberResult(
        best_params,
        best_model_state,
        train_loss,
        val_loss,
        stop_state.best_value,
        stop_state.best_epoch,
        epoch,
    )


@functools.lru_cache(maxsize=32)
def _compiled_sweep(build, loss_fn, epochs, batch_size, patience):
    fit = functools.partial(
        fit_member,
        build,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        loss_fn=loss_fn,
    )
    return jax.jit(jax.vmap(lambda h, data, key: fit(h, data, key=key), in_axes=(0, None, None)))


def train(
    build: Build,
    hparams: Mapping[str, Any],
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    *,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> SweepResult:
    """Trains every configuration of ``hparams`` at once, as one compiled program.

    The compiled program is cached per ``(build, loss_fn, epochs, batch_size,
    patience)``: a second sweep with other values (and the same number of
    members and data shapes) runs without compiling again.

    Args:
      build: ``build(hparams) -> (model, tx)``, called inside ``vmap`` with
        traced scalars: it must build everything from them with ``jnp``
        operations (jtricks optimizers, initializers and models accept traced
        hyperparameters).
      hparams: ``{name: array[K]}``, e.g. from :func:`grid`.
      data: ``(x_train, y_train, x_val, y_val)``, shared by all members.
      key: the PRNG key, shared by all members (common random numbers).
      epochs: the largest number of epochs.
      batch_size: examples per step.
      patience: early-stopping patience in epochs (each member stops on its
        own); ``None`` trains every member for ``epochs``.
      loss_fn: ``loss_fn(logits, labels) -> scalar``; mean cross-entropy by default.

    Returns:
      A :class:`SweepResult`; ``result.best`` is the member with the lowest
      validation loss and ``result.member(result.best)`` its results.

    Raises:
      ValueError: if ``hparams`` is empty or its arrays are not all of one
        length ``K``, and for the bad arguments of :func:`fit_member`.

    References:
      J. Bergstra, Y. Bengio, "Random Search for Hyper-Parameter Optimization",
      https://jmlr.org/papers/v13/bergstra12a.html, 2012 (grids and their cost).

    Example:
      >>> result = train(build, grid(learning_rate=[1e-3, 1e-2]), data,
      ...                key=jax.random.PRNGKey(0), epochs=20, batch_size=32)
      >>> float(result.members.best_value[result.best])
    """
    hparams = {name: jnp.asarray(value, jnp.float32) for name, value in hparams.items()}
    shapes = {value.shape for value in hparams.values()}
    if len(shapes) != 1 or len(shapes.pop()) != 1:
        raise ValueError(
            "hparams must map names to 1-d arrays of one length K, got shapes "
            f"{ {name: value.shape for name, value in hparams.items()} }"
        )
    run = _compiled_sweep(build, loss_fn, epochs, batch_size, patience)
    members = run(hparams, tuple(jnp.asarray(a) for a in data), jnp.asarray(key))
    best = int(np.nanargmin(np.asarray(members.best_value)))
    return SweepResult(hparams, members, best)


__all__ = ["MemberResult", "SweepResult", "fit_member", "grid", "train"]
