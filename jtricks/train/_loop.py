"""``fit``: the training loop — compiled epochs, validation, history, checkpoints."""

from __future__ import annotations

import functools
import math
import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._validate import check_int, check_number

from ._history import write_history
from ._state import TrainState
from ._steps import evaluate, make_epoch


class ReduceLROnPlateau(NamedTuple):
    """Multiply the learning rate by ``factor`` when the monitored value stalls.

    After ``patience`` epochs without an improvement larger than ``min_delta``,
    every update is scaled by ``factor`` once more (never below ``min_scale``).
    ``fit`` applies the scale to the updates, so it works with any optimizer
    and its state stays untouched.

    Attributes:
      factor: the multiplier, in (0, 1).
      patience: epochs without improvement before a reduction.
      min_delta: the smallest change that counts as an improvement.
      min_scale: the smallest total scale.
    """

    factor: float = 0.5
    patience: int = 3
    min_delta: float = 0.0
    min_scale: float = 1e-3

    def validate(self) -> "ReduceLROnPlateau":
        check_number("factor", self.factor, lo=0, hi=1, lo_open=True, hi_open=True)
        check_int("patience", self.patience, lo=0)
        check_number("min_delta", self.min_delta, lo=0)
        check_number("min_scale", self.min_scale, lo=0)
        return self

    def step(self, plateau: dict, value: float, mode: str) -> dict:
        """The plateau bookkeeping ``{scale, best, bad_epochs}`` after one epoch."""
        sign = 1.0 if mode == "min" else -1.0
        best = plateau["best"]
        if best is None or sign * (best - value) > self.min_delta:
            return dict(plateau, best=value, bad_epochs=0)
        bad = plateau["bad_epochs"] + 1
        if bad > self.patience:
            scale = max(plateau["scale"] * self.factor, self.min_scale)
            return dict(plateau, scale=scale, bad_epochs=0)
        return dict(plateau, bad_epochs=bad)


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
      state: the final ``TrainState`` (with the best parameters when early
        stopping restored them; the last finite one when the loss diverged).
      history: one dict per epoch (the rows of ``history.jsonl``).
      stop_reason: ``None`` when all epochs ran, else why training stopped.
      avg_state: the averager's state (``ema`` / ``swa``), or ``None``.
      early_stopping_state: the early-stopping state, or ``None``.
    """

    state: TrainState
    history: list
    stop_reason: str | None
    avg_state: Any
    early_stopping_state: Any


@functools.lru_cache(maxsize=16)
def _compiled_epoch(loss_fn, tx, batch_size, averager):
    """One jitted epoch per (loss, optimizer, batch size, averager): a second
    ``fit`` with the same pieces (e.g. a resumed run) does not compile again."""
    return jax.jit(make_epoch(loss_fn, tx, batch_size, averager=averager))


@functools.lru_cache(maxsize=16)
def _compiled_eval(eval_fn, batch_size):
    return jax.jit(lambda p, s, d: evaluate(eval_fn, p, s, d, batch_size=batch_size))


def _as_key(key):
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return jnp.asarray(key)


@jax.jit
def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _divergence_message(epoch: int, metrics: dict, steps_per_epoch: int) -> str:
    losses = np.asarray(metrics["loss"])
    norms = np.asarray(metrics["grad_norm"])
    bad = np.flatnonzero(~np.isfinite(losses))
    first_bad = int(bad[0]) if bad.size else len(losses) - 1
    finite_norms = norms[:first_bad][np.isfinite(norms[:first_bad])]
    last = f"{finite_norms[-1]:.4g}" if finite_norms.size else "not finite"
    return (f"training diverged in epoch {epoch}: the loss became NaN/inf at step "
            f"{first_bad + 1} of {steps_per_epoch} and the parameters are no longer finite; "
            f"last finite gradient norm {last} (last gradient norm "
            f"{float(norms[first_bad]):.4g}). Try a smaller learning rate, gradient "
            f"clipping, or apply_if_finite to skip such steps.")


def fit(
    state: TrainState,
    tx,
    loss_fn: Callable,
    train_data: Any,
    *,
    epochs: int,
    batch_size: int,
    data_key: Any = 0,
    val_data: Any = None,
    eval_fn: Callable | None = None,
    monitor: str | None = None,
    early_stopping: Any = None,
    restore_best: bool = True,
    reduce_lr: ReduceLROnPlateau | None = None,
    averager: Any = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    history_dir: str | None = None,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    eval_batch_size: int = 1024,
) -> FitResult:
    """Trains ``state`` for ``epochs`` epochs, validating after every epoch.

    Each epoch is one compiled program (:func:`make_epoch`: ``lax.scan`` over
    the shuffled batches). The order of epoch ``e`` (1-based) comes from
    ``jax.random.fold_in(data_key, e)`` only and dropout keys live in the
    state, so a run resumed from a checkpoint ends with exactly the parameters
    of an uninterrupted one.

    Args:
      state: the initial ``TrainState`` (``TrainState.create(...)``).
      tx: the gradient transformation that made ``state.opt_state``.
      loss_fn: ``loss_fn(params, model_state, batch, key)`` (e.g. :func:`classifier_loss`).
      train_data: a pytree of arrays with examples on the leading axis, e.g. ``(x, y)``.
      epochs: the total number of epochs (a resumed run continues up to it).
      batch_size: examples per step.
      data_key: a PRNG key or int seed for the data order.
      val_data: optional validation data, evaluated with ``eval_fn`` after every epoch.
      eval_fn: per-example metrics ``eval_fn(params, model_state, batch) -> dict``
        (e.g. :func:`classifier_eval`); required with ``val_data``.
      monitor: the history column early stopping and plateau reduction watch
        (default ``"val_loss"``, or ``"train_loss"`` without validation data);
        columns ending in ``accuracy`` are maximised, the others minimised.
      early_stopping: optional ``jtricks.train.early_stopping(patience, ...)``
        (pure ``init(params)`` / ``update(state, value, params)``).
      restore_best: with early stopping, return the best parameters seen.
      reduce_lr: optional :class:`ReduceLROnPlateau`.
      averager: optional ``jtricks.train.ema(decay)`` / ``swa()``, updated every step;
        its validation metrics are logged as ``avg_val_*``.
      checkpoint_dir: where to save orbax checkpoints (every ``checkpoint_every``
        epochs and at the end), with the history and the early-stopping,
        plateau and averaging states.
      checkpoint_every: epochs between checkpoints.
      resume: continue from the newest checkpoint in ``checkpoint_dir`` that
        restores cleanly (damaged ones are reported and skipped).
      history_dir: where ``history.jsonl`` and ``history.csv`` are written
        (updated after every epoch).
      progress: show a tqdm progress bar on stderr (epoch, loss, accuracy,
        steps/s, ETA).
      callbacks: ``callback(epoch, row, state)`` called after every epoch;
        returning ``True`` stops training.
      eval_batch_size: examples evaluated at once.

    Returns:
      A :class:`FitResult` ``(state, history, stop_reason, avg_state,
      early_stopping_state)``.

    Raises:
      ValueError: for invalid arguments.

    Example:
      >>> model = jtricks.nn.mlp([128, 10])
      >>> params, model_state = model.init(jax.random.PRNGKey(0), (64,))
      >>> tx = jtricks.optim.adam(1e-3)
      >>> state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
      >>> result = fit(state, tx, classifier_loss(model), (x, y), epochs=10,
      ...              batch_size=32, val_data=(xv, yv), eval_fn=classifier_eval(model))
    """
    epochs = check_int("epochs", epochs, lo=0)
    batch_size = check_int("batch_size", batch_size, lo=1)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, lo=1)
    if val_data is not None and eval_fn is None:
        raise ValueError("fit got val_data but no eval_fn to evaluate it with "
                         "(e.g. eval_fn=jtricks.train.classifier_eval(model))")
    if resume and checkpoint_dir is None:
        raise ValueError("fit(resume=True) needs a checkpoint_dir")
    if reduce_lr is not None:
        reduce_lr = ReduceLROnPlateau(*reduce_lr).validate()
    monitor = monitor or ("val_loss" if val_data is not None else "train_loss")
    mode = "max" if monitor.endswith("accuracy") else "min"

    data_key = _as_key(data_key)
    train_data = jax.tree.map(jnp.asarray, train_data)
    n = jax.tree.leaves(train_data)[0].shape[0]
    steps_per_epoch = n // min(batch_size, n)
    epoch_fn = _compiled_epoch(loss_fn, tx, batch_size, averager)
    eval_jit = None
    if val_data is not None:
        val_data = jax.tree.map(jnp.asarray, val_data)
        eval_jit = _compiled_eval(eval_fn, eval_batch_size)

    avg_state = averager.init(state.params) if averager is not None else None
    es_state = early_stopping.init(state.params) if early_stopping is not None else None
    plateau = {"scale": 1.0, "best": None, "bad_epochs": 0}
    history: list[dict] = []
    start = 0
    stop_reason = None

    checkpointer = None
    if checkpoint_dir is not None:
        from ._checkpoint import Checkpointer

        checkpointer = Checkpointer(checkpoint_dir)
        if resume:
            target = {"state": state, "early_stopping": es_state, "average": avg_state}
            found = checkpointer.restore_latest(target)
            if found is not None:
                start, tree, meta = found
                state, es_state, avg_state = tree["state"], tree["early_stopping"], tree["average"]
                history = list(meta.get("history", []))
                plateau = meta.get("plateau", plateau)
                stop_reason = meta.get("stop_reason")
                _say(progress, f"resuming from {checkpointer.directory}/{start} "
                               f"(epoch {start} of {epochs})")
            else:
                _say(progress, f"no usable checkpoint in {checkpointer.directory}; "
                               "starting from scratch")

    def save(epoch):
        if checkpointer is not None:
            checkpointer.save(epoch, {"state": state, "early_stopping": es_state,
                                      "average": avg_state},
                              {"epoch": epoch, "history": history, "plateau": plateau,
                               "stop_reason": stop_reason})

    from tqdm.auto import tqdm

    bar = tqdm(total=epochs, initial=min(start, epochs), desc="train", unit="epoch",
               file=sys.stderr, disable=not progress, dynamic_ncols=True, leave=True)
    epoch = start
    try:
        for epoch in range(start + 1, epochs + 1):
            if stop_reason is not None:
                break
            t0 = time.perf_counter()
            new_state, new_avg, metrics = epoch_fn(
                state, train_data, jax.random.fold_in(data_key, epoch),
                jnp.asarray(plateau["scale"], jnp.float32), avg_state)
            finite = bool(_all_finite(new_state.params))
            metrics = jax.device_get(metrics)
            seconds = time.perf_counter() - t0
            if not finite:
                stop_reason = _divergence_message(epoch, metrics, steps_per_epoch)
                if progress:
                    bar.write(f"jtricks: {stop_reason}", file=sys.stderr)
                epoch -= 1
                break
            state, avg_state = new_state, new_avg
            row = {"epoch": epoch, "step": int(state.step)}
            losses = np.asarray(metrics["loss"], np.float64)
            ok = np.isfinite(losses)
            names = ["loss"] + sorted(set(metrics) - {"loss", "grad_norm"}) + ["grad_norm"]
            for name in names:
                values = np.asarray(metrics[name], np.float64)
                row[f"train_{name}" if name != "grad_norm" else name] = (
                    float(values[ok].mean()) if ok.any() else math.nan)
            if not ok.all():
                row["skipped_steps"] = int((~ok).sum())
            if val_data is not None:
                for name, value in eval_jit(state.params, state.model_state, val_data).items():
                    row[f"val_{name}"] = float(value)
                if averager is not None:
                    avg_params = averaged_params(avg_state, state.params)
                    for name, value in eval_jit(avg_params, state.model_state,
                                                val_data).items():
                        row[f"avg_val_{name}"] = float(value)
            row["lr_scale"] = plateau["scale"]
            row["seconds"] = seconds
            row["steps_per_s"] = steps_per_epoch / max(seconds, 1e-9)
            if monitor not in row:
                raise ValueError(f"monitor={monitor!r} is not a history column; "
                                 f"columns: {', '.join(row)}")
            value = row[monitor]
            if reduce_lr is not None:
                plateau = reduce_lr.step(plateau, value, mode)
            if early_stopping is not None:
                es_state = early_stopping.update(jnp.asarray(value), es_state, state.params)
                row["best_epoch"] = int(es_state.best_epoch) + 1  # 1-based, as "epoch"
                if bool(es_state.stop):
                    stop_reason = (f"early stopping after epoch {epoch}: {monitor} stopped "
                                   f"improving (best {float(es_state.best_value):.4g})")
                    if progress:
                        bar.write(f"jtricks: {stop_reason}", file=sys.stderr)
            history.append(row)
            if history_dir is not None:
                write_history(history, history_dir)
            bar.update(1)
            bar.set_postfix(_postfix(row), refresh=True)
            for callback in callbacks:
                if callback(epoch, row, state):
                    stop_reason = stop_reason or f"stopped by a callback after epoch {epoch}"
            if epoch % checkpoint_every == 0 or epoch == epochs or stop_reason is not None:
                save(epoch)
    finally:
        bar.close()
    if es_state is not None and restore_best and history:
        state = state._replace(params=es_state.best_params)
    if checkpointer is not None:
        checkpointer.close()
    return FitResult(state, history, stop_reason, avg_state, es_state)


def averaged_params(avg_state, params):
    """The parameters held by an ``ema`` / ``swa`` state, in the dtypes of ``params``."""
    from ._averaging import params_like

    return params_like(getattr(avg_state, "average", avg_state), params)


def _postfix(row: dict) -> dict:
    out = {"loss": f"{row['train_loss']:.4f}"}
    if "train_accuracy" in row:
        out["acc"] = f"{row['train_accuracy']:.3f}"
    if "val_accuracy" in row:
        out["val_acc"] = f"{row['val_accuracy']:.3f}"
    out["steps/s"] = f"{row['steps_per_s']:.0f}"
    return out


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)
