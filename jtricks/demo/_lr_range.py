"""Demo experiment: choosing the learning rate with a range test, checked against a grid."""

from __future__ import annotations

from typing import Sequence, cast

import jax.numpy as jnp
import numpy as np

import jtricks.nn as nn
import jtricks.optim as jo
from jtricks.sweep import Member, lr_range_test

from ._common import (Result, Timer, pick, band, band_note, figure, fmt, save,
                      seed_keys, seeded_rows, seeds_of, train_sweep)
from ._stats import paired, verdict as paired_verdict

RANGE_RATES = np.geomspace(1e-4, 3.0, 14)  # the range test: 3 rates per decade, 1 epoch each
GRID_RATES = np.geomspace(1e-3, 1.0, 7)  # the grid search: full trainings
DEFAULT_RATE = 0.01  # SGD's customary default (Keras, the PyTorch examples)
MARGIN = 0.01  # non-inferiority margin on validation accuracy


def build(h):
    """MLP 128-64 with SGD + momentum 0.9 at the (traced) rate: a rate-sensitive optimizer."""
    return Member(nn.mlp((128, 64, 10)), jo.sgd(h["learning_rate"], momentum=0.9))


def learning_rate(data, out_dir, quick, seed=0):
    """Choosing the learning rate: a one-epoch range test over 14 rates (one program per
    seed) against a grid of full trainings."""
    epochs = pick(quick, 20, 3)
    seeds = seeds_of(seed)
    keys = seed_keys(seeds)
    with Timer() as t_range:  # one compiled program, run once per seed
        tests = [lr_range_test(build, data.train, data.val, key=k,
                               learning_rates=cast(Sequence[float], RANGE_RATES),
                               epochs=1) for k in keys]
    suggested = np.array([r.suggestion for r in tests])  # (seeds,)
    # The grid and the suggested rates, every seed, trained together: arm-major configs.
    rates = np.concatenate([np.repeat(GRID_RATES, len(seeds)),
                            np.nan_to_num(suggested, nan=DEFAULT_RATE)])
    with Timer() as t_grid:
        c = train_sweep(lambda lr: build({"learning_rate": lr}), jnp.asarray(rates, jnp.float32),
                        data.train, data.val, epochs=epochs,
                        keys=np.tile(keys, (len(GRID_RATES) + 1, 1)))
    c = {k: np.reshape(v, (len(GRID_RATES) + 1, len(seeds)) + np.shape(v)[1:])
         for k, v in c.items() if k != "params"}
    final = c["val_accuracy"][:, :, -1]  # (arms, seeds); the last arm is the suggestion
    mean = np.nanmean(final[:-1], axis=1)
    best = int(np.nanargmax(mean))
    # The claim is non-inferiority to the grid's best; the suggestion against each grid
    # rate (the default 0.01 among them) is in the table's last column.
    effects = (
        paired(f"final val. accuracy, suggested + {MARGIN:g} − best grid rate "
               "(non-inferiority)", final[-1] + MARGIN, final[best]),
    )

    fig, (a1, a2) = figure(f"Choosing the learning rate: MLP 128-64, SGD+momentum 0.9 "
                           f"({band_note(len(seeds))})", 2)
    losses = np.stack([r.losses for r in tests])
    band(a1, RANGE_RATES, np.where(np.isfinite(losses), losses, np.nan),
         "val. loss after 1 epoch")
    a1.axhline(np.mean([r.initial_loss for r in tests]), color="gray", linestyle=":",
               label="untrained")
    for i, s in enumerate(suggested):
        a1.axvline(s, color="green", alpha=0.4, label="suggested (one line per seed)"
                   if i == 0 else None)
    band(a2, GRID_RATES, final[:-1].T, f"grid, {epochs} epochs at each rate")
    centre = float(np.exp(np.nanmean(np.log(suggested))))
    a2.errorbar([centre], [np.nanmean(final[-1])],
                xerr=[[centre - np.nanmin(suggested)], [np.nanmax(suggested) - centre]],
                yerr=[[np.nanstd(final[-1], ddof=1)]] * 2, fmt="o", color="green",
                label="suggested rate (range over seeds)")
    learned = mean > 2.0 / data.num_classes  # the others ended at chance: axis on the rest
    low = float(np.nanmin(mean[learned])) if learned.any() else 0.0
    a2.set_ylim(max(0.0, low - 0.05), 1.0)
    if (~learned).any():
        a2.plot(GRID_RATES[~learned], np.full((~learned).sum(), max(0.0, low - 0.04)), "x",
                color="red", label="ended at chance level (diverged)")
    for ax, ylabel in ((a1, "validation loss after 1 epoch"),
                       (a2, f"val. accuracy after {epochs} epochs")):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    a1.set_yscale("log")
    name = save(fig, out_dir, "learning_rate")

    labels = [f"grid {r:.3g}" for r in GRID_RATES] + ["suggested"]
    rows = [[label, fmt(float(np.nanmean(final[i]))), fmt(float(np.nanstd(final[i], ddof=1))),
             "" if i == len(GRID_RATES) else
             paired("", final[-1], final[i]).interval()]
            for i, label in enumerate(labels)]
    members_range, members_grid = len(RANGE_RATES) + 1, len(GRID_RATES)
    detail = (f"Suggested rates over the {len(seeds)} seeds: {np.nanmin(suggested):.3g} to "
              f"{np.nanmax(suggested):.3g} (grid best by mean accuracy: "
              f"{GRID_RATES[best]:.3g}). The range test cost {members_range} × 1 = "
              f"{members_range} epochs per seed ({t_range.seconds:.1f} s in all), the grid "
              f"{members_grid} × {epochs} = {members_grid * epochs}.")
    return Result(
        "learning_rate", "Choosing the learning rate",
        "A short learning-rate range test (Smith 2017) picks a rate that trains about as well "
        "as the best rate of a full grid search, for a fraction of its cost.",
        f"MLP 128-64, SGD+momentum 0.9, batch 32. Range test "
        f"(jtricks.sweep.lr_range_test): {len(RANGE_RATES)} rates from {RANGE_RATES[0]:g} to "
        f"{RANGE_RATES[-1]:g} and the rate 0, one epoch each, one program; suggested rate = "
        "geometric middle of the valley of rates within 5% of the largest loss drop. Then "
        f"{epochs} epochs at each of {len(GRID_RATES)} grid rates ({GRID_RATES[0]:g}–"
        f"{GRID_RATES[-1]:g}) and at the suggested rate, × {len(seeds)} seeds in one program "
        "(each seed: same initial weights and data order for every rate). The suggestion is "
        f"non-inferior when the 95% interval of (suggested − best) lies above −{MARGIN:g}.",
        (["rate", f"final val. accuracy (mean of {len(seeds)})", "s.d. over seeds",
          "suggested − this, mean [95% CI]"], rows),
        name, paired_verdict(effects, detail),
        seeded_rows("learning_rate", labels, c, seeds),
        {"suggested": [float(s) for s in suggested], "best_grid_rate": float(GRID_RATES[best]),
         "val_accuracy": dict(zip(labels, map(float, np.nanmean(final, 1))))},
        t_range.seconds + t_grid.seconds, effects=effects, seeds=tuple(seeds))
