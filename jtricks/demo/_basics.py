"""Demo experiments on the basics: input scaling, initialisation, batch norm, dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.init as ji
import jtricks.nn as nn
import jtricks.optim as jo

from ._common import (_FAST_COMPILE, Result, Member, Timer, band, band_note, curve_rows,
                      epochs_axis, figure, fmt, save, seed_keys, seeded_rows, seeds_of,
                      train_seeded, train_seeded_sweeps, train_sweep, train_sweeps)
from ._stats import paired, verdict as paired_verdict


def scaling(data, out_dir, quick, seed=0):
    """Claim 2: keep values in a reasonable range (min-max to [-1, 1] or standardise)."""
    epochs = 5 if quick else 20
    seeds = seeds_of(seed)
    raw_tr, raw_va = data.raw_train, data.raw_val
    mean, std = raw_tr.mean(), raw_tr.std()
    variants = {
        "raw pixels 0..16": (raw_tr, raw_va),
        "min-max to [-1, 1]": (data.x_train, data.x_val),
        "standardised (mean 0, var 1)": ((raw_tr - mean) / std, (raw_va - mean) / std),
    }
    labels = list(variants)
    xs_tr = np.stack([v[0] for v in variants.values()])
    xs_va = np.stack([v[1] for v in variants.values()])
    ys_tr = np.broadcast_to(data.y_train, (len(labels),) + data.y_train.shape)
    ys_va = np.broadcast_to(data.y_val, (len(labels),) + data.y_val.shape)

    def make(_):
        return Member(nn.mlp((128, 128, 10)), jo.sgd(0.05, momentum=0.9))

    with Timer() as t:
        c = train_seeded(make, jnp.zeros(len(labels)), (xs_tr, ys_tr), (xs_va, ys_va),
                         epochs=epochs, data_per_config=True, seeds=seeds)
    fig, (a1, a2) = figure("Input scaling: SGD+momentum (lr 0.05) on digits "
                           f"({band_note(len(seeds))})", 2)
    for i, label in enumerate(labels):
        band(a1, range(1, epochs + 1), c["train_loss"][i], label)
        band(a2, range(1, epochs + 1), c["val_accuracy"][i], label)
    epochs_axis(a1, "training loss (NaN runs left out)", log=True)
    epochs_axis(a2, "validation accuracy")
    name = save(fig, out_dir, "scaling")
    final = c["val_accuracy"][:, :, -1]  # (inputs, seeds)
    diverged = ~np.isfinite(c["train_loss"]).all(-1)
    effects = tuple(paired(f"final val. accuracy, {labels[i]} − raw", final[i], final[0])
                    for i in (1, 2))
    rows = [[label, f"{diverged[i].sum()} of {len(seeds)}",
             fmt(float(np.nanmean(np.where(diverged[i], np.nan, c["train_loss"][i, :, -1]))))
             if not diverged[i].all() else "NaN",
             fmt(float(final[i].mean())), fmt(float(final[i].std(ddof=1)))]
            for i, label in enumerate(labels)]
    verdict = paired_verdict(effects, "The training loss became NaN in "
                                      + ", ".join(f"{diverged[i].sum()} of {len(seeds)} seeds "
                                                  f"with {label}"
                                                  for i, label in enumerate(labels)) + ".")
    return Result("scaling", "Input scaling", "Keep values in a reasonable range: min-max "
                  "scale to [-1, 1] or standardise, with statistics fitted on training data.",
                  f"MLP 128-128, SGD with momentum 0.9, lr 0.05, {epochs} epochs; three "
                  f"versions of the same inputs × {len(seeds)} seeds in one vmapped program "
                  "(each seed: same initial weights and data order for every version).",
                  (["inputs", "loss became NaN", "final training loss (mean of finite runs)",
                    "final validation accuracy (mean)", "s.d. over seeds"], rows),
                  name, verdict, seeded_rows("scaling", labels, c, seeds),
                  {"val_accuracy": dict(zip(labels, map(float, final.mean(1))))}, t.seconds,
                  effects=effects, seeds=tuple(seeds))


def _activation_stds(inits: dict, activations, depth: int, width: int, keys) -> dict:
    """Std of the activations after each of ``depth`` square layers (no bias) for 256
    N(0, 1) inputs, for every initializer, activation and key (``vmap`` over the keys):
    the forward half of ``jtricks.diagnose.signal_propagation``, compiled once for all of
    them. Returns ``{label: [(keys, depth) per activation]}``."""

    def run(key):
        x = jax.random.normal(jax.random.fold_in(key, depth), (256, width))
        out = {}
        for label, init in inits.items():
            weights = jax.vmap(lambda k: init(k, (width, width)))(jax.random.split(key, depth))
            out[label] = []
            for activation in activations:
                def layer(h, w, activation=activation):
                    h = activation(h @ w)
                    return h, jnp.std(h)

                out[label].append(jax.lax.scan(layer, x, weights)[1])
        return out

    # lax.map, not vmap, over the keys: a batched QR (the orthogonal initializer) of
    # several seeds at once can deadlock XLA's CPU thread pool on a 2-core machine.
    return jax.tree.map(np.asarray, jax.jit(lambda k: jax.lax.map(run, k),
                                            compiler_options=_FAST_COMPILE)(jnp.asarray(keys)))


_INITS = {
    "N(0, 1)": ji.normal(1.0),
    "uniform ±0.05": ji.uniform(0.05),
    "gaussian N(0, 1/n)": ji.gaussian(),
    "Glorot normal": ji.glorot_normal(),
    "He normal": ji.he_normal(),
    "orthogonal": ji.orthogonal(),
    "zeros": ji.zeros,
}


def initializers(data, out_dir, quick, seed=0):
    """Claim 3: initialisation should preserve the spread of values through layers."""
    depth, width = 20, 128
    probe = 10  # the ReLU comparison's layer: N(0, 1) overflows float32 before layer 20
    epochs = 5 if quick else 20
    seeds = seeds_of(seed)
    keys = seed_keys(seeds)
    with Timer() as t:
        signal = _activation_stds({k: v for k, v in _INITS.items() if k != "zeros"},
                                  (jax.nn.relu, jnp.tanh), depth, width, keys)
        # Training: a 6-hidden-layer ReLU MLP, same shape for every initializer, so the
        # initial weights (initializer × seed, arm-major) are stacked and the 7 × seeds
        # runs are one vmapped program.
        labels = list(_INITS)
        model_shape = (64,) * 6 + (10,)
        stacked = jax.jit(lambda: jax.tree.map(lambda *a: jnp.concatenate(a), *[
            jax.lax.map(lambda k, init=init: nn.mlp(model_shape, kernel_init=init).init(
                k, (8, 8, 1)), keys) for init in _INITS.values()]),  # lax.map: see above
            compiler_options=_FAST_COMPILE)()

        def make(_):
            return Member(nn.mlp(model_shape), jo.sgd(0.01, momentum=0.9))

        c = train_seeded(make, jnp.zeros(len(labels)), data.train, data.val, epochs=epochs,
                         init_params=stacked, seeds=seeds)
    fig, (a1, a2, a3) = figure("Weight initialisation: signal through depth and training "
                               f"({band_note(len(seeds))})", 3, width=5.0)
    colors = {label: f"C{i}" for i, label in enumerate(_INITS)}  # same colour per panel
    with np.errstate(all="ignore"):
        for label, (relu, tanh) in signal.items():
            band(a1, range(1, depth + 1), np.log10(relu), label, color=colors[label])
            band(a2, range(1, depth + 1), np.log10(tanh), label, color=colors[label])
    for ax, act in ((a1, "ReLU"), (a2, "tanh")):
        ax.set_xlabel("layer")
        ax.set_ylabel("log10 std of activations (inf not drawn)")
        ax.set_title(f"{depth} {act} layers of width {width}, N(0,1) inputs", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for i, label in enumerate(labels):
        band(a3, range(1, epochs + 1), c["val_accuracy"][i], label, color=colors[label],
             style=":" if label == "zeros" else "-", alpha=0.1)
    a3.set_title("6-layer ReLU MLP, SGD+momentum", fontsize=9)
    epochs_axis(a3, "validation accuracy")
    name = save(fig, out_dir, "initializers")
    acc = dict(zip(labels, c["val_accuracy"][:, :, -1]))  # per seed
    with np.errstate(all="ignore"):
        log_relu = {k: np.log10(v[0]) for k, v in signal.items()}
        log_tanh = {k: np.log10(v[1]) for k, v in signal.items()}
    effects = (
        paired(f"log10 std after {probe} ReLU layers, N(0, 1) − He", log_relu["N(0, 1)"][:, probe - 1],
               log_relu["He normal"][:, probe - 1], digits=2),
        paired(f"log10 std after {depth} tanh layers, Glorot − uniform ±0.05",
               log_tanh["Glorot normal"][:, -1], log_tanh["uniform ±0.05"][:, -1], digits=2),
        paired("final val. accuracy, He − N(0, 1)", acc["He normal"], acc["N(0, 1)"]),
        paired("final val. accuracy, He − zeros", acc["He normal"], acc["zeros"]),
    )
    rows = []
    for label in labels:
        rows.append([label] + ([f"{np.median(signal[label][0][:, probe - 1]):.3g}",
                                f"{np.median(signal[label][0][:, -1]):.3g}",
                                f"{np.median(signal[label][1][:, -1]):.3g}"]
                               if label in signal else ["0", "0", "0"])
                    + [fmt(float(acc[label].mean())), fmt(float(acc[label].std(ddof=1)))])
    glorot = signal["Glorot normal"][1][:, -1]
    verdict = paired_verdict(effects, f"After {depth} tanh layers the Glorot signal's std is "
                                      f"{glorot.min():.3g}–{glorot.max():.3g} over the seeds "
                                      f"(inputs: 1).")
    return Result("initializers", "Weight initialisation", "Initialisation should preserve "
                  "the distribution of values through the layers: N(0, 1) is a bad idea, "
                  "Glorot keeps tanh signals in range, He (×2) suits ReLU; never all zeros.",
                  f"Left and middle: std of the activations of a plain {depth}-layer network "
                  f"(width {width}, no bias, 256 N(0, 1) inputs) for each initializer, "
                  f"{len(seeds)} seeds (weights and inputs), in one vmapped program. Right: a "
                  f"6-hidden-layer ReLU MLP (width 64) trained {epochs} epochs with "
                  "SGD+momentum (lr 0.01) from each initializer × seed (each seed: the same "
                  "data order for every initializer). Stds in the table are medians over seeds.",
                  (["initializer", f"ReLU std at layer {probe}", f"ReLU std at layer {depth}",
                    f"tanh std at layer {depth}", "final val. accuracy (mean)",
                    "s.d. over seeds"], rows),
                  name, verdict, seeded_rows("initializers", labels, c, seeds),
                  {"val_accuracy": {k: float(v.mean()) for k, v in acc.items()},
                   "relu_std_last": {k: float(np.median(v[0][:, -1]))
                                     for k, v in signal.items()}},
                  t.seconds, effects=effects, seeds=tuple(seeds))


def batch_norm(data, out_dir, quick, seed=0):
    """Claim 4: batch norm trains faster and to higher accuracy."""
    epochs = 5 if quick else 20
    seeds = seeds_of(seed)
    early_epoch = min(3, epochs)
    features = (64, 64, 64, 64, 10)
    labels = ("without batch norm", "with batch norm")
    with Timer() as t:
        sweeps = [(lambda _, bn=bn: Member(nn.mlp(features, activation=jax.nn.sigmoid,
                                                 batch_norm=bn), jo.sgd(0.05, momentum=0.9)),
                   jnp.zeros(1)) for bn in (False, True)]
        curves = {label: jax.tree.map(lambda v: v[0], c) for label, c in zip(
            labels, train_seeded_sweeps(sweeps, data.train, data.val, epochs=epochs,
                                        seeds=seeds))}  # (seeds, epochs) each
    fig, (a1, a2) = figure("Batch normalisation: 4 sigmoid layers of 64, SGD+momentum "
                           f"({band_note(len(seeds))})", 2)
    x = range(1, epochs + 1)
    for label, c in curves.items():
        band(a1, x, c["train_loss"], label)
        band(a2, x, c["val_accuracy"], label)
    epochs_axis(a1, "training loss", log=True)
    epochs_axis(a2, "validation accuracy")
    name = save(fig, out_dir, "batch_norm")
    acc = {k: c["val_accuracy"] for k, c in curves.items()}
    effects = (paired(f"val. accuracy after {early_epoch} epochs, with − without batch norm",
                      acc[labels[1]][:, early_epoch - 1], acc[labels[0]][:, early_epoch - 1]),
               paired("final val. accuracy, with − without batch norm", acc[labels[1]][:, -1],
                      acc[labels[0]][:, -1]))
    final = {k: float(v[:, -1].mean()) for k, v in acc.items()}
    early = {k: float(v[:, early_epoch - 1].mean()) for k, v in acc.items()}
    rows = [[k, fmt(early[k]), fmt(final[k]), fmt(float(acc[k][:, -1].std(ddof=1))),
             fmt(float(curves[k]["train_loss"][:, -1].mean()))] for k in curves]
    verdict = paired_verdict(effects)
    rows_metrics = []
    for k, c in curves.items():
        rows_metrics += seeded_rows("batch_norm", [k], {n: v[None] for n, v in c.items()
                                                        if np.ndim(v) == 2}, seeds)
    return Result("batch_norm", "Batch normalisation", "Normalising each mini-batch after the "
                  "weights and before the activation trains faster and reaches higher "
                  "accuracy.",
                  f"MLP with 4 hidden sigmoid layers of 64 units, SGD+momentum (lr 0.05), "
                  f"{epochs} epochs, {len(seeds)} seeds each, with and without batch norm "
                  "(running statistics used for validation), one compiled program; each seed "
                  "gives both the same data order.",
                  (["", f"val. accuracy after {early_epoch} epochs (mean)",
                    "final val. accuracy (mean)", "s.d. over seeds",
                    "final training loss (mean)"], rows),
                  name, verdict, rows_metrics, {"val_accuracy": final, "early": early},
                  t.seconds, effects=effects, seeds=tuple(seeds))


def dropout(data, out_dir, quick, seed=0):
    """Claim 5: dropout (10-50%) as regularisation — the lesson's dropout-rate experiment."""
    epochs = 6 if quick else 30
    rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    seeds = seeds_of(seed)

    def make(rate):
        return Member(nn.mlp((256, 256, 10), dropout=rate), jo.adam(1e-3))

    with Timer() as t:
        c = train_seeded(make, jnp.asarray(rates), data.train, data.val, epochs=epochs,
                         seeds=seeds)
    labels = [f"dropout {r:.1f}" for r in rates]
    fig, (a1, a2) = figure(f"Dropout rates: MLP 256-256, Adam (lr 1e-3), rates × seeds in one "
                           f"vmapped program ({band_note(len(seeds))})", 2)
    x = range(1, epochs + 1)
    for i, label in enumerate(labels):
        band(a1, x, c["val_loss"][i], label, alpha=0.1)
        band(a2, x, c["val_accuracy"][i], label, alpha=0.1)
    epochs_axis(a1, "validation loss", log=True)
    epochs_axis(a2, "validation accuracy")
    name = save(fig, out_dir, "dropout")
    final = c["val_accuracy"][:, :, -1]  # (rates, seeds)
    best_loss = c["val_loss"].min(2)
    n_val = len(data.y_val)
    per_rate = [paired(f"final val. accuracy, dropout {r:.1f} − none", final[i], final[0])
                for i, r in enumerate(rates) if i]
    effects = (paired("final val. accuracy, mean of dropout 0.1–0.5 − none",
                      final[1:].mean(0), final[0]),)
    rows = [[label, fmt(float(final[i].mean())), fmt(float(final[i].std(ddof=1))),
             fmt(float(best_loss[i].mean())), fmt(float(c["train_loss"][i, :, -1].mean())),
             "" if i == 0 else per_rate[i - 1].interval()]
            for i, label in enumerate(labels)]
    spread = float(np.abs(final[1:].mean(0) - final[0]).mean() * n_val)
    verdict = paired_verdict(effects, f"On {n_val} validation images the mean per-seed "
                                      f"difference is {spread:.1f} images in absolute value. "
                                      "Per rate (uncorrected 95% CIs): "
                                      + "; ".join(f"{r:.1f} {e.interval()} {e.outcome}"
                                                  for r, e in zip(rates[1:], per_rate)) + ".")
    return Result("dropout", "Dropout", "Dropout (typically 10-50%) regularises; the lesson's "
                  "notebook reports faster training to higher accuracy with it.",
                  f"MLP 256-256 with dropout after each hidden layer, Adam lr 1e-3, "
                  f"{epochs} epochs; rates 0 to 0.5 × {len(seeds)} seeds trained together with "
                  "jax.vmap (each seed: same initial weights and data order for every rate). "
                  "The verdict tests the claim 'dropout 10–50% helps' as the mean over those "
                  "five rates against no dropout, one comparison; the last column compares each "
                  "rate alone (five comparisons, not corrected for multiplicity).",
                  (["", "final val. accuracy (mean)", "s.d. over seeds", "best val. loss (mean)",
                    "final training loss (mean)", "accuracy − none, mean [95% CI]"], rows),
                  name, verdict, seeded_rows("dropout", labels, c, seeds),
                  {"val_accuracy": dict(zip(labels, map(float, final.mean(1)))),
                   "epochs": epochs}, t.seconds, effects=effects, seeds=tuple(seeds))
