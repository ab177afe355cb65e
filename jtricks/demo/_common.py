"""What every demo experiment shares: the digits data, a vmapped trainer, results.

Every experiment compares a few configurations. Where they have the same shape
(dropout rates, learning rates, seeds, class weights, initial weights) they are
trained together: ``jax.vmap`` over the configurations of the engine's whole
training (:func:`jtricks.sweep.fit_member`, i.e. :func:`jtricks.train.make_run`),
so one compiled program trains them all; no experiment has a loop of its own.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks.optim import GradientTransformation
from jtricks.optim._base import call_update
from jtricks.sweep import Member, fit_member, member_of
from jtricks.train import evaluate


def one_of(transforms, index) -> GradientTransformation:
    """The gradient transformation ``transforms[index]``, for a traced ``index``.

    Lets arms whose optimizers have different states share one structure, so that
    ``vmap`` trains them all with one copy of the model's program (one compilation of
    the forward and backward pass instead of one per optimizer). The state holds every
    transformation's state and each is updated on the same gradients; only the chosen
    one's updates are returned, so the arm trains exactly as with
    ``transforms[index]`` alone (the others' states are carried and unused).

    Example:
      >>> import jtricks.optim as jo
      >>> tx = one_of([jo.sgd(0.1), jo.adam(0.1)], jnp.asarray(1))
      >>> g, p = {"w": jnp.full(2, 4.0)}, {"w": jnp.zeros(2)}
      >>> tx.update(g, tx.init(p), p)[0]["w"]  # Adam's first step: -lr * sign
      Array([-0.1, -0.1], dtype=float32)
    """
    transforms = tuple(transforms)

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None, **extra):
        outs = [call_update(t, updates, s, params, extra) for t, s in zip(transforms, state)]
        chosen = jax.tree.map(lambda *u: jax.lax.select_n(jnp.asarray(index, jnp.int32), *u),
                              *[u for u, _ in outs])
        return chosen, tuple(s for _, s in outs)

    return GradientTransformation(init, update)


def train_sweep(make: Callable[[Any], Member], hparams: Any, train, val, **kw) -> dict:
    """Trains one configuration per leading index of ``hparams``, all in one program.

    Args:
      make: ``make(hp) -> Member``, called inside ``vmap`` with one configuration's
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
                 val_logits: bool = False, data_per_config: bool = False,
                 fast_compile: bool | None = None, record=None) -> list[dict]:
    """Several :func:`train_sweep` s of different structure (e.g. optimizers with
    different states) compiled together as one program: one compilation instead of
    one per structure. Each configuration is :func:`jtricks.sweep.fit_member` (the
    engine's compiled run), ``vmap``-ed over the configurations.

    Args:
      sweeps: ``[(make, hparams), ...]``.
      train, val: ``(x, y)`` arrays.
      epochs: epochs to train (every configuration trains them all).
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
      fast_compile: compile without XLA optimisations (seconds less to compile, a
        little slower to run); default: when the work (configurations × parameters ×
        epochs × examples) is small.
      record: optional ``record(member, state, avg_state, train, val) -> {name:
        array}``, more per-epoch values (e.g. a second average's accuracy).

    Returns:
      One dict per sweep, as :func:`train_sweep`.
    """
    keys_per_sweep = []
    for _, hparams in sweeps:
        n = jax.tree.leaves(hparams)[0].shape[0]
        keys_per_sweep.append(np.stack([np.asarray(jax.random.PRNGKey(seed))] * n)
                              if keys is None else keys)
    starts = [None] * len(sweeps) if init_params is None else [init_params]
    # Small programs: compile fast (runs for milliseconds anyway); big ones: optimise.
    if fast_compile is None:
        fast_compile = _fast(sweeps, train, epochs, batch_size, data_per_config)
    options = _FAST_COMPILE if fast_compile else _OPTIMISE
    data_axis = 0 if data_per_config else None
    extra = record

    def one(make, hp, key, start, train, val):
        member = member_of(make, hp)

        def record(state, avg_state):
            out = {}
            if eval_train:
                for k, v in evaluate(member.eval_fn, state.params, state.model_state,
                                     train).items():
                    out[f"train_eval_{k}"] = v
            if val_logits:
                out["val_logits"] = member.model.apply(state.params, state.model_state,
                                                       val[0], training=False)[0]
            if extra is not None:
                out.update(extra(member, state, avg_state, train, val))
            return out

        result = fit_member(lambda _: member, hp, train, val, key=key, epochs=epochs,
                            batch_size=batch_size, init_params=start, record=record)
        return dict(result.curves, params=result.final_state.params)

    def program(keys_per_sweep, starts, train, val):
        return [jax.vmap(functools.partial(one, make),
                         in_axes=(0, 0, None if start is None else 0, data_axis, data_axis))(
                    h, k, start, train, val)
                for (make, h), k, start in zip(sweeps, keys_per_sweep, starts)]

    out = jax.jit(program, compiler_options=options)(keys_per_sweep, starts, train, val)
    return jax.tree.map(np.asarray, out)


