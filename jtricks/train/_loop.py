"""``fit``: the interactive client of the engine — compiled epochs, validation after
each, history files, progress, checkpoints and resume."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from jtricks._optional import missing, require
from jtricks._validate import check_bool, check_callable, check_int, show
from jtricks.data._batching import _num_examples, on_device

from ._engine import epoch_order
from ._history import history_writer
from ._metrics import as_writer, learning_rate_of
from ._programs import (
    _compiled_epoch,
    _finite,
    _order_program,
    _rate_for_history,
    compile_beside,
    compile_programs,
)
from ._run import averaged_params, check_mode
from ._state import TrainState, as_key
from ._steps import check_opt_state, evaluate


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


def _skips_non_finite(opt_state) -> bool:
    """Whether ``opt_state`` holds the state of an ``apply_if_finite`` (jtricks' or
    optax's): the optimizer was skipping non-finite steps."""
    def is_state(x):
        return type(x).__name__ == "ApplyIfFiniteState"

    return any(is_state(x) for x in jax.tree.leaves(opt_state, is_leaf=is_state))


def _divergence_message(epoch: int, metrics: dict, steps_per_epoch: int,
                        opt_state: Any = None) -> str:
    """Why the run stopped: the epoch, the step, the last gradient norms, and what to
    try next (``apply_if_finite`` is only recommended when it was not on)."""
    losses = np.asarray(metrics["loss"])
    norms = np.asarray(metrics["grad_norm"])
    bad = np.flatnonzero(~np.isfinite(losses))
    first_bad = int(bad[0]) if bad.size else len(losses) - 1
    finite_norms = norms[:first_bad][np.isfinite(norms[:first_bad])]
    last = f"{finite_norms[-1]:.4g}" if finite_norms.size else "not finite"
    if _skips_non_finite(opt_state):
        advice = ("apply_if_finite was on but more non-finite steps came in a row than "
                  "its max_consecutive_errors allows, so they were applied; try a smaller "
                  "learning rate, gradient clipping, or a larger max_consecutive_errors "
                  "(jtricks train: --max-bad-steps, unlimited by default).")
    else:
        advice = ("Try a smaller learning rate, gradient clipping, or apply_if_finite "
                  "to skip such steps.")
    return (f"training diverged in epoch {epoch}: the loss became NaN/inf at step "
            f"{first_bad + 1} of {steps_per_epoch} and the parameters are no longer finite; "
            f"last finite gradient norm {last} (last gradient norm "
            f"{float(norms[first_bad]):.4g}). " + advice)


def _progress_bar(progress: bool | None):
    """tqdm's class when a bar is wanted (``None``: when tqdm is installed)."""
    if progress is False or (progress is None and missing(["tqdm"])):
        return None
    return require("tqdm.auto", "fit(progress=True)").tqdm


def fit(
    state: TrainState,
    train_data: Any,
    *,
    loss_fn: Callable,
    tx,
    epochs: int,
    batch_size: int,
    data_key: Any = 0,
    val_data: Any = None,
    eval_fn: Callable | None = None,
    monitor: str | None = None,
    early_stopping: Any = None,
    restore_best: bool = True,
    averager: Any = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    restart: bool = False,
    run_config: dict | None = None,
    history_dir: str | None = None,
    progress: bool | None = None,
    callbacks: Sequence[Callable] = (),
    eval_batch_size: int = 1024,
    learning_rate: Any = None,
    writers: Any = None,
    log_steps: bool = False,
) -> FitResult:
    """Trains ``state`` for ``epochs`` epochs, validating after every epoch.

    Each epoch is one compiled program (:func:`jtricks.train.make_epoch`:
    ``lax.scan`` of :func:`jtricks.train.train_step` over the shuffled
    batches); the epoch's batch order and the check that the parameters are
    finite are two small programs of their own, compiled with the evaluation on
    a background thread while the epoch compiles, before the first epoch
    (:func:`compile_programs`). The order of epoch ``e`` (1-based) comes from
    ``jax.random.fold_in(data_key, e)`` only and dropout keys live in the
    state, so a run resumed from a checkpoint ends with exactly the parameters
    of an uninterrupted one, and :func:`jtricks.train.make_run` (the compiled
    form sweeps use) gives the same numbers.

    Across processes (:func:`jtricks.parallel.initialize`, the state on a mesh
    over every process's devices, e.g. ``parallel.replicate_on_mesh``), every
    process calls ``fit`` with the same arguments and its own copy of the data:
    each process reads only its rows of every batch
    (:func:`jtricks.parallel.process_batches` of :func:`epoch_order`), the
    validation data are replicated, and checkpoints are written and restored by
    all processes together (process 0 writes the metadata); see
    ``docs/scaling.md``.

    Every step hands the optimizer its loss as ``value=``, so a plateau
    schedule is part of ``tx``: ``chain(adam(1e-3), reduce_on_plateau(0.5, 3,
    accumulation_size=steps_per_epoch))`` reduces the learning rate when the
    epoch's mean training loss stalls (``optax.contrib.reduce_on_plateau`` works
    the same way).

    Args:
      state: the initial ``TrainState`` (``TrainState.create(...)``).
      train_data: a pytree of arrays with examples on the leading axis, e.g. ``(x, y)``.
      loss_fn: ``loss_fn(params, model_state, batch, key)`` (e.g. :func:`classifier_loss`).
      tx: the gradient transformation that made ``state.opt_state``.
      epochs: the total number of epochs (a resumed run continues up to it).
      batch_size: examples per step.
      data_key: a PRNG key or int seed for the data order.
      val_data: optional validation data, evaluated with ``eval_fn`` after every epoch.
      eval_fn: per-example metrics ``eval_fn(params, model_state, batch) -> dict``
        (e.g. :func:`classifier_eval`); required with ``val_data``.
      monitor: the history column early stopping watches (default
        ``"val_loss"``, or ``"train_loss"`` without validation data); columns
        ending in ``accuracy`` are maximised, the others minimised, and
        ``early_stopping`` must have been built with that ``mode``.
      early_stopping: optional ``jtricks.train.early_stopping(patience, ...)``;
        it is given ``(params, model_state)`` after every epoch.
      restore_best: with early stopping, return the parameters and model state
        of the best epoch.
      averager: optional ``jtricks.train.ema(decay)`` / ``swa()``, updated every step;
        its validation metrics are logged as ``avg_val_*``.
      checkpoint_dir: where to save orbax checkpoints (every ``checkpoint_every``
        epochs and at the end), with the history and the early-stopping and
        averaging states; needs ``orbax-checkpoint`` (the ``demo`` extra).
      checkpoint_every: epochs between checkpoints.
      resume: continue from the newest checkpoint in ``checkpoint_dir`` that
        restores cleanly: damaged ones are reported and moved aside
        (``<epoch>.corrupt-<n>``), so the run ends exactly as an uninterrupted
        one. An empty or new directory starts from scratch; a directory whose
        checkpoints are all damaged raises :class:`CheckpointError` (unless
        ``restart``).
      restart: start over in a ``checkpoint_dir`` that holds checkpoints this run
        cannot continue (``resume=False``, none usable, or written by another
        ``run_config``): they are moved into ``<checkpoint_dir>/archived-<n>`` first. Without it, a fresh run
        (``resume=False``) refuses a directory that holds checkpoints.
      run_config: a JSON-able dict of everything that must match for an exact
        resume (model, optimizer and its hyperparameters, data and split seed,
        dtype, ...), stored in every checkpoint; ``resume`` refuses a checkpoint
        whose recorded ``run_config`` differs, naming the first differing keys
        with both values. Independently of it, a checkpoint whose arrays have
        other paths, shapes or dtypes than ``state`` is refused.
      history_dir: where ``history.jsonl`` and ``history.csv`` are written
        (a row appended after every epoch; a resumed run first writes the
        history it restored).
      progress: a tqdm progress bar on stderr (epoch, loss, accuracy, learning
        rate, steps/s, ETA); ``None`` (default) shows it when tqdm is installed,
        ``True`` requires it.
      callbacks: ``callback(epoch, row, state)`` called after every epoch;
        returning ``True`` stops training.
      eval_batch_size: examples evaluated at once.
      learning_rate: the learning rate or schedule ``tx`` was built with, for
        the history only (it changes nothing in training): every step's rate is
        then computed inside the compiled epoch (``schedule(step)`` times the
        scale of any reduce-on-plateau state, :func:`learning_rate_of`) and
        logged as ``learning_rate`` (the epoch's last step's rate in the
        history, every step's with ``log_steps``). Not needed when ``tx`` is an
        ``inject_hyperparams`` optimizer: its state holds the rate.
      writers: a metric writer (:class:`JsonlWriter`, :class:`CsvWriter`,
        :class:`TensorBoardWriter`, a CLU writer) or a list of them; each epoch's
        row is written at its last step (``write_scalars(row["step"], row)``),
        and the writers are flushed after every epoch (not closed).
      log_steps: also write every step's metrics to ``writers`` as
        ``batch/<name>`` (``batch/loss``, ``batch/grad_norm``,
        ``batch/learning_rate``, the loss function's metrics) at that step's
        number; they come out of the compiled epoch as one array per metric,
        written after the epoch (no host synchronisation per step).

    Returns:
      A :class:`FitResult` ``(state, history, stop_reason, avg_state,
      early_stopping_state)``.

    Raises:
      ValueError: for invalid arguments.
      CheckpointError: with ``checkpoint_dir``, before training: the directory is
        a file or not writable, another live process writes to it (lock file
        ``.jtricks-checkpoint.lock``; a dead process's lock is taken over), it
        holds checkpoints and neither ``resume`` nor ``restart`` was given, every
        checkpoint is damaged (``resume`` without ``restart``), or the newest
        sound one belongs to another run configuration.
      ImportError: naming the extra, for a progress bar or checkpoints whose
        package is not installed.

    Example:
      >>> from jtricks.train import TrainState, classifier_eval, classifier_loss
      >>> model = jtricks.nn.mlp([16, 3])
      >>> params, model_state = model.init(jax.random.key(0), (4,))
      >>> tx = jtricks.optim.adam(1e-2)
      >>> state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
      >>> x = jax.random.normal(jax.random.key(2), (60, 4))
      >>> y = (x[:, 0] > 0).astype(jnp.int32)
      >>> result = fit(state, (x[:40], y[:40]), loss_fn=classifier_loss(model), tx=tx,
      ...              epochs=5, batch_size=8, val_data=(x[40:], y[40:]),
      ...              eval_fn=classifier_eval(model), progress=False)
      >>> [row["epoch"] for row in result.history], int(result.state.step)
      ([1, 2, 3, 4, 5], 25)
    """
    epochs = check_int("epochs", epochs, lo=0)
    batch_size = check_int("batch_size", batch_size, lo=1)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, lo=1)
    eval_batch_size = check_int("eval_batch_size", eval_batch_size, lo=1)
    writer = as_writer(writers)
    if log_steps and writer is None:
        raise ValueError("fit(log_steps=True) needs writers= to write the steps to "
                         "(e.g. writers=jtricks.train.JsonlWriter('steps.jsonl'))")
    learning_rate = _rate_for_history(learning_rate)
    for name, value in (("loss_fn", loss_fn), ("eval_fn", eval_fn)):
        if value is not None and hasattr(value, "init") and hasattr(value, "update"):
            raise TypeError(f"fit got a gradient transformation as {name}; pass the "
                            "optimizer as tx= and the loss as loss_fn=")
    if not isinstance(state, TrainState):
        raise TypeError(f"state={show(state)} must be a jtricks.train.TrainState "
                        f"(TrainState.create(...)), got {type(state).__name__}")
    check_callable("loss_fn", loss_fn)
    check_callable("eval_fn", eval_fn, allow_none=True)
    check_opt_state(tx, state)
    _num_examples(train_data, "train_data", allow_empty=False)
    if val_data is not None:
        _num_examples(val_data, "val_data", allow_empty=False)
    for name, flag in (("restore_best", restore_best), ("resume", resume), ("restart", restart)):
        check_bool(name, flag)
    if val_data is not None and eval_fn is None:
        raise ValueError("fit got val_data but no eval_fn to evaluate it with "
                         "(e.g. eval_fn=jtricks.train.classifier_eval(model))")
    if resume and checkpoint_dir is None:
        raise ValueError("fit(resume=True) needs a checkpoint_dir")
    if restart and checkpoint_dir is None:
        raise ValueError("fit(restart=True) needs a checkpoint_dir")
    monitor = monitor or ("val_loss" if val_data is not None else "train_loss")
    check_mode(early_stopping, monitor)
    tqdm = _progress_bar(progress)
    if run_config is not None and not isinstance(run_config, dict):
        raise TypeError(f"run_config must be a dict, got {type(run_config).__name__}")
    checkpointer = None
    if checkpoint_dir is not None:
        from ._checkpoint import Checkpointer

        checkpointer = Checkpointer(checkpoint_dir)
    try:
        return _fit(state, train_data, loss_fn, tx, epochs, batch_size, data_key, val_data,
                    eval_fn, monitor, early_stopping, restore_best, averager, checkpointer,
                    checkpoint_every, resume, restart, run_config, history_dir, progress,
                    tqdm, callbacks, eval_batch_size, learning_rate, writer, log_steps)
    finally:
        if checkpointer is not None:
            checkpointer.close()


