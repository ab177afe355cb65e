"""Demo experiments on overfitting: early stopping, L1/L2 decay, class imbalance,
model averaging."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.data as jd
import jtricks.nn as nn
import jtricks.optim as jo
from jtricks.train import (classifier_loss, early_stopping as make_early_stopping, ema,
                           ensemble_predict)

from ._common import (Result, Member, Timer, band, band_note, curve_rows, epochs_axis, figure,
                      fmt, save, seeded_rows, seeds_of, train_seeded, train_sweep)
from ._stats import paired, verdict as paired_verdict


def _subset(data, per_class: int, seed: int = 0):
    """A small stratified training subset: ``per_class`` examples of every digit."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(data.y_train == c))[:per_class]
                          for c in range(10)])
    return data.x_train[idx], data.y_train[idx]


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
    epochs = 20 if quick else 60
    patience = 5
    small = _subset(data, 10, seed)
    seeds = seeds_of(seed)
    half_a = np.arange(len(data.y_val)) % 2 == 0
    half_b = ~half_a

    def make(_):
        return Member(nn.mlp((512, 512, 10)), jo.adam(3e-3))

    with Timer() as t:
        c = train_seeded(make, jnp.zeros(1), small, data.val, epochs=epochs, batch_size=20,
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
    fig, (a1, a2) = figure(f"Overfitting: MLP 512-512 on {len(small[1])} training digits, "
                           f"Adam lr 3e-3 ({band_note(len(seeds))})", 2)
    band(a1, x, train_loss, "training loss")
    band(a1, x, c["val_loss"][0], "validation loss")
    band(a2, x, c["train_eval_accuracy"][0], "training accuracy")
    band(a2, x, c["val_accuracy"][0], "validation accuracy")
    for ax in (a1, a2):
        ax.axvline(np.median(kept) + 1, color="green", linestyle=":",
                   label=f"early-stopping epoch kept (median; range {kept.min() + 1}–"
                         f"{kept.max() + 1})")
    epochs_axis(a1, "cross-entropy", log=True)
    epochs_axis(a2, "accuracy")
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
                  f"MLP 512-512 (about 300k parameters) on {len(small[1])} training images "
                  f"(10 per digit), Adam lr 3e-3, {epochs} epochs, {len(seeds)} seeds in one "
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
    epochs = 10 if quick else 40
    small = _subset(data, 30, seed)
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


def imbalance(data, out_dir, quick, seed=0):
    """Claim 8: penalise errors on the rare classes more (class weights)."""
    epochs = 8 if quick else 30
    rare = [3, 8]
    keep = 8
    seeds = seeds_of(seed)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([np.flatnonzero(data.y_train == c) if c not in rare else
                          rng.permutation(np.flatnonzero(data.y_train == c))[:keep]
                          for c in range(10)])
    x, y = data.x_train[idx], data.y_train[idx]
    balanced = jd.class_weights(y, 10)
    weights = jnp.stack([jnp.ones(10), balanced])
    labels = ["plain cross-entropy", "class-weighted cross-entropy"]

    def make(w):
        model = nn.mlp((128, 10))
        return Member(model, jo.adam(1e-3), loss_fn=classifier_loss(model, class_weights=w))

    with Timer() as t:
        c = train_seeded(make, weights, (x, y), data.val, epochs=epochs, val_logits=True,
                         seeds=seeds)
    predicted = np.argmax(c.pop("val_logits")[:, :, -1], -1)  # (arms, seeds, n)
    recall = np.stack([(predicted[..., data.y_val == k] == k).mean(-1)
                       for k in range(10)], -1)  # (arms, seeds, classes)
    fig, (a1,) = figure(f"Class imbalance: digits {rare[0]} and {rare[1]} have only {keep} "
                        f"training examples each (bars: mean of {len(seeds)} seeds, "
                        "error bars: ±1 s.d.)", 1, width=8)
    width = 0.38
    for i, label in enumerate(labels):
        a1.bar(np.arange(10) + (i - 0.5) * width, recall[i].mean(0), width,
               yerr=recall[i].std(0, ddof=1), capsize=2, label=label)
    a1.set_xticks(range(10))
    a1.set_xlabel("digit (class)")
    a1.set_ylabel("validation recall")
    a1.set_ylim(0, 1.1)
    a1.legend(fontsize=8, loc="lower left")
    a1.grid(alpha=0.3, axis="y")
    name = save(fig, out_dir, "imbalance")
    rare_recall = recall[:, :, rare].mean(-1)  # (arms, seeds)
    mean_recall = recall.mean(-1)
    effects = (paired(f"mean recall of digits {rare[0]} and {rare[1]}, weighted − plain",
                      rare_recall[1], rare_recall[0]),
               paired("balanced recall (mean over digits), weighted − plain", mean_recall[1],
                      mean_recall[0]))
    rows = [[label, f"{recall[i, :, rare[0]].mean():.2f}", f"{recall[i, :, rare[1]].mean():.2f}",
             f"{mean_recall[i].mean():.3f}", fmt(float(c["val_accuracy"][i, :, -1].mean()))]
            for i, label in enumerate(labels)]
    verdict = paired_verdict(effects)
    return Result("imbalance", "Imbalanced classes", "With imbalanced data, penalise errors "
                  "on the rare class more (class weights), or resample.",
                  f"Training set with all examples of 8 digits but only {keep} of digits "
                  f"{rare[0]} and {rare[1]} ({len(y)} images); MLP 128, Adam lr 1e-3, {epochs} "
                  "epochs; jtricks.data.class_weights (n / (classes · n_c)) in the loss; "
                  f"both losses × {len(seeds)} seeds in one vmapped program. Validation set "
                  "unchanged (balanced). Table: means over seeds.",
                  (["", f"recall of {rare[0]}", f"recall of {rare[1]}", "mean recall",
                    "val. accuracy"], rows), name, verdict,
                  seeded_rows("imbalance", labels, c, seeds,
                              ["train_loss", "val_loss", "val_accuracy"]),
                  {"rare_recall": dict(zip(labels, map(float, rare_recall.mean(1))))},
                  t.seconds, effects=effects, seeds=tuple(seeds))


def averaging(data, out_dir, quick, seed=0):
    """Claim 6: model averaging — an ensemble of independently trained models, and an EMA
    of the weights, against a single model."""
    epochs = 6 if quick else 25
    members = 5
    decay = 0.98
    seeds = seeds_of(seed)

    def make(_):
        model = nn.mlp((128, 10))
        return Member(model, jo.sgd(0.1, momentum=0.9), averager=ema(decay))

    # seed s: one ensemble of ``members`` models with keys fold_in(PRNGKey(s), m)
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), m)
                      for s in seeds for m in range(members)])
    n, shape = len(seeds), (len(seeds), members)
    with Timer() as t:
        c = train_sweep(make, jnp.zeros(n * members), data.train, data.val, epochs=epochs,
                        keys=keys, val_logits=True)
        probs = jax.nn.softmax(jnp.asarray(c.pop("val_logits")).reshape(
            shape + (epochs, len(data.y_val), 10)), -1).mean(1)  # (seeds, epochs, n, 10)
        ensemble = np.asarray(jnp.mean(jnp.argmax(probs, -1) == data.y_val, -1))
        model = nn.mlp((128, 10))
        grouped = jax.tree.map(lambda p: p.reshape(shape + p.shape[1:]), c["params"])
        final_ensemble = np.asarray(jax.vmap(lambda p: jnp.mean(jnp.argmax(ensemble_predict(
            lambda q, x: model.apply(q, {}, x, training=False)[0], p, data.x_val), -1)
            == data.y_val))(grouped))  # (seeds,)
    single = c["val_accuracy"].reshape(shape + (epochs,))  # (seeds, members, epochs)
    avg = c["avg_val_accuracy"].reshape(shape + (epochs,))
    x = np.arange(1, epochs + 1)
    fig, (a1,) = figure(f"Model averaging: ensembles of {members} MLPs (128 units, "
                        f"SGD+momentum lr 0.1) ({band_note(len(seeds))})", 1, width=8)
    band(a1, x, single.mean(1), f"single model (mean of the {members} members)")
    band(a1, x, avg.mean(1), f"EMA of the weights (decay {decay}, mean of members)")
    band(a1, x, ensemble, f"ensemble of {members} (averaged probabilities)")
    epochs_axis(a1, "validation accuracy")
    name = save(fig, out_dir, "averaging")
    single_final = single[:, :, -1].mean(1)  # per seed: the average member
    ema_final = avg[:, :, -1].mean(1)
    effects = (paired(f"final val. accuracy, ensemble of {members} − single model",
                      final_ensemble, single_final),
               paired(f"final val. accuracy, EMA of the weights − raw weights", ema_final,
                      single_final))
    rows = [["single model (mean of members)", fmt(float(single_final.mean())),
             fmt(float(single_final.std(ddof=1)))],
            [f"single model (best member of {members})",
             fmt(float(single[:, :, -1].max(1).mean())),
             fmt(float(single[:, :, -1].max(1).std(ddof=1)))],
            [f"EMA of weights (decay {decay})", fmt(float(ema_final.mean())),
             fmt(float(ema_final.std(ddof=1)))],
            [f"ensemble of {members}", fmt(float(final_ensemble.mean())),
             fmt(float(final_ensemble.std(ddof=1)))]]
    n_val = len(data.y_val)
    verdict = paired_verdict(effects, f"On {n_val} validation images the ensemble's mean gain "
                                      f"is {effects[0].mean * n_val:+.1f} images.")
    return Result("averaging", "Model averaging", "Train several models and average them "
                  "(ensembles), or average the weights along training (EMA / SWA).",
                  f"For each of {len(seeds)} seeds, an ensemble of {members} MLPs with 128 "
                  f"hidden units (keys fold_in(seed, member)), SGD+momentum lr 0.1, {epochs} "
                  f"epochs; all {len(seeds) * members} models trained together with vmap; "
                  f"jtricks.train.ema({decay}) updated every step; "
                  "jtricks.train.ensemble_predict for the ensemble. Each effect compares, per "
                  "seed, the ensemble (or the EMA weights) with the mean of its own members.",
                  (["", "final val. accuracy (mean over seeds)", "s.d. over seeds"], rows),
                  name, verdict,
                  curve_rows("averaging", [f"seed {s} member {m}" for s in seeds
                                           for m in range(members)], c,
                             ["train_loss", "val_loss", "val_accuracy", "avg_val_accuracy"]),
                  {"ensemble": float(final_ensemble.mean()), "single": float(single_final.mean()),
                   "ema": float(ema_final.mean())}, t.seconds, effects=effects,
                  seeds=tuple(seeds))