def _fast(sweeps, train, epochs: int, batch_size: int, data_per_config: bool,
          seeds: int = 1) -> bool:
    """Whether a program is small enough to compile at XLA level 0 (see ``_SMALL``):
    little work per configuration and few steps in all (level 0 runs every step's
    operations unfused: a few seconds more per thousand member-steps)."""
    n = np.shape(jax.tree.leaves(train)[0])[data_per_config]
    members = sum(jax.tree.leaves(h)[0].shape[0] for _, h in sweeps) * seeds
    return (_work(sweeps, train, epochs, data_per_config) < _SMALL
            and members * epochs * (n // batch_size) < _FEW_STEPS)


def _work(sweeps, train, epochs: int, data_per_config: bool, per: int = 1) -> float:
    """Configurations × parameters × epochs × examples of a program (``per``: divides
    the configurations, e.g. by the seeds)."""
    x_shape = np.shape(train[0])[1 + data_per_config:]
    sizes = [sum(np.size(p) for p in jax.tree.leaves(jax.eval_shape(
        lambda m=make, h=h: m(jax.tree.map(lambda a: a[0], h)).model.init(
            jax.random.PRNGKey(0), x_shape))))
        for make, h in sweeps]
    return sum(jax.tree.leaves(h)[0].shape[0] * size for (_, h), size in zip(sweeps, sizes)
               ) / per * epochs * np.shape(train[0])[data_per_config]


# run_demo(quick=SMOKE): test-only, one or two epochs; checks the plumbing (files,
# statistics, verdict text), not the effects.
SMOKE = "smoke"


def pick(quick, full: int, short: int, smoke: int = 2) -> int:
    """Epochs for the full demo, for ``--quick`` and for :data:`SMOKE`.

    Example:
      >>> pick(False, 20, 5), pick(True, 20, 5), pick(SMOKE, 20, 5)
      (20, 5, 2)
    """
    return smoke if quick == SMOKE else short if quick else full


# Every experiment trains each arm over this many seeds (the statistics need n >= 8).
N_SEEDS = 8


def seeds_of(seed: int, n: int = N_SEEDS) -> list[int]:
    """The seeds of a demo run with ``--seed seed``: ``seed * n ... seed * n + n - 1``,
    so different ``--seed`` values use disjoint seeds."""
    return [seed * n + i for i in range(n)]


def seed_keys(seeds) -> np.ndarray:
    """One ``PRNGKey(s)`` per seed, stacked: ``(len(seeds), 2)`` (NumPy: host-side
    helpers stay NumPy, so that they compile no program of their own)."""
    return np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds])


def _per_arm(tree, arms: int, seeds: int):
    return jax.tree.map(lambda v: np.reshape(v, (arms, seeds) + np.shape(v)[1:]), tree)


def _repeat(tree, seeds: int):
    return jax.tree.map(lambda v: np.repeat(np.asarray(v), seeds, axis=0), tree)


def train_seeded(make, hparams, train, val, *, seeds, init_params=None,
                 data_per_config: bool = False, data_per_seed: bool = False, **kw) -> dict:
    """:func:`train_sweep` over arms × seeds in one compiled program.

    Every arm (leading index of ``hparams``) is trained once per seed; seed ``s``
    gives every arm the same key (initialisation, dropout, data order), so arms are
    compared in pairs. Configurations are stacked arm-major on the leading axis.

    Args:
      make, hparams, train, val: as :func:`train_sweep` (one arm per leading index).
      seeds: the integer seeds (see :func:`seeds_of`).
      init_params: optional ``(params, model_state)`` with a leading
        ``(arms * seeds)`` axis, arm-major.
      data_per_config: ``train``/``val`` carry a leading arm axis (repeated per seed).
      data_per_seed: ``train`` carries a leading seed axis: seed ``i`` trains every arm
        on ``train[i]`` (e.g. its own draw of a small noisy subset), so the seeds'
        spread, and the intervals built on it, include the variation between draws.
      **kw: the other options of :func:`train_sweeps`.

    Returns:
      As :func:`train_sweep`, every array with leading axes ``(arms, seeds)``.
    """
    return train_seeded_sweeps([(make, hparams)], train, val, seeds=seeds,
                               init_params=init_params, data_per_config=data_per_config,
                               data_per_seed=data_per_seed, **kw)[0]


