"""Demo experiment: imbalanced classes — class weights, oversampling, undersampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.data as jd
import jtricks.nn as nn
import jtricks.optim as jo
from jtricks.train import classifier_loss

from ._common import (Member, Result, Timer, figure, fmt, pick, save, seeded_rows, seeds_of,
                      train_seeded)
from ._stats import paired, verdict as paired_verdict


def imbalance(data, out_dir, quick, seed=0):
    """Claim 8: penalise errors on the rare classes more (class weights), or undersample
    the large classes / oversample the small ones."""
    epochs = pick(quick, 30, 8)
    rare = [3, 8]
    keep = 8
    seeds = seeds_of(seed)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([np.flatnonzero(data.y_train == c) if c not in rare else
                          rng.permutation(np.flatnonzero(data.y_train == c))[:keep]
                          for c in range(10)])
    x, y = data.x_train[idx], data.y_train[idx]
    n = len(y)
    key = jax.random.PRNGKey(seed)
    over = np.asarray(jd.oversample(key, y, 10))
    under = np.asarray(jd.undersample(key, y, 10))
    # Every arm takes the same number of steps: an epoch is len(over) examples; the
    # imbalanced set is topped up with a random draw of its own examples, the
    # undersampled set (10 · keep images) repeated.
    steps = len(over)
    top_up = rng.choice(n, steps - n, replace=False)
    plain = np.concatenate([np.arange(n), top_up])
    sets = [plain, plain, over, np.resize(under, steps)]
    labels = ["plain cross-entropy", "class-weighted cross-entropy", "oversampled rare digits",
              "undersampled other digits"]
    balanced = jd.class_weights(y, 10)
    weights = jnp.stack([jnp.ones(10), balanced, jnp.ones(10), jnp.ones(10)])
    xs, ys = np.stack([x[s] for s in sets]), np.stack([y[s] for s in sets])
    ys_va = np.broadcast_to(data.y_val, (len(labels),) + data.y_val.shape)
    xs_va = np.broadcast_to(data.x_val, (len(labels),) + data.x_val.shape)

    def make(w):
        model = nn.mlp((128, 10))
        return Member(model, jo.adam(1e-3), loss_fn=classifier_loss(model, class_weights=w))

    with Timer() as t:
        c = train_seeded(make, weights, (xs, ys), (xs_va, ys_va), epochs=epochs,
                         val_logits=True, data_per_config=True, seeds=seeds)
    predicted = np.argmax(c.pop("val_logits")[:, :, -1], -1)  # (arms, seeds, n)
    recall = np.stack([(predicted[..., data.y_val == k] == k).mean(-1)
                       for k in range(10)], -1)  # (arms, seeds, classes)
    fig, (a1,) = figure(f"Class imbalance: digits {rare[0]} and {rare[1]} have only {keep} "
                        f"training examples each (bars: mean of {len(seeds)} seeds, "
                        "error bars: ±1 s.d.)", 1, width=9)
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        a1.bar(np.arange(10) + (i - (len(labels) - 1) / 2) * width, recall[i].mean(0), width,
               yerr=recall[i].std(0, ddof=1), capsize=2, label=label)
    a1.set_xticks(range(10))
    a1.set_xlabel("digit (class)")
    a1.set_ylabel("validation recall")
    a1.set_ylim(0, 1.1)
    a1.legend(fontsize=8, loc="lower left")
    a1.grid(alpha=0.3, axis="y")
    name = save(fig, out_dir, "imbalance")
    rare_recall = recall[:, :, rare].mean(-1)  # (arms, seeds)
    mean_recall = recall.mean(-1)  # balanced recall: the mean over the ten digits
    effects = tuple(paired(f"recall of digits {rare[0]} and {rare[1]}, {labels[i]} − plain",
                           rare_recall[i], rare_recall[0]) for i in (1, 2, 3))
    balanced_effects = [paired(f"balanced recall, {labels[i]} − plain", mean_recall[i],
                               mean_recall[0]) for i in (1, 2, 3)]
    rows = [[label, str(len(np.unique(sets[i]))), f"{recall[i, :, rare[0]].mean():.2f}",
             f"{recall[i, :, rare[1]].mean():.2f}",
             fmt(float(mean_recall[i].mean())),
             "" if i == 0 else balanced_effects[i - 1].interval()]
            for i, label in enumerate(labels)]
    verdict = paired_verdict(effects, "Balanced recall (the mean recall over the ten digits, "
                                      "claim > 0): " + "; ".join(
                                          f"{labels[i + 1]} {e.interval()} {e.outcome}"
                                          for i, e in enumerate(balanced_effects)) + ".")
    return Result("imbalance", "Imbalanced classes", "With imbalanced data, penalise errors "
                  "on the rare class more (class weights), or undersample the large classes / "
                  "oversample the small ones.",
                  f"Training set with all examples of 8 digits but only {keep} of digits "
                  f"{rare[0]} and {rare[1]} ({n} images); MLP 128, Adam lr 1e-3, {epochs} "
                  f"epochs of {steps} examples for every arm (the same steps; the plain and "
                  f"weighted arms see their {n} images plus {steps - n} drawn again). Class "
                  "weights: "
                  "jtricks.data.class_weights (n / (classes · n_c)) in the loss; oversampling: "
                  "jtricks.data.oversample (every image once, the rare digits repeated up to the "
                  "size of the largest class); undersampling: "
                  f"jtricks.data.undersample ({keep} images of every digit, {10 * keep} in all, "
                  f"repeated to {steps} per epoch). All arms × {len(seeds)} seeds in one vmapped "
                  "program (each seed: same initial weights for every arm). Validation set "
                  "unchanged (balanced). Table: means over seeds.",
                  (["", "distinct training images", f"recall of {rare[0]}",
                    f"recall of {rare[1]}", "balanced recall (mean over digits)",
                    "balanced recall − plain, mean [95% CI]"], rows), name, verdict,
                  seeded_rows("imbalance", labels, c, seeds,
                              ["train_loss", "val_loss", "val_accuracy"]),
                  {"rare_recall": dict(zip(labels, map(float, rare_recall.mean(1))))},
                  t.seconds, effects=effects, seeds=tuple(seeds))
