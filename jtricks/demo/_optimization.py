"""Demo experiments on optimisation: optimizers, learning-rate schedules, clipping."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.init as ji
import jtricks.nn as nn
import jtricks.optim as jo
import jtricks.optim.schedules as sch

from ._common import (Member, Result, Timer, band, band_note, epochs_axis, figure, fmt, pick,
                      one_of, save, seeded_rows, seeds_of, train_seeded)
from ._data import mnist1d
from ._stats import CONTRADICTED, NOT_SHOWN, SHOWN, paired, verdict as paired_verdict

# Each optimizer with its customary default learning rate (PyTorch / Keras defaults).
OPTIMIZERS = {
    "SGD": lambda: jo.sgd(0.01),
    "momentum": lambda: jo.sgd(0.01, momentum=0.9),
    "Nesterov": lambda: jo.sgd(0.01, momentum=0.9, nesterov=True),
    "normalised ∇/‖∇‖": lambda: jo.chain(jo.normalize_by_norm(), jo.scale_by_learning_rate(0.01)),
    "Adagrad": lambda: jo.adagrad(0.01),
    "RMSProp": lambda: jo.rmsprop(1e-3),
    "Adadelta": lambda: jo.adadelta(1.0),
    "Adam": lambda: jo.adam(1e-3),
    "AdamW": lambda: jo.adamw(1e-3, weight_decay=1e-2),
}
LEARNING_RATES = {"SGD": 0.01, "momentum": 0.01, "Nesterov": 0.01, "normalised ∇/‖∇‖": 0.01,
                  "Adagrad": 0.01, "RMSProp": 1e-3, "Adadelta": 1.0, "Adam": 1e-3,
                  "AdamW": 1e-3}


def optimizers(data, out_dir, quick, seed=0):
    """Claim 9: SGD, momentum, Nesterov, the normalised step, Adagrad, RMSProp, Adadelta,
    Adam (and AdamW) at equal steps."""
    epochs = pick(quick, 20, 3)
    seeds = seeds_of(seed)
    # Nine optimizer states of different shapes: one_of makes them one structure, so
    # one copy of the model's program trains the 9 × seeds arms.
    def make(index):
        return Member(nn.mlp((128, 64, 10)), one_of([m() for m in OPTIMIZERS.values()], index))

    with Timer() as t:
        c = train_seeded(make, jnp.arange(len(OPTIMIZERS)), data.train, data.val,
                         epochs=epochs, seeds=seeds)
        curves = {k: {n: v[i] for n, v in c.items() if n != "params"}
                  for i, k in enumerate(OPTIMIZERS)}  # (seeds, epochs) each
    fig, (a1, a2) = figure("Optimizers at equal steps: MLP 128-64 on digits, each with its "
                           f"usual learning rate ({band_note(len(seeds))})", 2)
    x = range(1, epochs + 1)
    for label, c in curves.items():
        style = "-" if label in ("Adam", "AdamW", "SGD") else "--"
        band(a1, x, c["train_loss"], f"{label} (lr {LEARNING_RATES[label]:g})", style=style,
             alpha=0.1)
        band(a2, x, c["val_accuracy"], label, style=style, alpha=0.1)
    epochs_axis(a1, "training loss", log=True)
    epochs_axis(a2, "validation accuracy")
    name = save(fig, out_dir, "optimizers")
    final = {k: c["val_accuracy"][:, -1] for k, c in curves.items()}  # per seed
    loss = {k: c["train_loss"][:, -1] for k, c in curves.items()}
    versus = {k: paired(f"final val. accuracy, Adam − {k}", final["Adam"], final[k])
              for k in curves if k != "Adam"}
    effects = (versus["SGD"],
               paired("final val. accuracy, momentum − SGD", final["momentum"], final["SGD"]))
    rows = [[k, f"{LEARNING_RATES[k]:g}", fmt(float(loss[k].mean()), 4),
             fmt(float(final[k].mean())), fmt(float(final[k].std(ddof=1))),
             versus[k].interval() if k in versus else ""] for k in curves]
    groups = {o: [k for k, e in versus.items() if e.outcome == o]
              for o in (SHOWN, NOT_SHOWN, CONTRADICTED)}
    n_val = len(data.y_val)
    detail = (f"Adam against each of the other {len(versus)} optimizers (paired 95% CIs in the "
              f"table, uncorrected): better than {', '.join(groups[SHOWN]) or 'no other'}; "
              f"not distinguishable from {', '.join(groups[NOT_SHOWN]) or 'no other'}; worse "
              f"than {', '.join(groups[CONTRADICTED]) or 'no other'}. One validation image is "
              f"{1 / n_val:.4f} of accuracy.")
    verdict = paired_verdict(effects, detail)
    rows_metrics = []
    for k, c in curves.items():
        rows_metrics += seeded_rows("optimizers", [k], {n: v[None] for n, v in c.items()
                                                        if np.ndim(v) == 2}, seeds)
    return Result("optimizers", "Optimizers", "SGD, momentum (γ=0.9), Nesterov, the normalised "
                  "step w − η∇/‖∇‖, Adagrad, RMSProp, Adadelta and Adam; if unsure, use Adam.",
                  f"MLP 128-64, batch 32, {epochs} epochs, {len(seeds)} seeds; each seed gives "
                  "every optimizer the same initial weights and data order; each optimizer "
                  "with its customary learning rate; all 9 × "
                  f"{len(seeds)} runs in one vmapped program (every arm carries the nine "
                  "optimizer states and applies its own optimizer's step).",
                  (["optimizer", "learning rate", "final training loss (mean)",
                    "final val. accuracy (mean)", "s.d. over seeds",
                    "Adam − this, mean [95% CI]"], rows), name, verdict, rows_metrics,
                  {"val_accuracy": {k: float(v.mean()) for k, v in final.items()},
                   "train_loss": {k: float(v.mean()) for k, v in loss.items()}}, t.seconds,
                  effects=effects, seeds=tuple(seeds))


def schedules(data, out_dir, quick, seed=0):
    """Claim 11: start large, then shrink the learning rate (×0.98 per epoch, or another
    schedule) — on MNIST-1D, where the final accuracy is not saturated."""
    data = mnist1d(seed)
    epochs = pick(quick, 30, 4)
    batch = 32
    spe = len(data.y_train) // batch
    # A large rate (with momentum 0.9) on a small MLP: too noisy to settle at a constant
    # rate (its training accuracy stays near 0.5), the regime the lesson's "start large,
    # then shrink" is for. At lr 0.1 a 256-256 MLP fits the training set at a constant
    # rate and decay has nothing to do (measured: every decay arm lowered val. accuracy).
    lr0, width = 0.3, 64
    labels = [f"constant {lr0}", "×0.98 per epoch", "×0.9 per epoch", "cosine to 0"]
    steps = epochs * spe
    choices = [sch.constant(lr0), sch.per_epoch(lr0, 0.98, spe), sch.per_epoch(lr0, 0.9, spe),
               sch.cosine_decay(lr0, steps)]
    seeds = seeds_of(seed)

    def schedule_for(kind):
        # one program for every schedule: evaluate them all, select by the traced index
        return lambda step: jnp.stack([s(step) for s in choices])[kind]

    def make(kind):
        return Member(nn.mlp((width, width, 10)), jo.sgd(schedule_for(kind), momentum=0.9))

    with Timer() as t:
        c = train_seeded(make, jnp.arange(len(labels)), data.train, data.val, epochs=epochs,
                         batch_size=batch, seeds=seeds)
    fig, (a0, a1, a2) = figure(f"Learning-rate decay on MNIST-1D: MLP {width}-{width}, "
                               "SGD+momentum "
                               f"from lr {lr0} ({band_note(len(seeds))})", 3, width=5.0)
    x = np.arange(1, epochs + 1)
    for i, label in enumerate(labels):
        a0.plot(x, [float(choices[i]((e - 1) * spe)) for e in x], label=label)
        band(a1, x, c["train_loss"][i], label)
        band(a2, x, c["val_accuracy"][i], label)
    epochs_axis(a0, "learning rate during the epoch")
    epochs_axis(a1, "training loss", log=True)
    epochs_axis(a2, "validation accuracy")
    name = save(fig, out_dir, "schedules")
    final_loss = c["train_loss"][:, :, -1]  # (arms, seeds)
    final_acc = c["val_accuracy"][:, :, -1]
    effects = tuple(paired(f"final val. accuracy, {labels[i]} − constant", final_acc[i],
                           final_acc[0]) for i in range(1, len(labels)))
    loss_effects = [paired(f"final training loss, {labels[i]} − constant", final_loss[i],
                           final_loss[0], claim="less", digits=4)
                    for i in range(1, len(labels))]
    rows = [[label, fmt(float(final_loss[i].mean()), 4),
             "" if i == 0 else loss_effects[i - 1].interval(),
             fmt(float(final_acc[i].mean())), fmt(float(final_acc[i].std(ddof=1))),
             "" if i == 0 else effects[i - 1].interval()]
            for i, label in enumerate(labels)]
    verdict = paired_verdict(effects, "Final training loss against constant (claim < 0): "
                                      + "; ".join(f"{labels[i + 1]} {e.interval()} {e.outcome}"
                                                  for i, e in enumerate(loss_effects))
                                      + f". ×0.98 per epoch is a gentle decay: after {epochs} "
                                      f"epochs the rate is still {0.98 ** (epochs - 1):.2f}× "
                                      "the initial one.")
    return Result("schedules", "Learning-rate decay", "Start with a large learning rate and "
                  "shrink it: multiply by 0.98 after every epoch, or use a more elaborate "
                  "schedule.",
                  f"Regime: MNIST-1D ({len(data.y_train)} training signals), where an MLP is "
                  "far from saturated (on the 8x8 digits every schedule ends within a few "
                  f"images of 0.98), and a large rate: MLP {width}-{width}, SGD+momentum 0.9 "
                  f"from lr {lr0}, at which the constant rate is too noisy to settle (its final "
                  f"training accuracy: {float(c['train_accuracy'][0, :, -1].mean()):.2f}); "
                  f"batch {batch}, {epochs} epochs; the "
                  f"four schedules (jtricks.optim.schedules) × {len(seeds)} seeds are trained "
                  "together with vmap (one program); each seed gives every schedule the same "
                  "initial weights and data order.",
                  (["schedule", "final training loss (mean)",
                    "training loss − constant, mean [95% CI]", "final val. accuracy (mean)",
                    "s.d. over seeds", "val. accuracy − constant, mean [95% CI]"], rows),
                  name, verdict, seeded_rows("schedules", labels, c, seeds),
                  {"val_accuracy": dict(zip(labels, map(float, final_acc.mean(1))))}, t.seconds,
                  effects=effects, seeds=tuple(seeds))


def clipping(data, out_dir, quick, seed=0):
    """Claim 10: clip the gradient norm (θ = 1 or 10) — on a network made to explode."""
    epochs = pick(quick, 15, 3)
    thresholds = [np.inf, 10.0, 1.0]
    labels = ["no clipping", "clip ‖∇‖ at θ = 10", "clip ‖∇‖ at θ = 1"]
    seeds = seeds_of(seed)

    def make(theta):
        # made to explode: 8 layers of 64 with weights 1.5× too large for ReLU, and a
        # learning rate far too high for plain SGD
        model = nn.mlp((64,) * 8 + (10,), kernel_init=ji.variance_scaling(2.0 * 1.5 ** 2,
                                                                          "fan_in", "normal"))
        return Member(model, jo.chain(jo.clip_by_global_norm(theta), jo.sgd(0.05,
                                                                            momentum=0.9)))

    with Timer() as t:
        c = train_seeded(make, jnp.asarray(thresholds), data.train, data.val, epochs=epochs,
                         seeds=seeds)
    diverged = ~np.isfinite(c["train_loss"]).all(-1)  # (arms, seeds)
    fig, (a1, a2) = figure("Gradient clipping, deep ReLU net made to explode "
                           f"({band_note(len(seeds))}; NaN left out)", 2)
    x = range(1, epochs + 1)
    for i, label in enumerate(labels):
        line = band(a1, x, c["train_loss"][i], f"{label} (NaN in {diverged[i].sum()} of "
                                               f"{len(seeds)} seeds)")
        band(a2, x, c["grad_norm"][i], label, color=line.get_color())
        if diverged[i].any():  # the seeds themselves, until their loss becomes NaN
            for ax, key in ((a1, "train_loss"), (a2, "grad_norm")):
                ax.plot(x, c[key][i].T, color=line.get_color(), alpha=0.35, linewidth=0.8)
    epochs_axis(a1, "training loss (NaN runs left out)", log=True)
    epochs_axis(a2, "mean gradient norm before clipping", log=True)
    name = save(fig, out_dir, "clipping")
    final = c["val_accuracy"][:, :, -1]
    effects = (paired("final val. accuracy, θ = 1 − no clipping", final[2], final[0]),
               paired("final val. accuracy, θ = 10 − no clipping", final[1], final[0]))
    finite_norm = np.where(np.isfinite(c["grad_norm"]), c["grad_norm"], -np.inf)
    peak = np.where(np.isfinite(finite_norm).any(-1), finite_norm.max(-1), np.nan)
    rows = [[label, f"{diverged[i].sum()} of {len(seeds)}",
             f"{np.nanmedian(peak[i]):.3g}" if np.isfinite(peak[i]).any() else "NaN",
             fmt(float(np.nanmean(final[i]))) if np.isfinite(final[i]).any() else "NaN"]
            for i, label in enumerate(labels)]
    verdict = paired_verdict(effects, "The training loss became NaN in "
                                      + ", ".join(f"{diverged[i].sum()} of {len(seeds)} seeds "
                                                  f"{label}" for i, label in
                                                  enumerate(["without clipping", "with θ = 10",
                                                             "with θ = 1"])) + ".")
    return Result("clipping", "Gradient clipping", "If ‖∇L‖ > θ, divide the gradient by its "
                  "norm (θ = 1 or 10): exploding gradients stop wrecking the weights.",
                  f"MLP with 8 ReLU layers of 64 initialised with 1.5× the He standard "
                  f"deviation, SGD+momentum lr 0.05, {epochs} epochs; "
                  f"clip_by_global_norm(θ) with θ = ∞, 10, 1 × {len(seeds)} seeds trained "
                  "together with vmap (each seed: same initial weights and data order for every "
                  "θ). A run whose loss became NaN keeps the accuracy its NaN weights give.",
                  (["", "loss became NaN", "largest mean gradient norm (median over seeds)",
                    "final val. accuracy (mean)"], rows), name, verdict,
                  seeded_rows("clipping", labels, c, seeds),
                  {"val_accuracy": dict(zip(labels, map(float, np.nanmean(final, 1)))),
                   "diverged": dict(zip(labels, map(int, diverged.sum(1)))),
                   "seeds": len(seeds)}, t.seconds, effects=effects, seeds=tuple(seeds))
