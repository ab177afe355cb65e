"""Demo experiment: architecture — a deep plain network against the same depth with skip
connections, and dropping whole layers (stochastic depth), which needs them.

:func:`deep_mlp` is one model for a plain and a residual network of any depth, with
stochastic depth, compiled once whatever the depth (:func:`jtricks.nn.stack`); the
gradients experiment uses it too."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import jtricks.init as ji
import jtricks.nn as nn
import jtricks.optim as jo

from ._common import (Member, Result, Timer, band, band_note, epochs_axis, figure, fmt, pick,
                      save, seeded_rows, seeds_of, train_seeded)
from ._data import noisy_regime, noisy_subset
from ._stats import paired, verdict as paired_verdict


def deep_mlp(num_classes: int, *, width: int, depth: int, activation=jax.nn.relu,
             kernel_init=ji.he_normal(), skip=0.0, drop_path=0.0,
             norm: bool = False) -> nn.Model:
    """``dense`` to ``width`` and ``activation``, ``depth - 1`` blocks ``x -> skip · x +
    drop_path(activation(dense([layer_norm](x))))``, then [``layer_norm``] and ``dense``
    to the logits.

    ``skip`` 0 is a plain network of ``depth`` hidden layers, 1 a residual one (the
    library's pre-norm :func:`jtricks.nn.residual_block` when ``norm``, with drop path
    instead of dropout); ``skip`` and ``drop_path`` may be traced, so plain and
    residual arms share one structure and ``vmap`` trains them in one program.

    Example:
      >>> model = deep_mlp(10, width=8, depth=5, skip=1.0)
      >>> params, state = model.init(jax.random.key(0), (8, 8, 1))
      >>> params["blocks"]["dense"]["kernel"].shape  # the 4 blocks stacked
      (4, 8, 8)
      >>> model.apply(params, state, jnp.ones((2, 8, 8, 1)), training=False)[0].shape
      (2, 10)
    """

    def block_init(key, input_shape):
        params = {"dense": nn.init_dense(key, width, width, kernel_init=kernel_init)}
        if norm:
            params["norm"] = nn.init_layer_norm(width)
        return params, {}

    def block_apply(params, state, x, *, training, key=None, axis_name=None):
        h = nn.layer_norm(params["norm"], x) if norm else x
        branch = activation(nn.dense(params["dense"], h))
        branch = nn.drop_path(key, branch, drop_path, training=training)
        return skip * x + branch, {}

    blocks = nn.stack(nn.Model(block_init, block_apply), depth - 1)

    def init(key, input_shape):
        k_stem, k_blocks, k_head = jax.random.split(key, 3)
        n_in = 1
        for d in input_shape:
            n_in *= d
        block_params, block_state = blocks.init(k_blocks, (width,))
        return ({"stem": nn.init_dense(k_stem, n_in, width, kernel_init=kernel_init),
                 "blocks": block_params,
                 "head": nn.init_dense(k_head, width, num_classes, kernel_init=kernel_init),
                 **({"norm": nn.init_layer_norm(width)} if norm else {})},
                {"blocks": block_state})

    def apply(params, state, x, *, training, key=None, axis_name=None):
        x = activation(nn.dense(params["stem"], jnp.reshape(x, (x.shape[0], -1))))
        x, block_state = blocks.apply(params["blocks"], state["blocks"], x,
                                      training=training, key=key, axis_name=axis_name)
        if norm:
            x = nn.layer_norm(params["norm"], x)
        return nn.dense(params["head"], x), {"blocks": block_state}

    return nn.Model(init, apply)


def layer_kernels(params) -> list:
    """The kernels of :func:`deep_mlp`'s ``depth + 1`` layers, first to last."""
    stacked = params["blocks"]["dense"]["kernel"]
    return ([params["stem"]["kernel"]] + [stacked[i] for i in range(stacked.shape[0])]
            + [params["head"]["kernel"]])


