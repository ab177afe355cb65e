"""Demo experiment: batch, layer and group normalisation in an MLP, at an ordinary and a
tiny batch size (where batch statistics become noisy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.nn as nn
import jtricks.optim as jo

from ._common import (Member, Result, Timer, band, band_note, epochs_axis, figure, fmt, pick,
                      save, seeded_rows, seeds_of, train_seeded)
from ._stats import paired, verdict as paired_verdict

NORMS = {"none": None, "batch norm": "batch", "layer norm": "layer",
         "group norm (4 groups)": "group"}


def norm_mlp(kind, features=(64, 64, 64, 64, 10), *, kinds=None) -> nn.Model:
    """``dense -> [norm] -> relu`` per hidden layer, then the logits.

    ``kind``: ``None``, ``"batch"`` (batch statistics in training, running statistics
    in evaluation), ``"layer"`` (each example over its features) or ``"group"`` (each
    example over 4 groups of features). With ``kinds`` (a tuple of those), ``kind`` is
    a (traced) index into it: the model holds the parameters of every normalisation in
    ``kinds`` and applies the chosen one, so arms with different normalisations share
    one structure and ``vmap`` trains them with one copy of the program (the unchosen
    normalisations get zero gradients and are never used).
    """
    options = (kind,) if kinds is None else tuple(kinds)
    index = 0 if kinds is None else kind

    def init(key, input_shape):
        n_in = int(np.prod(input_shape))
        params, state = {}, {}
        for i, (k, out) in enumerate(zip(jax.random.split(key, len(features)), features)):
            params[f"dense_{i}"] = nn.init_dense(k, n_in, out)
            for o in options if i < len(features) - 1 else ():
                if o == "batch":
                    params[f"batch_{i}"], state[f"batch_{i}"] = nn.init_batch_norm(out)
                elif o is not None:  # scale and bias per feature
                    params[f"{o}_{i}"] = nn.init_group_norm(out)
            n_in = out
        return params, state

    def apply(params, state, x, *, training, key=None, axis_name=None):
        new_state = {}
        x = jnp.reshape(x, (x.shape[0], -1))
        for i in range(len(features) - 1):
            h = nn.dense(params[f"dense_{i}"], x)
            outs = []
            for o in options:
                if o == "batch":
                    y, new_state[f"batch_{i}"] = nn.batch_norm(
                        params[f"batch_{i}"], state[f"batch_{i}"], h, training=training)
                elif o == "layer":
                    y = nn.layer_norm(params[f"layer_{i}"], h)
                elif o == "group":
                    y = nn.group_norm(params[f"group_{i}"], h, 4)
                else:
                    y = h
                outs.append(y)
            x = jax.nn.relu(outs[0] if len(outs) == 1 else
                            jax.lax.select_n(jnp.asarray(index, jnp.int32), *outs))
        return nn.dense(params[f"dense_{len(features) - 1}"], x), new_state

    return nn.Model(init, apply)


def normalization(data, out_dir, quick, seed=0):
    """Claim 4: batch norm and the other normalisations (layer, group); batch norm's
    statistics need a batch, so tiny batches hurt it."""
    # the test-only size trains one epoch: the tiny batch's 314 steps per epoch are most
    # of its cost
    epochs = pick(quick, 12, 2, smoke=1)
    early = min(2, epochs)
    batches = (64, 4)
    seeds = seeds_of(seed)
    labels = list(NORMS)
    lr = {b: 0.05 * b / batches[0] for b in batches}  # the rate scaled with the batch

    def make(index, b):  # one structure for every normalisation: see norm_mlp(kinds=)
        return Member(norm_mlp(index, kinds=tuple(NORMS.values())), jo.sgd(lr[b], momentum=0.9))

    with Timer() as t:
        runs = {}
        for b in batches:
            c = train_seeded(lambda i, b=b: make(i, b), jnp.arange(len(labels)), data.train,
                             data.val,
                             epochs=epochs, batch_size=b, seeds=seeds)
            runs[b] = {label: {n: v[i] for n, v in c.items() if n != "params"}
                       for i, label in enumerate(labels)}  # (seeds, epochs) each
    fig, axes = figure(f"Normalisation in an MLP (4 ReLU layers of 64) on digits, "
                       f"SGD+momentum ({band_note(len(seeds))})", 2)
    x = range(1, epochs + 1)
    for ax, b in zip(axes, batches):
        for label in labels:
            band(ax, x, runs[b][label]["val_accuracy"], label, alpha=0.1)
        ax.set_title(f"batch size {b}, lr {lr[b]:g}", fontsize=9)
        epochs_axis(ax, "validation accuracy")
    name = save(fig, out_dir, "normalization")
    acc = {b: {k: c["val_accuracy"] for k, c in r.items()} for b, r in runs.items()}
    big, tiny = batches
    bn, gn = "batch norm", "group norm (4 groups)"
    effects = (
        paired(f"val. accuracy after {early} epochs at batch {big}, batch norm − none",
               acc[big][bn][:, early - 1], acc[big]["none"][:, early - 1]),
        paired(f"final val. accuracy at batch {tiny}, group norm − batch norm",
               acc[tiny][gn][:, -1], acc[tiny][bn][:, -1]),
        paired(f"batch norm's change from batch {big} to {tiny} − group norm's (final val. "
               "accuracy)", acc[tiny][bn][:, -1] - acc[big][bn][:, -1],
               acc[tiny][gn][:, -1] - acc[big][gn][:, -1], claim="less"))
    rows = [[label] + [fmt(float(acc[b][label][:, i].mean())) for b in batches
                       for i in (early - 1, -1)] +
            [fmt(float(acc[tiny][label][:, -1].std(ddof=1)))] for label in labels]
    verdict = paired_verdict(effects)
    metrics = [dict(row, config=f"batch {b}: {row['config']}") for b, r in runs.items()
               for label, c in r.items()
               for row in seeded_rows("normalization", [label],
                                      {n: v[None] for n, v in c.items() if np.ndim(v) == 2},
                                      seeds)]
    return Result("normalization", "Layer and group normalisation beside batch norm",
                  "Batch normalisation normalises each mini-batch; other normalisations "
                  "(layer, instance, group) normalise each example and do not depend on the "
                  "batch.",
                  f"An MLP with 4 ReLU layers of 64, each normalisation after the weights and "
                  f"before the activation, SGD+momentum 0.9, {epochs} epochs on the digits, "
                  f"at batch {big} (lr {lr[big]:g}) and at batch {tiny} (lr {lr[tiny]:g}: the "
                  f"rate scaled with the batch, so {big // tiny}× more steps of the same "
                  "expected total move); batch norm uses its running statistics for "
                  "validation. Instance "
                  "norm normalises each channel of an image over its positions; an MLP has no "
                  "positions (it would zero every feature), and vmapped convolutions are too "
                  "slow on a CPU for this demo, so it is not compared here "
                  "(jtricks.nn.instance_norm is tested against flax). Four normalisations × "
                  f"{len(seeds)} seeds in one vmapped program per batch size (every arm holds "
                  "the parameters of the four and applies its own); each seed gives every "
                  "arm the same initial weights and data order.",
                  (["", f"after {early} epochs, batch {big}", f"final, batch {big}",
                    f"after {early} epochs, batch {tiny}", f"final, batch {tiny}",
                    f"s.d. over seeds (final, batch {tiny})"], rows),
                  name, verdict, metrics,
                  {"val_accuracy": {f"batch {b}: {k}": float(v[:, -1].mean())
                                    for b in batches for k, v in acc[b].items()}},
                  t.seconds, effects=effects, seeds=tuple(seeds))
