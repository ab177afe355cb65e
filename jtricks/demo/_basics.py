"""Demo experiments on the basics: input scaling, initialisation, batch norm."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.init as ji
import jtricks.nn as nn
import jtricks.optim as jo

from ._common import (Member, Result, Timer, _FAST_COMPILE, band, band_note, epochs_axis,
                      figure, fmt, pick, save, seed_keys, seeded_rows, seeds_of, train_seeded,
                      train_seeded_sweeps)
from ._stats import paired, verdict as paired_verdict


def scaling(data, out_dir, quick, seed=0):
    """Claim 2: keep values in a reasonable range (min-max to [-1, 1] or standardise)."""
    epochs = pick(quick, 20, 3)
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
    """Claim 3: initialisation should preserve the spread of values through layers; the
    verdict is computed per activation (ReLU: He; tanh: Glorot)."""
    depth, width = 20, 128
    epochs = pick(quick, 20, 3)
    seeds = seeds_of(seed)
    keys = seed_keys(seeds)
    acts = {"ReLU": jax.nn.relu, "tanh": jnp.tanh}
    with Timer() as t:
        signal = _activation_stds({k: v for k, v in _INITS.items() if k != "zeros"},
                                  tuple(acts.values()), depth, width, keys)
        # Training: deep MLPs (16 hidden layers: deep enough that Glorot's halving of a
        # ReLU signal per layer matters), ReLU and tanh, same shapes for every initializer,
        # so the initial weights (activation × initializer × seed, arm-major) are stacked
        # and the 2 × 7 × seeds runs are one vmapped program.
        labels = list(_INITS)
        hidden = pick(quick, 16, 16, 6)  # the test-only size checks plumbing: 6 is enough
        model_shape = (64,) * hidden + (10,)
        one = jax.jit(lambda: jax.tree.map(lambda *a: jnp.concatenate(a), *[
            jax.lax.map(lambda k, init=init: nn.mlp(model_shape, kernel_init=init).init(
                k, (8, 8, 1)), keys) for init in _INITS.values()]),  # lax.map: see above
            compiler_options=_FAST_COMPILE)()
        stacked = jax.tree.map(lambda a: jnp.concatenate([a, a]), one)

        def make(act):  # the activation is an arm: 0 ReLU, 1 tanh
            return Member(nn.mlp(model_shape, activation=lambda x: jnp.where(
                act == 0, jax.nn.relu(x), jnp.tanh(x))), jo.sgd(0.01, momentum=0.9))

        arms = jnp.repeat(jnp.arange(2), len(labels))
        c = train_seeded(make, arms, data.train, data.val, epochs=epochs,
                         init_params=stacked, seeds=seeds)
    n = len(labels)
    fig, axes = figure("Weight initialisation: signal through depth and training "
                       f"({band_note(len(seeds))})", 4, width=4.2)
    colors = {label: f"C{i}" for i, label in enumerate(_INITS)}  # same colour per panel
    with np.errstate(all="ignore"):
        for label, stds in signal.items():
            for ax, std in zip(axes[:2], stds):
                band(ax, range(1, depth + 1), np.log10(std), label, color=colors[label])
    for ax, act in zip(axes[:2], acts):
        ax.set_xlabel("layer")
        ax.set_ylabel("log10 std of activations (inf not drawn)")
        ax.set_title(f"{depth} {act} layers of width {width}, N(0,1) inputs", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for j, (ax, act) in enumerate(zip(axes[2:], acts)):
        for i, label in enumerate(labels):
            band(ax, range(1, epochs + 1), c["val_accuracy"][j * n + i], label,
                 color=colors[label], style=":" if label == "zeros" else "-", alpha=0.1)
        ax.set_title(f"{hidden}-hidden-layer {act} MLP, SGD+momentum (NaN runs not drawn)",
                     fontsize=9)
        epochs_axis(ax, "validation accuracy", legend=False)
        if j == 0:  # the only panel with all seven (zeros has no signal to draw)
            ax.legend(fontsize=6)
    name = save(fig, out_dir, "initializers")
    diverged = ~np.isfinite(c["train_loss"]).all(-1)  # (arms, seeds)
    # a run whose loss became NaN has no accuracy (its argmax of NaN logits is class 0)
    final = np.where(diverged, np.nan, c["val_accuracy"][:, :, -1])
    acc = {act: dict(zip(labels, final[j * n:(j + 1) * n])) for j, act in enumerate(acts)}
    # How fast each trains: the mean of its validation-accuracy curve over the epochs (at
    # 16 layers a Glorot ReLU network gets there in the end, several epochs behind He).
    speed = np.where(diverged, np.nan, c["val_accuracy"].mean(-1))
    fast = {act: dict(zip(labels, speed[j * n:(j + 1) * n])) for j, act in enumerate(acts)}
    curve = f"mean val. accuracy over the {epochs} epochs"
    with np.errstate(all="ignore"):
        off = {act: {k: np.abs(np.log10(v[j][:, -1])) for k, v in signal.items()}
               for j, act in enumerate(acts)}  # |log10 std| after the last layer: 0 is ideal
    effects = (
        paired(f"ReLU: |log10 std| after {depth} layers, He − Glorot (0 = signal kept)",
               off["ReLU"]["He normal"], off["ReLU"]["Glorot normal"], claim="less", digits=2),
        paired(f"tanh: |log10 std| after {depth} layers, Glorot − He",
               off["tanh"]["Glorot normal"], off["tanh"]["He normal"], claim="less", digits=2),
        paired(f"ReLU MLP: {curve}, He − Glorot", fast["ReLU"]["He normal"],
               fast["ReLU"]["Glorot normal"]),
        paired(f"tanh MLP: {curve}, Glorot − He", fast["tanh"]["Glorot normal"],
               fast["tanh"]["He normal"]),
        paired("ReLU MLP: final val. accuracy, He − zeros", acc["ReLU"]["He normal"],
               acc["ReLU"]["zeros"]),
    )
    rows = []
    for i, label in enumerate(labels):
        stds = ([f"{np.median(signal[label][j][:, -1]):.3g}" for j in range(2)]
                if label in signal else ["0", "0"])
        cells = []
        for j, act in enumerate(acts):
            a, k = acc[act][label], int(diverged[j * n + i].sum())
            cells.append((fmt(float(np.nanmean(a))) if k < len(seeds) else "NaN")
                         + (f" (NaN in {k} of {len(seeds)})" if k else ""))
        rows.append([label] + stds + cells)
    blew_up = [f"{label} ({act}: {int(diverged[j * n + i].sum())} of {len(seeds)})"
               for j, act in enumerate(acts) for i, label in enumerate(labels)
               if diverged[j * n + i].any()]
    verdict = paired_verdict(effects, "Training loss became NaN for "
                                      + (", ".join(blew_up) or "no initializer")
                                      + "; those runs are left out of the accuracies.")
    return Result("initializers", "Weight initialisation", "Initialisation should preserve "
                  "the distribution of values through the layers: N(0, 1) is a bad idea, "
                  "Glorot keeps tanh signals in range, He (×2) suits ReLU; never all zeros.",
                  f"Left: std of the activations of a plain {depth}-layer network (width "
                  f"{width}, no bias, 256 N(0, 1) inputs) for each initializer, ReLU and tanh, "
                  f"{len(seeds)} seeds (weights and inputs), in one program. Right: "
                  f"{hidden}-hidden-layer MLPs (width 64), ReLU and tanh, trained {epochs} "
                  "epochs with "
                  "SGD+momentum (lr 0.01) from each initializer × seed (each seed: the same "
                  "data order for every arm), in one vmapped program. The verdict compares, "
                  "per activation, the initializer the lesson recommends with the other one: "
                  "the spread kept at depth, and how fast the MLP learns (the mean of its "
                  "validation-accuracy curve over the epochs). "
                  "Stds in the table are medians over seeds.",
                  (["initializer", f"ReLU std at layer {depth}", f"tanh std at layer {depth}",
                    "ReLU MLP final val. accuracy (mean)",
                    "tanh MLP final val. accuracy (mean)"], rows),
                  name, verdict,
                  seeded_rows("initializers", [f"{act}: {label}" for act in acts
                                               for label in labels], c, seeds),
                  {"val_accuracy": {f"{act}: {k}": float(np.nanmean(v)) if np.isfinite(v).any()
                                    else None for act in acts for k, v in acc[act].items()},
                   "relu_std_last": {k: float(np.median(v[0][:, -1]))
                                     for k, v in signal.items()},
                   "diverged": {f"{act}: {label}": int(diverged[j * n + i].sum())
                                for j, act in enumerate(acts)
                                for i, label in enumerate(labels)}},
                  t.seconds, effects=effects, seeds=tuple(seeds))


def batch_norm(data, out_dir, quick, seed=0):
    """Claim 4: batch norm trains faster and to higher accuracy."""
    epochs = pick(quick, 20, 4)
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
