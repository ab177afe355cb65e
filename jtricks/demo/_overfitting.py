"""Demo experiments on overfitting: early stopping, L1/L2 decay."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.nn as nn
import jtricks.optim as jo
from jtricks.train import early_stopping as make_early_stopping

from ._common import (Member, Result, Timer, band, band_note, epochs_axis, figure, fmt, pick,
                      save, seeded_rows, seeds_of, train_seeded)
from ._data import noisy_regime, noisy_subset, subset
from ._stats import paired, verdict as paired_verdict


def _log_loss(logits, y):
    """Mean cross-entropy of ``(..., n, classes)`` logits against ``y``, over ``n``."""
    logp = jax.nn.log_softmax(jnp.asarray(logits), -1)
    y = jnp.broadcast_to(jnp.asarray(y), logp.shape[:-1])
    return np.asarray(-jnp.take_along_axis(logp, y[..., None], -1)[..., 0].mean(-1))


def overfitting(data, out_dir, quick, seed=0):
    """Claims 6-7: overfitting shows as diverging train/validation curves; early stopping
    on the validation loss stops near the best epoch.

    The validation split is halved: early stopping watches half A, and the effects are
    measured on half B, which no decision has seen (the epoch chosen on A would flatter
    itself on A)."""
    epochs = pick(quick, 80, 12)
    patience = 5
    small = noisy_subset(data, seed=seed)
    seeds = seeds_of(seed)
    half_a = np.arange(len(data.y_val)) % 2 == 0
    half_b = ~half_a

    def make(_):
        return Member(nn.mlp((512, 512, 10)), jo.adam(1e-3))

    with Timer() as t:
        c = train_seeded(make, jnp.zeros(1), small, data.val, epochs=epochs,
                         eval_train=True, val_logits=True, seeds=seeds)
        logits = c.pop("val_logits")[0]  # (seeds, epochs, n, classes)
        loss_a = _log_loss(logits[:, :, half_a], data.y_val[half_a])  # (seeds, epochs)
        loss_b = _log_loss(logits[:, :, half_b], data.y_val[half_b])
        acc_b = (np.argmax(logits[:, :, half_b], -1) == data.y_val[half_b]).mean(-1)
        stopper = make_early_stopping(patience)

        def run_stopper(values):
            def step(es, value):
                es = stopper.update(value, es, {"dummy": jnp.zeros(())})
                return es, es.stop

            es, stops = jax.lax.scan(step, stopper.init({"dummy": jnp.zeros(())}), values)
            return es.best_epoch, stops

        kept, stops = jax.vmap(run_stopper)(jnp.asarray(loss_a))
    kept = np.asarray(kept)  # 0-based epoch whose parameters early stopping keeps
    stops = np.asarray(stops)
    stop_epoch = np.where(stops.any(1), np.argmax(stops, 1) + 1, 0)  # 0: did not stop
    s_idx = np.arange(len(seeds))
    train_loss = c["train_eval_loss"][0]
    effects = (
        paired("half-B val. loss, end of training − early-stopping epoch", loss_b[:, -1],
               loss_b[s_idx, kept], claim="greater"),
        paired("training loss, end of training − early-stopping epoch", train_loss[:, -1],
               train_loss[s_idx, kept], claim="less", digits=4),
        paired("half-B val. accuracy, early-stopping epoch − end of training",
               acc_b[s_idx, kept], acc_b[:, -1], claim="greater"),
    )
    x = np.arange(1, epochs + 1)
    fig, (a1, a2, a3) = figure(f"Overfitting: MLP 512-512 on {len(small[1])} noisy training "
                               f"digits, Adam lr 1e-3 ({band_note(len(seeds))})", 3, width=5.0)
    band(a1, x, train_loss, "training loss (noisy labels)")
    band(a2, x, loss_a, "validation loss, half A (early stopping watches it)")
    band(a2, x, loss_b, "validation loss, half B (held out)")
    band(a3, x, c["train_eval_accuracy"][0], "training accuracy (noisy labels)")
    band(a3, x, c["val_accuracy"][0], "validation accuracy")
    for ax in (a2, a3):
        ax.axvline(np.median(kept) + 1, color="green", linestyle=":",
                   label=f"early-stopping epoch kept (median; range {kept.min() + 1}–"
                         f"{kept.max() + 1})")
    epochs_axis(a1, "training cross-entropy", log=True)
    epochs_axis(a2, "validation cross-entropy (linear axis)")
    epochs_axis(a3, "accuracy")
    name = save(fig, out_dir, "overfitting")
    stopped = int((stop_epoch > 0).sum())
    rows = [["epoch kept by early stopping (half A), median [range]",
             f"{np.median(kept) + 1:g} [{kept.min() + 1}–{kept.max() + 1}]"],
            ["seeds where early stopping stopped before the end", f"{stopped} of {len(seeds)}"],
            ["half-B val. loss at the kept epoch (mean)", fmt(float(loss_b[s_idx, kept].mean()))],
            [f"half-B val. loss after all {epochs} epochs (mean)", fmt(float(loss_b[:, -1].mean()))],
            ["half-B val. accuracy at the kept epoch (mean)",
             fmt(float(acc_b[s_idx, kept].mean()))],
            [f"half-B val. accuracy after all {epochs} epochs (mean)",
             fmt(float(acc_b[:, -1].mean()))],
            ["final training accuracy (mean)",
             fmt(float(c["train_eval_accuracy"][0, :, -1].mean()))]]
    verdict = paired_verdict(effects, f"Early stopping (patience {patience}) stopped before "
                                      f"epoch {epochs} in {stopped} of {len(seeds)} seeds.")
    return Result("overfitting", "Overfitting and early stopping", "Too many parameters for "
                  "the training samples overfit: training error keeps falling while validation "
                  "error rises. Stop early on the validation error (validated after each "
                  "epoch) and keep the best weights.",
                  f"Regime: {noisy_regime()}: about 300k parameters (MLP 512-512) for "
                  f"{len(small[1])} images, so the network can memorise the wrong labels and "
                  "the validation loss turns up (on all 1258 clean digits it barely moves). "
                  f"Adam lr 1e-3, batch 32, {epochs} epochs, {len(seeds)} seeds in one "
                  "vmapped program. The validation split is halved: jtricks.train.early_stopping"
                  f"(patience={patience}) watches the loss on half A ({int(half_a.sum())} "
                  f"images) and picks the epoch to keep; the effects are measured on half B "
                  f"({int(half_b.sum())} images), which no decision has seen.",
                  (["", "value"], rows), name, verdict,
                  seeded_rows("overfitting", ["MLP"], c, seeds),
                  {"kept_epoch": [int(k) + 1 for k in kept],
                   "stop_epoch": [int(e) or None for e in stop_epoch], "epochs": epochs},
                  t.seconds, effects=effects, seeds=tuple(seeds))


def weight_decay(data, out_dir, quick, seed=0):
    """Claim 6: L2 weight decay favours small weights, L1 sparse ones."""
    epochs = pick(quick, 40, 10)
    small = subset(data, 30, seed)
    configs = [(0.0, 0.0), (0.0, 1e-2), (0.0, 5e-2), (1e-3, 0.0), (5e-3, 0.0)]
    labels = ["none", "L2 0.01", "L2 0.05", "L1 0.001", "L1 0.005"]
    seeds = seeds_of(seed)

    def make(hp):
        l1, l2 = hp[0], hp[1]
        tx = jo.chain(jo.add_l1_decay(l1), jo.add_decayed_weights(l2), jo.sgd(0.05,
                                                                             momentum=0.9))
        return Member(nn.mlp((256, 10)), tx)

    with Timer() as t:
        c = train_seeded(make, jnp.asarray(configs), small, data.val, epochs=epochs,
                         batch_size=30, eval_train=True, seeds=seeds)
    kernels = np.asarray(c["params"]["dense_0"]["kernel"]).reshape(len(configs), len(seeds), -1)
    l2_norm = np.sqrt((kernels ** 2).sum(-1))  # (arms, seeds)
    sparsity = (np.abs(kernels) < 1e-3).mean(-1)
    fig, (a1, a2) = figure(f"L1 / L2 weight decay: MLP 256 on {len(small[1])} training "
                           f"digits, SGD+momentum ({band_note(len(seeds))})", 2)
    x = range(1, epochs + 1)
    for i, label in enumerate(labels):
        band(a1, x, c["val_loss"][i], label)
    epochs_axis(a1, "validation loss", log=True)
    bins = np.linspace(-0.4, 0.4, 81)
    for i in (0, 2, 4):
        a2.hist(kernels[i].ravel(), bins=bins, histtype="step", log=True,
                label=f"{labels[i]} (all {len(seeds)} seeds)")
    a2.set_xlabel("first-layer weight value")
    a2.set_ylabel("count (log)")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    name = save(fig, out_dir, "weight_decay")
    final = c["val_accuracy"][:, :, -1]
    effects = (paired("‖W₁‖₂, L2 0.05 − none", l2_norm[2], l2_norm[0], claim="less", digits=2),
               paired("share of |w| < 1e-3, L1 0.005 − none", sparsity[4], sparsity[0]))
    context = [paired(f"final val. accuracy, {labels[i]} − none", final[i], final[0])
               for i in range(1, len(labels))]
    rows = [[label, fmt(float(c["train_eval_accuracy"][i, :, -1].mean())),
             fmt(float(final[i].mean())),
             "" if i == 0 else context[i - 1].interval(),
             f"{l2_norm[i].mean():.2f}", f"{sparsity[i].mean():.1%}"]
            for i, label in enumerate(labels)]
    verdict = paired_verdict(effects, "Whether decay also helps validation accuracy on these "
                                      f"{len(small[1])} images (claim > 0): "
                                      + "; ".join(f"{e.label.split(', ')[1]} {e.interval()} "
                                                  f"{e.outcome}" for e in context) + ".")
    return Result("weight_decay", "L1 and L2 weight decay", "Explicit regularisation: L2 "
                  "favours small weights, L1 favours sparse ones.",
                  f"MLP with one hidden layer of 256, SGD+momentum lr 0.05, "
                  f"{len(small[1])} training images, {epochs} epochs; "
                  "add_l1_decay / add_decayed_weights chained before the optimizer, all "
                  f"strengths × {len(seeds)} seeds in one vmapped program. Weight norm and "
                  "sparsity are means over seeds.",
                  (["decay", "final train acc. (mean)", "final val. acc. (mean)",
                    "val. acc. − none, mean [95% CI]", "‖W₁‖₂", "|w| < 1e-3"], rows), name,
                  verdict, seeded_rows("weight_decay", labels, c, seeds),
                  {"l2_norm": dict(zip(labels, map(float, l2_norm.mean(1)))),
                   "sparsity": dict(zip(labels, map(float, sparsity.mean(1))))}, t.seconds,
                  effects=effects, seeds=tuple(seeds))
