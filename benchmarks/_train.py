"""The full training step: a digits MLP with batch norm and dropout, jtricks vs flax + optax."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._measure import interleaved_medians

DROPOUT = 0.1


def _digits(n_batch: int):
    from jtricks.data import load_digits

    images, labels = load_digits()  # raw values 0..16
    x = jnp.asarray(images[:n_batch], jnp.float32) / 16.0
    return x, jnp.asarray(labels[:n_batch], jnp.int32)


def _flax_mlp(features, dropout):
    """The model of :func:`jtricks.nn.mlp` with ``batch_norm=True``, written with flax.linen."""
    from jtricks._optional import require

    fnn = require("flax.linen", "jtricks bench's training step")

    class MLP(fnn.Module):
        @fnn.compact
        def __call__(self, x, *, training):
            x = x.reshape((x.shape[0], -1))
            for width in features[:-1]:
                x = fnn.Dense(width, kernel_init=fnn.initializers.he_normal())(x)
                x = fnn.BatchNorm(use_running_average=not training, momentum=0.9, epsilon=1e-5)(x)
                x = fnn.relu(x)
                x = fnn.Dropout(dropout, deterministic=not training)(x)
            return fnn.Dense(features[-1], kernel_init=fnn.initializers.he_normal())(x)

    return MLP()


def _jtricks_runner(model, params, model_state, tx, batch, *, flat: bool):
    """``jtricks.train.train_step`` on the model; parameters raveled once (``flat``) or a tree."""
    from jtricks.losses import cross_entropy
    from jtricks.optim import ravel
    from jtricks.train import TrainState, train_step

    start, unravel = ravel(params) if flat else (params, lambda tree: tree)

    def loss_fn(train_params, model_state, batch, key):
        xb, yb = batch
        logits, new_state = model.apply(
            unravel(train_params), model_state, xb, training=True, key=key
        )
        return cross_entropy(logits, yb), (new_state, {})

    box = [
        TrainState.create(
            params=jax.tree.map(jnp.copy, start),
            tx=tx,
            key=jax.random.key(1),
            model_state=jax.tree.map(jnp.copy, model_state),
        )
    ]
    step = jax.jit(partial(train_step, loss_fn=loss_fn, tx=tx), donate_argnums=0)

    def run():
        box[0], metrics = step(box[0], batch)
        jax.block_until_ready((box[0], metrics))

    return run


def _flax_runner(features, batch):
    """The same model and Adam with flax + optax, as a flax user writes the step."""
    import optax

    from jtricks.losses import cross_entropy

    x, _ = batch
    key = jax.random.key(0)
    model = _flax_mlp(features, DROPOUT)
    variables = model.init({"params": key, "dropout": key}, x, training=False)
    tx = optax.adam(1e-3)

    def step(state, batch):
        params, stats, opt_state, key = state
        key, dropout_key = jax.random.split(key)
        xb, yb = batch

        def loss(params):
            logits, updated = model.apply(
                {"params": params, "batch_stats": stats},
                xb,
                training=True,
                rngs={"dropout": dropout_key},
                mutable=["batch_stats"],
            )
            return cross_entropy(logits, yb), updated["batch_stats"]

        (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), stats, opt_state, key), value

    jitted = jax.jit(step, donate_argnums=0)
    box = [(variables["params"], variables["batch_stats"], tx.init(variables["params"]), key)]

    def run():
        box[0], value = jitted(box[0], batch)
        jax.block_until_ready((box[0], value))

    return run


def bench_train_step(features, batch_size: int, repeats: int) -> dict:
    """Median time of one training step (forward, backward, Adam, apply) of the digits MLP.

    Three steps are timed in turn: jtricks with flat parameters, jtricks with
    a parameter tree, and flax + optax.
    """
    from jtricks import nn
    from jtricks.optim import adam

    batch = _digits(batch_size)
    model = nn.mlp(features, batch_norm=True, dropout=DROPOUT)
    params, model_state = model.init(jax.random.key(0), batch[0].shape[1:])
    tx = adam(1e-3)
    runs = {
        "flat": _jtricks_runner(model, params, model_state, tx, batch, flat=True),
        "tree": _jtricks_runner(model, params, model_state, tx, batch, flat=False),
        "flax": _flax_runner(features, batch),
    }
    t = interleaved_medians(runs, repeats, warmup=3)
    return dict(
        features=tuple(features),
        batch=batch_size,
        params=int(sum(np.size(leaf) for leaf in jax.tree.leaves(params))),
        leaves=len(jax.tree.leaves(params)),
        flat_ms=1e3 * t["flat"],
        tree_ms=1e3 * t["tree"],
        flax_ms=1e3 * t["flax"],
    )