def _fit(state, train_data, loss_fn, tx, epochs, batch_size, data_key, val_data, eval_fn,
         monitor, early_stopping, restore_best, averager, checkpointer, checkpoint_every,
         resume, restart, run_config, history_dir, progress, tqdm, callbacks,
         eval_batch_size, learning_rate, writer, log_steps) -> FitResult:
    """The body of :func:`fit` once its arguments are checked (``checkpointer``
    is closed by the caller, also when this raises)."""

    # Every program fit runs is jitted (eager operations would compile one small
    # program each): the epoch, evaluation, and the averager's and early stopping's
    # init / update; tests/test_train_compiles.py counts them.
    data_key = as_key(data_key)
    mesh = _process_mesh(state)
    train_data = on_device(train_data) if mesh is None else jax.tree.map(np.asarray, train_data)
    n = jax.tree.leaves(train_data)[0].shape[0]
    steps_per_epoch = n // min(batch_size, n)
    epoch_fn = _compiled_epoch(loss_fn, tx, batch_size, averager, learning_rate)

    order_fn = _order_program(n, batch_size)

    def epoch_data(epoch):
        """The epoch's data and batch indices (of ``fold_in(data_key, epoch)``); across
        processes, each process's rows of the epoch's batches, already cut (``None``)."""
        order = order_fn(data_key, np.uint32(epoch))
        if mesh is None:
            return train_data, order
        from jtricks.parallel._distributed import process_batches

        return process_batches(train_data, order, mesh), None

    if val_data is not None:
        if mesh is None:
            val_data = on_device(val_data)
        else:  # every process holds the validation data whole
            from jtricks.parallel import replicate_on_mesh

            val_data = replicate_on_mesh(val_data, mesh)

    avg_state = jax.jit(averager.init)(state.params) if averager is not None else None
    es_state = (jax.jit(early_stopping.init)((state.params, state.model_state))
                if early_stopping is not None else None)
    history: list[dict] = []
    start = 0
    stop_reason = None
    talk = progress is not False

    if checkpointer is not None:
        from ._checkpoint import CheckpointError

        where = checkpointer.directory
        checkpointer.acquire()  # one writer per directory, before any work
        found = None
        had = checkpointer.has_checkpoints()
        if resume and had:
            target = {"state": state, "early_stopping": es_state, "average": avg_state}
            try:
                found = checkpointer.restore_latest(target, run_config)
            except CheckpointError as e:  # another run's checkpoints
                if not restart:
                    raise
                _say(talk, f"not resuming: {e}")
        if found is not None:
            start, tree, meta = found
            state, es_state, avg_state = tree["state"], tree["early_stopping"], tree["average"]
            history = list(meta.get("history", []))
            stop_reason = meta.get("stop_reason")
            _say(talk, f"resuming from {where}/{start} (epoch {start} of {epochs})")
        elif had and restart:
            _say(talk, f"starting over: moved the previous checkpoints to "
                       f"{checkpointer.archive()}")
        elif had and resume:
            raise CheckpointError(
                f"no usable checkpoint in {where}: every one is damaged (moved aside as "
                "<epoch>.corrupt-<n>); pass restart=True (jtricks train --restart) to start "
                "over")
        elif had:
            raise CheckpointError(
                f"{where} already holds checkpoints; pass resume=True "
                "(jtricks train --resume) to continue them, restart=True (--restart) to "
                "start over (they are moved aside), or choose another directory")
        elif resume:
            _say(talk, f"no checkpoint in {where} yet; starting from scratch")

    def save(epoch):
        if checkpointer is not None:
            checkpointer.save(epoch, {"state": state, "early_stopping": es_state,
                                      "average": avg_state},
                              {"epoch": epoch, "history": history,
                               "stop_reason": stop_reason, "run_config": run_config})

    if mesh is None and start < epochs and stop_reason is None:
        # The epoch compiles here while the small programs compile on another thread.
        compile_beside(compile_programs(
            state, train_data, loss_fn=loss_fn, tx=tx, batch_size=batch_size,
            data_key=data_key, val_data=val_data, eval_fn=eval_fn,
            eval_batch_size=eval_batch_size, averager=averager, learning_rate=learning_rate))
    bar = _NoBar() if tqdm is None else tqdm(
        total=epochs, initial=min(start, epochs), desc="train", unit="epoch",
        file=sys.stderr, dynamic_ncols=True, leave=True)
    history_file = None
    try:
        if history_dir is not None:
            history_file = history_writer(history_dir)
            for past in history:  # a resumed run's files hold its whole history
                history_file.write_scalars(past["step"], past)
            history_file.flush()
        for epoch in range(start + 1, epochs + 1):
            if stop_reason is not None:
                break
            t0 = time.perf_counter()
            new_state, new_avg, metrics, epoch_means = epoch_fn(state, *epoch_data(epoch),
                                                                avg_state)
            finite = _finite(new_state.params)
            epoch_means, finite = jax.device_get((epoch_means, finite))
            seconds = time.perf_counter() - t0
            if log_steps:
                _write_steps(writer, int(state.step), jax.device_get(metrics))
            if not finite:
                stop_reason = _divergence_message(epoch, jax.device_get(metrics),
                                                  steps_per_epoch, state.opt_state)
                _say(talk, f"jtricks: {stop_reason}", bar)
                break
            state, avg_state = new_state, new_avg
            row: dict[str, Any] = {"epoch": epoch, "step": int(state.step)}
            row.update({name: float(value) for name, value in epoch_means.items()
                        if name != "skipped_steps"})
            if epoch_means["skipped_steps"]:
                row["skipped_steps"] = int(epoch_means["skipped_steps"])
            if val_data is not None:
                for name, value in evaluate(eval_fn, state.params, state.model_state, val_data,
                                            batch_size=eval_batch_size).items():
                    row[f"val_{name}"] = float(value)
                if averager is not None:
                    avg_params = jax.jit(averaged_params)(avg_state, state.params)
                    for name, value in evaluate(eval_fn, avg_params, state.model_state,
                                                val_data, batch_size=eval_batch_size).items():
                        row[f"avg_val_{name}"] = float(value)
            row["seconds"] = seconds
            row["steps_per_s"] = steps_per_epoch / max(seconds, 1e-9)
            if monitor not in row:
                raise ValueError(f"monitor={monitor!r} is not a history column; "
                                 f"columns: {', '.join(row)}")
            if early_stopping is not None:
                es_state = jax.jit(early_stopping.update)(
                    np.float32(row[monitor]), es_state, (state.params, state.model_state))
                row["best_epoch"] = int(es_state.best_epoch) + 1  # 1-based, as "epoch"
                if bool(es_state.stop):
                    stop_reason = (f"early stopping after epoch {epoch}: {monitor} stopped "
                                   f"improving (best {float(es_state.best_value):.4g} at "
                                   f"epoch {row['best_epoch']})")
                    _say(talk, f"jtricks: {stop_reason}", bar)
            history.append(row)
            for out in (history_file, writer):
                if out is not None:
                    out.write_scalars(row["step"], row)
                    out.flush()
            bar.update(1)
            bar.set_postfix(_postfix(row), refresh=True)
            for callback in callbacks:
                if callback(epoch, row, state):
                    stop_reason = stop_reason or f"stopped by a callback after epoch {epoch}"
            if epoch % checkpoint_every == 0 or epoch == epochs or stop_reason is not None:
                save(epoch)
    finally:
        bar.close()
        if history_file is not None:
            history_file.close()
        if writer is not None:
            writer.flush()
    if es_state is not None and restore_best and history and int(es_state.best_epoch) >= 0:
        best_params, best_model_state = es_state.best_params
        state = state._replace(params=best_params, model_state=best_model_state)
    return FitResult(state, history, stop_reason, avg_state, es_state)