def train_seeded_sweeps(sweeps, train, val, *, seeds, init_params=None,
                        data_per_config: bool = False, data_per_seed: bool = False,
                        **kw) -> list[dict]:
    """:func:`train_sweeps` over arms × seeds, one program; see :func:`train_seeded`.

    Returns:
      One dict per sweep, every array with leading axes ``(arms, seeds)``.
    """
    n = len(seeds)
    keys = seed_keys(seeds)
    arms = [jax.tree.leaves(h)[0].shape[0] for _, h in sweeps]
    if len(set(arms)) != 1:
        raise ValueError(f"every sweep needs the same number of arms, got {arms}")
    if data_per_config and data_per_seed:
        raise ValueError("data_per_config and data_per_seed exclude each other")
    if data_per_seed:
        got = np.shape(jax.tree.leaves(train)[0])[0]
        if got != n:
            raise ValueError(f"data_per_seed: train's leading axis is {got}, not the {n} seeds")
    # Compile as the single-seed program would have been: the seeds multiply the run
    # time (milliseconds per epoch), not the compilation.
    if kw.get("fast_compile") is None:
        kw["fast_compile"] = _fast(sweeps, train, kw["epochs"], kw.get("batch_size", 32),
                                   data_per_config or data_per_seed, seeds=n)
    rep = [(make, _repeat(h, n)) for make, h in sweeps]
    if data_per_config:
        train, val = _repeat(train, n), _repeat(val, n)
    elif data_per_seed:  # arm-major: every arm's block of seeds sees train[0 ... n-1]
        train = jax.tree.map(
            lambda v: np.tile(np.asarray(v), (arms[0],) + (1,) * (np.ndim(v) - 1)), train)
        val = _repeat(jax.tree.map(lambda v: np.asarray(v)[None], val), arms[0] * n)
        data_per_config = True
    out = train_sweeps(rep, train, val, keys=np.tile(keys, (arms[0], 1)),
                       init_params=init_params, data_per_config=data_per_config, **kw)
    return [_per_arm(o, arms[0], n) for o in out]


def band(ax, x, values, label: str, *, color=None, style: str = "-", alpha: float = 0.18):
    """Plots the mean over seeds (axis 0 of ``values``) with a ±1 s.d. band."""
    from ._stats import mean_band

    m, lo, hi = mean_band(np.asarray(values, np.float64))
    line, = ax.plot(x, m, style, label=label, color=color)
    ax.fill_between(x, lo, hi, alpha=alpha, color=line.get_color(), linewidth=0)
    return line


def band_note(n: int) -> str:
    """The figure caption's words for :func:`band`."""
    return f"lines: mean of {n} seeds, bands: ±1 s.d."


def seeded_rows(experiment: str, labels, curves: dict, seeds, keys=None) -> list[dict]:
    """One metrics row per arm, seed and epoch from ``(arms, seeds, epochs)`` curves."""
    keys = keys or [k for k, v in curves.items()
                    if isinstance(v, np.ndarray) and v.ndim == 3]
    rows = []
    for a, label in enumerate(labels):
        for i, s in enumerate(seeds):
            for row in curve_rows(experiment, [label], {k: curves[k][a, i][None]
                                                        for k in keys}, keys):
                row["seed"] = int(s)
                rows.append(row)
    return rows


# The programs run for milliseconds and compile for seconds: trade a little run time
# for a much shorter compilation, where the run is short. Measured (CPU-s, compile /
# run): the dropout program (--quick) at level 0 3.9 / 39.7, level 1 6.8 / 19.4, the
# default (2) 15.5 / 19.5; normalisation at batch 4 (942 steps × 32 members) level 0
# 6.2 / 24.9, level 1 9.3 / 5.3; clipping (--quick, 4.7k member-steps) 4.1 / 2.7 and
# 5.7 / 1.3. So a program compiles at level 0 only when its work (configurations ×
# parameters × epochs × examples) is below ``_SMALL`` and its member-steps below
# ``_FEW_STEPS``, else at level 1: the default's extra passes buy no run time here.
# Level 0 also leaves out XLA:CPU's fusion emitters (compile / run CPU-s at the
# test-only size: weight decay 1.1 / 0.7 without, 3.1 / 0.5 with; clipping 2.4 / 1.8
# and 4.7 / 1.3); at level 1 they pay (optimizers --quick: 6.3 / 7.8 without, 7.9 /
# 4.2 with).
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
_OPTIMISE = {"xla_backend_optimization_level": 1}
_SMALL = 5e8
_FEW_STEPS = 4000


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
      effects: the paired comparisons (:class:`jtricks.demo._stats.Effect`) the
        verdict is computed from.
      seeds: the seeds every arm was trained with.
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
    effects: tuple = ()
    seeds: tuple = ()


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
