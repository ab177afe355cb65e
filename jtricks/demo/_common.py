"""What every demo experiment shares: a vmapped trainer, results, figures.

Every experiment compares a few configurations. Where they have the same shape
(dropout rates, learning rates, seeds, class weights, initial weights) they are
trained together: ``jax.vmap`` over the configurations of a function that runs
the whole training — ``lax.scan`` over epochs of :func:`jtricks.train.make_epoch`,
each followed by a validation pass — so one compiled program trains them all.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks.train import (TrainState, averaged_params, classifier_eval, classifier_loss,
                           evaluate, make_epoch)


class Setup(NamedTuple):
    """One configuration: a model, an optimizer, optionally a loss and an averager."""

    model: Any
    tx: Any
    loss_fn: Callable | None = None
    averager: Any = None


def train_sweep(make: Callable[[Any], Setup], hparams: Any, train, val, **kw) -> dict:
    """Trains one configuration per leading index of ``hparams``, all in one program.

    Args:
      make: ``make(hp) -> Setup``, called inside ``vmap`` with one configuration's
        hyperparameters (tracers: rates, decays, weights may be traced).
      hparams: a pytree of arrays with the configurations on the leading axis.
      train, val: ``(x, y)`` arrays.
      **kw: see :func:`train_sweeps`.

    Returns:
      A dict of NumPy arrays: ``(configs, epochs)`` curves ``train_loss``,
      ``train_accuracy``, ``grad_norm``, ``val_loss``, ``val_accuracy`` (and
      ``train_eval_*``, ``avg_val_*``, ``val_logits`` when asked), plus
      ``params``, the final parameters of every configuration.
    """
    return train_sweeps([(make, hparams)], train, val, **kw)[0]


def train_sweeps(sweeps, train, val, *, epochs: int, batch_size: int = 32, seed: int = 0,
                 keys=None, init_params=None, eval_train: bool = False,
                 val_logits: bool = False, data_per_config: bool = False) -> list[dict]:
    """Several :func:`train_sweep` s of different structure (e.g. optimizers with
    different states) compiled together as one program: one compilation instead of
    one per structure.

    Args:
      sweeps: ``[(make, hparams), ...]``.
      train, val: ``(x, y)`` arrays.
      epochs: epochs to train.
      batch_size: examples per step.
      seed: the key of every configuration (same initialisation and data order,
        so only the hyperparameter differs) unless ``keys`` gives one each.
      keys: optional ``(configs, 2)`` keys, shared by every sweep.
      init_params: optional stacked ``(params, model_state)`` to start from
        (single sweep only).
      eval_train: also evaluate on the training data after every epoch.
      val_logits: also return the validation logits after every epoch.
      data_per_config: ``train`` and ``val`` carry a leading configuration axis
        (e.g. differently scaled inputs of the same shape).

    Returns:
      One dict per sweep, as :func:`train_sweep`.
    """
    x_shape = np.shape(train[0])[1 + data_per_config:]
    keys_per_sweep = []
    for _, hparams in sweeps:
        n = jax.tree.leaves(hparams)[0].shape[0]
        sweep_keys = jnp.stack([jax.random.PRNGKey(seed)] * n) if keys is None else keys
        keys_per_sweep.append(jax.vmap(lambda k: jax.random.split(k, 3))(sweep_keys))
    if init_params is None:
        def init_all(hparams_list, keys_list):
            return [jax.vmap(lambda hp, k, make=make: make(hp).model.init(k[0], x_shape))(
                hp, k) for (make, _), hp, k in zip(sweeps, hparams_list, keys_list)]

        starts = jax.jit(init_all, compiler_options=_FAST_COMPILE)(
            [h for _, h in sweeps], keys_per_sweep)
    else:
        starts = [init_params]
    args = [(h, k, s) for (_, h), k, s in zip(sweeps, keys_per_sweep, starts)]
    # Small programs: compile fast (runs for milliseconds anyway); big ones: optimise.
    work = sum(jax.tree.leaves(h)[0].shape[0] * sum(np.size(p) for p in jax.tree.leaves(s))
               for (_, h), s in zip(sweeps, starts)) * epochs * np.shape(train[0])[
                   data_per_config]
    options = _FAST_COMPILE if work < 2.5e9 else None
    data_axis = 0 if data_per_config else None
    flags = dict(epochs=epochs, batch_size=batch_size, eval_train=eval_train,
                 val_logits=val_logits)

    def program(args, train, val):
        return [jax.vmap(functools.partial(_train_one, make, **flags),
                         in_axes=(0, 0, 0, data_axis, data_axis))(*a, train, val)
                for (make, _), a in zip(sweeps, args)]

    out = jax.jit(program, compiler_options=options)(args, train, val)
    return jax.tree.map(np.asarray, out)


def _train_one(make, hp, key, start, train, val, *, epochs, batch_size, eval_train,
               val_logits):
    """The whole training of one configuration: scan over epochs, validation after each."""
    setup = make(hp)
    loss_fn = setup.loss_fn or classifier_loss(setup.model)
    eval_fn = classifier_eval(setup.model)
    _, k_train, k_data = key
    params, model_state = start
    state = TrainState.create(params=params, tx=setup.tx, key=k_train, model_state=model_state)
    averager = setup.averager
    avg = averager.init(params) if averager is not None else None
    epoch_fn = make_epoch(loss_fn, setup.tx, batch_size, averager=averager)

    def body(carry, e):
        state, avg = carry
        state, avg, m = epoch_fn(state, train, jax.random.fold_in(k_data, e), 1.0, avg)
        out = {"train_loss": jnp.mean(m["loss"]), "train_accuracy": jnp.mean(m["accuracy"]),
               "grad_norm": jnp.mean(m["grad_norm"])}
        for k, v in evaluate(eval_fn, state.params, state.model_state, val).items():
            out[f"val_{k}"] = v
        if eval_train:
            for k, v in evaluate(eval_fn, state.params, state.model_state, train).items():
                out[f"train_eval_{k}"] = v
        if avg is not None:
            avg_params = averaged_params(avg, state.params)
            for k, v in evaluate(eval_fn, avg_params, state.model_state, val).items():
                out[f"avg_val_{k}"] = v
        if val_logits:
            out["val_logits"] = setup.model.apply(state.params, state.model_state, val[0],
                                                  training=False)[0]
        return (state, avg), out

    (state, _), curves = jax.lax.scan(body, (state, avg), jnp.arange(1, epochs + 1))
    return dict(curves, params=state.params)


# The programs run for milliseconds and compile for seconds: trade a little run time
# for a much shorter compilation.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


class Result(NamedTuple):
    """One experiment's outcome, written into the report by ``_report``.

    Attributes:
      name: short id (file names).
      title: section title.
      claim: the lesson's claim under test.
      setup: one paragraph on what was trained.
      table: ``(headers, rows)``.
      figure: the PNG file name (in the report folder).
      verdict: whether the data support the claim, in one or two sentences.
      metrics: flat rows for metrics.jsonl / metrics.csv.
      numbers: named values the tests and the summary use.
      seconds: wall time of the experiment.
    """

    name: str
    title: str
    claim: str
    setup: str
    table: tuple
    figure: str
    verdict: str
    metrics: list
    numbers: dict
    seconds: float = 0.0


def curve_rows(experiment: str, labels, curves: dict, keys=None) -> list[dict]:
    """Flattens ``(configs, epochs)`` curves into one row per configuration and epoch."""
    keys = keys or [k for k, v in curves.items()
                    if isinstance(v, np.ndarray) and v.ndim == 2]
    rows = []
    for c, label in enumerate(labels):
        for e in range(curves[keys[0]].shape[1]):
            row = {"experiment": experiment, "config": str(label), "epoch": e + 1}
            row.update({k: float(curves[k][c, e]) for k in keys})
            rows.append(row)
    return rows


def figure(title: str, ncols: int = 1, width: float = 6.0):
    """A new matplotlib figure with ``ncols`` axes and a title.

    Built with the object-oriented API (no pyplot state), so experiments may run
    in parallel threads.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, 4.2))
    axes = fig.subplots(1, ncols, squeeze=False)
    fig.suptitle(title, fontsize=12)
    return fig, list(axes[0])


_DRAW_LOCK = threading.Lock()  # matplotlib's text layout (mathtext) is not thread-safe


def save(fig, out_dir: str, name: str) -> str:
    """Draws ``fig`` into ``<out_dir>/<name>.png`` (one drawing at a time); returns the
    file name."""
    import os

    with _DRAW_LOCK:
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"{name}.png"), dpi=110)
    return f"{name}.png"


def epochs_axis(ax, ylabel: str, *, log: bool = False, legend: bool = True) -> None:
    """Labels an axis whose x is the epoch."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def fmt(x: float, digits: int = 3) -> str:
    """A number for a table (``nan`` shown as ``NaN``)."""
    return "NaN" if not np.isfinite(x) else f"{x:.{digits}f}"