def architecture(data, out_dir, quick, seed=0):
    """Claims 12 and 6: at depth, skip connections let a network train where the same
    plain stack stalls; dropping whole residual blocks (stochastic depth, which needs the
    skip connections) regularises on few noisy labels."""
    epochs = pick(quick, 20, 12)  # drop path pays once the network memorises (~10 epochs)
    depth, width, rate = 20, 64, 0.2
    early = max(1, epochs // 4)
    seeds = seeds_of(seed)
    train = noisy_subset(data, seed=seed)
    labels = [f"plain, {depth} layers", f"residual, {depth} layers",
              f"residual + drop path {rate}"]
    arms = jnp.asarray([(0.0, 0.0), (1.0, 0.0), (1.0, rate)])  # (skip, drop path)

    def make(hp):
        return Member(deep_mlp(10, width=width, depth=depth, skip=hp[0], drop_path=hp[1],
                               norm=True), jo.adam(1e-3))

    with Timer() as t:
        c = train_seeded(make, arms, train, data.val, epochs=epochs, seeds=seeds)
    loss, acc = c["train_loss"], c["val_accuracy"]  # (arms, seeds, epochs)
    final, final_loss = acc[:, :, -1], c["val_loss"][:, :, -1]
    plain, res, dp = range(3)
    effects = (
        paired(f"training loss after {early} epochs, plain − residual", loss[plain, :, early - 1],
               loss[res, :, early - 1]),
        paired("final val. accuracy, residual − plain", final[res], final[plain]),
        paired(f"final val. accuracy, drop path {rate} − none (residual)", final[dp],
               final[res]),
        paired(f"final val. loss, drop path {rate} − none (residual)", final_loss[dp],
               final_loss[res], claim="less"),
    )
    fig, (a1, a2) = figure(f"Depth {depth}, width {width}: plain against residual, and drop "
                           f"path, Adam lr 1e-3 ({band_note(len(seeds))})", 2)
    x = range(1, epochs + 1)
    for i, label in enumerate(labels):
        band(a1, x, loss[i], label)
        band(a2, x, acc[i], label)
    epochs_axis(a1, "training loss (noisy labels; drop path on)", log=True)
    epochs_axis(a2, "validation accuracy")
    name = save(fig, out_dir, "architecture")
    rows = [[label, fmt(float(loss[i, :, early - 1].mean())), fmt(float(loss[i, :, -1].mean())),
             fmt(float(final[i].mean())), fmt(float(final[i].std(ddof=1))),
             fmt(float(final_loss[i].mean()))] for i, label in enumerate(labels)]
    n_val = len(data.y_val)
    verdict = paired_verdict(effects, f"On {n_val} validation images, drop path changes the "
                                      f"residual network's final accuracy by "
                                      f"{effects[2].mean * n_val:+.1f} images and the skip "
                                      f"connections by {effects[1].mean * n_val:+.1f}.")
    return Result("architecture", "Architecture: skip connections and dropping whole layers",
                  "Pick an architecture proven on similar tasks: ResNet-style skip connections "
                  "keep a deep network trainable; dropping whole layers (stochastic depth) "
                  "prevents overfitting and needs the skip connections.",
                  f"Regime: {noisy_regime()}. The same {depth}-layer network of width {width} "
                  "(each layer: layer norm, dense, ReLU; He initialisation) without and with a "
                  "skip connection around every layer after the first, and the residual one "
                  f"with drop path {rate} (each block's branch dropped for a whole example with "
                  f"probability {rate} in training, jtricks.nn.drop_path); blocks stacked with "
                  f"jtricks.nn.stack. Adam lr 1e-3, batch 32, {epochs} epochs; the three arms "
                  f"× {len(seeds)} seeds in one vmapped program (each seed: the same initial "
                  "weights and data order for every arm). Training loss: the mean over each "
                  "epoch's batches, on the noisy labels, with drop path on where it is used.",
                  (["", f"training loss after {early} epochs", "final training loss",
                    "final val. accuracy (mean)", "s.d. over seeds", "final val. loss"], rows),
                  name, verdict, seeded_rows("architecture", labels, c, seeds),
                  {"val_accuracy": dict(zip(labels, map(float, final.mean(1)))),
                   "train_loss": dict(zip(labels, map(float, loss[:, :, -1].mean(1)))),
                   "epochs": epochs}, t.seconds, effects=effects, seeds=tuple(seeds))