def _process_mesh(state) -> Any:
    """The mesh of a run across several processes (``None`` in a one-process run):
    the mesh of the state's leaves that span other processes' devices."""
    if jax.process_count() == 1:
        return None
    for leaf in jax.tree.leaves(state):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, jax.sharding.NamedSharding) and not leaf.is_fully_addressable:
            return sharding.mesh
    raise ValueError(f"fit across {jax.process_count()} processes needs a state on a mesh "
                     "over their devices (jtricks.parallel.replicate_on_mesh, or "
                     "shard_params before TrainState.create)")


class _NoBar:
    """What fit calls on its progress bar, doing nothing (no tqdm, or progress=False)."""

    def update(self, n):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _write_steps(writer, step0: int, metrics: dict) -> None:
    """Writes an epoch's per-step metrics (one array per name) as ``batch/<name>`` at
    steps ``step0 + 1, step0 + 2, ...``."""
    names = list(metrics)
    for i, values in enumerate(zip(*(metrics[name] for name in names))):
        writer.write_scalars(step0 + i + 1, {f"batch/{name}": value
                                             for name, value in zip(names, values)})


def _postfix(row: dict) -> dict:
    out = {"loss": f"{row['train_loss']:.4f}"}
    if "train_accuracy" in row:
        out["acc"] = f"{row['train_accuracy']:.3f}"
    if "val_accuracy" in row:
        out["val_acc"] = f"{row['val_accuracy']:.3f}"
    if "learning_rate" in row:
        out["lr"] = f"{row['learning_rate']:.3g}"
    out["steps/s"] = f"{row['steps_per_s']:.0f}"
    return out


def _say(talk: bool, message: str, bar=None) -> None:
    if not talk:
        return
    if bar is not None and hasattr(bar, "write"):
        bar.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)
