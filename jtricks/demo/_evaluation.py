"""Demo experiment: honest evaluation — the validation set makes every decision, so the
validation score of the chosen configuration is optimistic; the test set, used once at
the end, is not."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jtricks.nn as nn
import jtricks.optim as jo

from ._common import (Member, Result, Timer, figure, fmt, pick, save, seeded_rows, seeds_of,
                      train_seeded)
from ._data import noisy_regime, noisy_subset
from ._stats import mean_band, paired, verdict as paired_verdict

RATES = (3e-4, 1e-3, 3e-3, 1e-2)
DECAYS = (0.0, 1e-3, 1e-2, 1e-1)
PARTITIONS = 64


def select(correct, n_val: int, rng, partitions: int = PARTITIONS) -> dict:
    """Model selection on the validation part of a random partition of the held-out
    examples, repeated over partitions.

    Args:
      correct: ``(configs, epochs, held_out)`` booleans: whether each configuration,
        after each epoch, classifies each held-out example correctly.
      n_val: held-out examples per partition that form the validation part (the rest
        is the test part).
      rng: a NumPy generator (draws the partitions).
      partitions: how many random partitions.

    Returns:
      Means over the partitions: ``val`` and ``test`` (the validation and test
      accuracy of the (configuration, epoch) with the best validation accuracy),
      ``best_test`` (the best test accuracy, i.e. the choice made on the test set) and
      ``chosen`` (``(configs,)``, how often each configuration was chosen).

    Example:
      >>> correct = np.zeros((2, 1, 10), bool)
      >>> correct[1] = True                          # configuration 1 is always right
      >>> out = select(correct, 6, np.random.default_rng(0))
      >>> out["val"], out["test"], out["chosen"].tolist()
      (1.0, 1.0, [0.0, 1.0])
    """
    configs, epochs, n = correct.shape
    flat = correct.reshape(configs * epochs, n).astype(np.float64)
    val, test, best_test = [], [], []
    chosen = np.zeros(configs)
    for _ in range(partitions):
        perm = rng.permutation(n)
        v, t = flat[:, perm[:n_val]].mean(1), flat[:, perm[n_val:]].mean(1)
        best = int(np.argmax(v))
        val.append(v[best])
        test.append(t[best])
        best_test.append(t.max())
        chosen[best // epochs] += 1
    return {"val": float(np.mean(val)), "test": float(np.mean(test)),
            "best_test": float(np.mean(best_test)), "chosen": chosen / partitions}


def evaluation(data, out_dir, quick, seed=0):
    """Claim 7: 70% training, 20% validation for every decision, 10% test used once —
    the validation score of what it chose is optimistic, the test score is not."""
    epochs = pick(quick, 30, 12)
    seeds = seeds_of(seed)
    train = noisy_subset(data, seed=seed)
    configs = [(r, d) for r in RATES for d in DECAYS]
    labels = [f"lr {r:g}, decay {d:g}" for r, d in configs]
    held_out = (np.concatenate([data.x_val, data.x_test]),
                np.concatenate([data.y_val, data.y_test]))
    n_val = len(data.y_val)

    def make(hp):
        return Member(nn.mlp((256, 10)), jo.adamw(hp[0], weight_decay=hp[1]))

    with Timer() as t:
        c = train_seeded(make, jnp.asarray(configs), train, held_out, epochs=epochs,
                         val_logits=True, seeds=seeds)
        logits = c.pop("val_logits")  # (configs, seeds, epochs, held out, classes)
        correct = np.argmax(logits, -1) == held_out[1]
        rng = np.random.default_rng(seed)
        picks = [select(correct[:, s], n_val, rng) for s in range(len(seeds))]
    val, test, best_test = (np.array([p[k] for p in picks]) for k in ("val", "test",
                                                                        "best_test"))
    chosen = np.mean([p["chosen"] for p in picks], 0)
    effects = (
        paired("accuracy of the chosen configuration, validation − test", val, test),
        paired("test accuracy, chosen on the test set − chosen on validation", best_test, test),
    )
    final = correct[:, :, -1].mean(-1)  # (configs, seeds): after the last epoch, all held out
    fig, (a1, a2) = figure(f"Honest evaluation: {len(configs)} configurations × {epochs} "
                           f"epochs chosen on validation ({len(seeds)} seeds)", 2)
    grid = final.mean(1).reshape(len(RATES), len(DECAYS))
    image = a1.imshow(grid, cmap="viridis", aspect="auto")
    a1.set_xticks(range(len(DECAYS)), [f"{d:g}" for d in DECAYS])
    a1.set_yticks(range(len(RATES)), [f"{r:g}" for r in RATES])
    a1.set_xlabel("AdamW weight decay")
    a1.set_ylabel("learning rate")
    a1.set_title("held-out accuracy after the last epoch (mean of seeds); "
                 "×: share of choices", fontsize=8)
    fig.colorbar(image, ax=a1)
    for i, share in enumerate(chosen):
        if share > 0:
            a1.text(i % len(DECAYS), i // len(DECAYS), f"×{share:.0%}", ha="center",
                    va="center", color="white", fontsize=8)
    names = ["validation (chose it)", "test (used once)", "test, if it had chosen"]
    values = [val, test, best_test]
    for i, v in enumerate(values):
        m, lo, hi = (float(a) for a in mean_band(v))
        a2.bar(i, m, yerr=[[m - lo], [hi - m]], capsize=4, color=f"C{i}")
        a2.plot(np.full(len(seeds), i), v, "k.", alpha=0.5)
    for s in range(len(seeds)):
        a2.plot(range(3), [val[s], test[s], best_test[s]], color="grey", alpha=0.3,
                linewidth=0.8)
    a2.set_xticks(range(3), names, fontsize=8)
    a2.set_ylim(min(v.min() for v in values) - 0.03, max(v.max() for v in values) + 0.02)
    a2.set_ylabel("accuracy of the chosen configuration")
    a2.set_title("bars: mean ± 1 s.d. over seeds; dots and lines: one seed", fontsize=8)
    a2.grid(alpha=0.3, axis="y")
    name = save(fig, out_dir, "evaluation")
    rows = [[names[i], fmt(float(v.mean())), fmt(float(v.std(ddof=1)))]
            for i, v in enumerate(values)]
    rows.append(["the same, best single configuration after its last epoch (mean)",
                 fmt(float(final.max(0).mean())), fmt(float(final.max(0).std(ddof=1)))])
    top = int(np.argmax(chosen))
    verdict = paired_verdict(effects, f"Validation accuracy of the choice overstates its "
                                      f"test accuracy by {effects[0].mean * n_val:+.1f} of "
                                      f"{n_val} validation images on average; the most "
                                      f"chosen configuration is {labels[top]} "
                                      f"({chosen[top]:.0%} of the choices).")
    return Result("evaluation", "Honest evaluation: validation for decisions, test once",
                  "About 70% training, 20% validation (used for every decision, validated "
                  "after each epoch), 10% test used exactly once at the end.",
                  f"Regime: {noisy_regime()}, where configurations differ and noise is large. "
                  f"MLP 256 with AdamW, {len(configs)} configurations (learning rate "
                  f"{', '.join(f'{r:g}' for r in RATES)} × decoupled weight decay "
                  f"{', '.join(f'{d:g}' for d in DECAYS)}) × {len(seeds)} seeds in one "
                  f"vmapped program, {epochs} epochs, batch 32. The decision: the "
                  f"(configuration, epoch) pair of highest validation accuracy among "
                  f"{len(configs) * epochs}. The 70/20/10 split's validation ({n_val}) and test "
                  f"({len(data.y_test)}) images are pooled and, for each seed, re-drawn "
                  f"{PARTITIONS} times at the same sizes; each effect is the mean over these "
                  "partitions, so every seed is an independent replicate of the whole "
                  "procedure (a fixed split's val./test difficulty would otherwise be "
                  "shared by all seeds). No configuration is trained on the held-out images.",
                  (["accuracy of the chosen configuration on", "mean", "s.d. over seeds"],
                   rows), name, verdict,
                  seeded_rows("evaluation", labels, c, seeds, keys=["train_loss"]),
                  {"val": float(val.mean()), "test": float(test.mean()),
                   "best_test": float(best_test.mean()),
                   "chosen": dict(zip(labels, map(float, chosen))), "epochs": epochs},
                  t.seconds, effects=effects, seeds=tuple(seeds))
