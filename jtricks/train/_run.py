"""A whole training as one traced program (:func:`make_run`, and its pieces
:func:`run_parts` for drivers that loop over epochs their own way, as
:func:`jtricks.sweep.train` does), and what it shares with :func:`jtricks.train.fit`:
an epoch's row of scalars (:func:`epoch_row`), the early-stopping mode of a monitored
column, the averaged parameters. Built on :mod:`jtricks.train._engine`'s step and
epoch."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jtricks._validate import check_callable, check_int

from ._averaging import params_like
from ._engine import LossFn, make_epoch
from ._state import TrainState
from ._steps import evaluate


def averaged_params(avg_state, params):
    """The parameters held by an ``ema`` / ``swa`` state, in the dtypes of ``params``."""
    return params_like(getattr(avg_state, "average", avg_state), params)


def monitor_mode(monitor: str) -> str:
    """``"max"`` for a column ending in ``accuracy``, else ``"min"``."""
    return "max" if monitor.endswith("accuracy") else "min"


def check_mode(early_stopping, monitor: str) -> None:
    """Refuses an early stopping whose mode is not the monitored column's."""
    stop_mode = getattr(early_stopping, "mode", None)
    if stop_mode is not None and stop_mode != monitor_mode(monitor):
        verb = {"min": "minimise", "max": "maximise"}
        raise ValueError(
            f"early_stopping(mode={stop_mode!r}) would {verb[stop_mode]} monitor={monitor!r}, "
            f"which must be {verb[monitor_mode(monitor)]}; build it with "
            f"early_stopping(..., mode={monitor_mode(monitor)!r})")


class Run(NamedTuple):
    """What a :func:`make_run` program returns.

    Attributes:
      state: the :class:`TrainState` after the last epoch run.
      avg_state: the averager's state, or ``None``.
      stop_state: the early-stopping state (its ``best_params`` holds the
        ``(params, model_state)`` of the best epoch), or ``None``.
      curves: ``{name: float32[epochs]}``, one value per epoch (NaN after the
        run stopped): ``train_loss``, ``grad_norm``, ``train_<metric>`` for the
        loss function's metrics, ``val_<metric>`` / ``avg_val_<metric>`` for
        the evaluation's, plus whatever ``record`` returns.
      epochs_run: int32, how many epochs ran.
    """

    state: TrainState
    avg_state: Any
    stop_state: Any
    curves: dict
    epochs_run: jax.Array


def epoch_row(metrics: dict) -> dict:
    """One epoch's per-step metrics as the epoch's row of scalars.

    ``train_loss``, ``train_<metric>`` for the loss function's metrics and
    ``grad_norm`` are means over the steps whose loss is finite (steps that
    ``apply_if_finite`` skipped do not count; NaN when none is finite), and
    ``skipped_steps`` counts the others.
    """
    ok = jnp.isfinite(metrics["loss"])
    count = jnp.sum(ok)
    row = {}
    for name, values in metrics.items():
        values = values.astype(jnp.promote_types(values.dtype, jnp.float32))
        mean = jnp.sum(jnp.where(ok, values, 0)) / jnp.maximum(count, 1)
        row["grad_norm" if name == "grad_norm" else f"train_{name}"] = jnp.where(
            count > 0, mean, jnp.nan)
    row["skipped_steps"] = ok.size - count
    return row


class RunCarry(NamedTuple):
    """The loop state of a :func:`make_run` program between epochs (see :func:`run_parts`).

    Attributes:
      epoch: int32, how many epochs ran.
      state, avg_state, stop_state: as in :class:`Run`.
      curves: ``{name: float32[epochs]}``, NaN where no epoch ran yet.
    """

    epoch: jax.Array
    state: TrainState
    avg_state: Any
    stop_state: Any
    curves: dict


def run_parts(*, loss_fn: LossFn, tx, batch_size: int, epochs: int,
              eval_fn: Callable | None = None, early_stopping=None, monitor: str | None = None,
              averager=None, record: Callable | None = None, eval_batch_size: int = 1024):
    """The pieces :func:`make_run` loops over, for drivers that run epochs their own way.

    Takes :func:`make_run`'s arguments and returns ``(start, epoch, running)``:

    * ``start(state, train_data, val_data, data_key) -> RunCarry`` before epoch 0;
    * ``epoch(carry, train_data, val_data, shuffle_key) -> RunCarry`` runs one
      epoch shuffled with ``shuffle_key`` (``make_run`` passes
      ``fold_in(data_key, carry.epoch + 1)``), validates it, updates early
      stopping and writes row ``carry.epoch`` of the curves;
    * ``running(carry) -> bool``: fewer than ``epochs`` epochs and not stopped.

    :func:`jtricks.sweep.train` runs them in rounds and drops finished members.
    """
    epochs = check_int("epochs", epochs, lo=1)
    eval_batch_size = check_int("eval_batch_size", eval_batch_size, lo=1)
    check_callable("eval_fn", eval_fn, allow_none=True)
    epoch_fn = make_epoch(loss_fn=loss_fn, tx=tx, batch_size=batch_size, averager=averager)

    def watched_of(val_data) -> str:
        if val_data is not None and eval_fn is None:
            raise ValueError("make_run got validation data but no eval_fn to evaluate it with "
                             "(e.g. eval_fn=jtricks.train.classifier_eval(model))")
        watched = monitor or ("val_loss" if val_data is not None else "train_loss")
        check_mode(early_stopping, watched)
        return watched

    def row_of(state, avg_state, metrics, val_data):
        row = epoch_row(metrics)
        if val_data is not None:
            for name, value in evaluate(eval_fn, state.params, state.model_state, val_data,
                                        batch_size=eval_batch_size).items():
                row[f"val_{name}"] = value
            if averager is not None:
                avg_params = averaged_params(avg_state, state.params)
                for name, value in evaluate(eval_fn, avg_params, state.model_state,
                                            val_data, batch_size=eval_batch_size).items():
                    row[f"avg_val_{name}"] = value
        if record is not None:
            row.update(record(state, avg_state))
        return row

    def start(state: TrainState, train_data, val_data, data_key) -> RunCarry:
        watched_of(val_data)
        avg_state = averager.init(state.params) if averager is not None else None
        stop_state = (early_stopping.init((state.params, state.model_state))
                      if early_stopping is not None else None)
        # The curves' names and shapes: one abstract epoch, nothing computed.
        def first_row(state, avg_state):
            state, avg_state, metrics = epoch_fn(state, train_data, data_key, avg_state)
            return row_of(state, avg_state, metrics, val_data)

        shapes = jax.eval_shape(first_row, state, avg_state)
        curves = {name: jnp.full((epochs, *s.shape), jnp.nan,
                                 jnp.promote_types(s.dtype, jnp.float32))
                  for name, s in shapes.items()}
        return RunCarry(jnp.zeros((), jnp.int32), state, avg_state, stop_state, curves)

    def epoch(carry: RunCarry, train_data, val_data, shuffle_key) -> RunCarry:
        watched = watched_of(val_data)
        e, state, avg_state, stop_state, curves = carry
        state, avg_state, metrics = epoch_fn(state, train_data, shuffle_key, avg_state)
        row = row_of(state, avg_state, metrics, val_data)
        if stop_state is not None:
            assert early_stopping is not None  # stop_state is its state
            if watched not in row:
                raise ValueError(f"monitor={watched!r} is not a curve of this run; "
                                 f"curves: {', '.join(sorted(row))}")
            stop_state = early_stopping.update(row[watched], stop_state,
                                               (state.params, state.model_state))
        curves = {name: curves[name].at[e].set(row[name].astype(curves[name].dtype))
                  for name in curves}
        return RunCarry(e + 1, state, avg_state, stop_state, curves)

    def running(carry: RunCarry):
        if carry.stop_state is None:
            return carry.epoch < epochs
        return (carry.epoch < epochs) & ~carry.stop_state.stop

    return start, epoch, running


def make_run(*, loss_fn: LossFn, tx, batch_size: int, epochs: int,
             eval_fn: Callable | None = None, early_stopping=None, monitor: str | None = None,
             averager=None, record: Callable | None = None, eval_batch_size: int = 1024):
    """Builds a whole training — ``epochs`` epochs with validation — as one pure function.

    Epoch ``e`` (1-based) shuffles with ``jax.random.fold_in(data_key, e)``,
    exactly as :func:`jtricks.train.fit` does, so a run equals ``fit`` on the
    same state, data and key. After every epoch the validation data are
    evaluated with ``eval_fn`` (and with the averaged parameters when there is
    an ``averager``); ``early_stopping`` watches ``monitor`` and the loop ends
    when it says stop (a ``lax.while_loop``: under ``jax.vmap`` each member of
    a sweep freezes at its own stop while the others go on).

    Args:
      loss_fn, tx, batch_size, averager: as for :func:`make_epoch`.
      epochs: the largest number of epochs (a Python int >= 1).
      eval_fn: per-example metrics ``eval_fn(params, model_state, batch)``;
        needed with validation data.
      early_stopping: optional ``jtricks.train.early_stopping(...)``; it is
        given ``(params, model_state)`` and keeps those of the best epoch.
      monitor: the curve early stopping watches (default ``"val_loss"``, or
        ``"train_loss"`` without validation data).
      record: optional ``record(state, avg_state) -> {name: array}``, extra
        per-epoch outputs computed inside the program (e.g. logits).
      eval_batch_size: examples evaluated at once.

    Returns:
      ``run(state, train_data, val_data, data_key) -> Run``; ``val_data`` may
      be ``None``.

    Example:
      >>> from jtricks.train import TrainState, classifier_eval, classifier_loss
      >>> model = jtricks.nn.mlp([8, 3])
      >>> params, model_state = model.init(jax.random.key(0), (4,))
      >>> tx = jtricks.optim.adam(1e-2)
      >>> state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
      >>> run = jax.jit(make_run(loss_fn=classifier_loss(model), tx=tx, batch_size=4,
      ...                        epochs=3, eval_fn=classifier_eval(model)))
      >>> data = (jnp.ones((10, 4)), jnp.zeros(10, jnp.int32))
      >>> out = run(state, data, data, jax.random.key(2))
      >>> int(out.epochs_run), out.curves["val_accuracy"].shape
      (3, (3,))
    """
    start, epoch, running = run_parts(
        loss_fn=loss_fn, tx=tx, batch_size=batch_size, epochs=epochs, eval_fn=eval_fn,
        early_stopping=early_stopping, monitor=monitor, averager=averager, record=record,
        eval_batch_size=eval_batch_size)

    def run(state: TrainState, train_data, val_data, data_key) -> Run:
        carry = jax.lax.while_loop(
            running,
            lambda c: epoch(c, train_data, val_data, jax.random.fold_in(data_key, c.epoch + 1)),
            start(state, train_data, val_data, data_key))
        return Run(carry.state, carry.avg_state, carry.stop_state, carry.curves, carry.epoch)

    return run
