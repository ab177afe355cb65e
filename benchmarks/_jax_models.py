"""The benchmark models in JAX: each written with flax.linen (as a flax user writes it) and with
jtricks' own layers, the same architecture and the same parameter count in both.

* ``mlp``: the digits MLP of ``jtricks train`` (hidden 256, 128, ReLU, dropout 0.1).
* ``cnn``: ``jtricks.nn.cnn``'s network (conv 16, conv 32, each ReLU + 2x2 max pool; dense 64,
  dropout 0.1; 10 logits).
* ``resnet``: ``jtricks.nn.resnet``'s ResNet (3x3 stem, basic blocks conv-BN-ReLU-conv-BN, 1x1
  strided shortcut where the shape changes, global average pool, dense head).
* ``transformer``: pre-layer-norm blocks ``x + attn(ln(x))``, ``x + mlp(ln(x))`` on a sequence of
  vectors, mean-pooled into 10 logits. jtricks has no attention layer, so the jtricks version
  writes it by hand with ``jtricks.nn.dense``; flax's uses ``flax.linen.dot_product_attention``.

The flax models are unrolled Python loops over their blocks, as flax users write them; the
jtricks models are written as jtricks users write deep stacks: the identical blocks' parameters
stacked on a leading axis and applied with one ``lax.scan`` (``jtricks.nn.stack``,
``jtricks.nn.resnet(scan_blocks=True)``), so they have fewer (stacked) leaves.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

DROPOUT = 0.1


def _linen():
    from jtricks._optional import require

    return require("flax.linen", "jtricks bench's flax models")


def flax_mlp(features: Sequence[int], dropout: float = DROPOUT):
    """The MLP of :func:`jtricks.nn.mlp` (no batch norm) in flax.linen."""
    fnn = _linen()

    class MLP(fnn.Module):  # type: ignore[name-defined]
        @fnn.compact
        def __call__(self, x, *, training):
            x = x.reshape((x.shape[0], -1))
            for width in features[:-1]:
                x = fnn.relu(fnn.Dense(width, kernel_init=fnn.initializers.he_normal())(x))
                x = fnn.Dropout(dropout, deterministic=not training)(x)
            return fnn.Dense(features[-1], kernel_init=fnn.initializers.he_normal())(x)

    return MLP()


def flax_cnn(num_classes: int = 10, channels=(16, 32), dense_features=(64,), dropout=DROPOUT):
    """The CNN of :func:`jtricks.nn.cnn` (no batch norm) in flax.linen."""
    fnn = _linen()

    class CNN(fnn.Module):  # type: ignore[name-defined]
        @fnn.compact
        def __call__(self, x, *, training):
            init = fnn.initializers.he_normal()
            for c in channels:
                x = fnn.relu(fnn.Conv(c, (3, 3), padding="SAME", kernel_init=init)(x))
                x = fnn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
            x = x.reshape((x.shape[0], -1))
            for width in dense_features:
                x = fnn.relu(fnn.Dense(width, kernel_init=init)(x))
                x = fnn.Dropout(dropout, deterministic=not training)(x)
            return fnn.Dense(num_classes, kernel_init=init)(x)

    return CNN()


def flax_resnet(num_classes: int, stage_channels: Sequence[int], blocks_per_stage: int):
    """:func:`jtricks.nn.resnet` (batch norm, no drop path) in flax.linen."""
    fnn = _linen()
    init = fnn.initializers.he_normal()

    class Block(fnn.Module):  # type: ignore[name-defined]
        channels: int
        stride: int

        @fnn.compact
        def __call__(self, x, *, training):
            bn = lambda: fnn.BatchNorm(use_running_average=not training, momentum=0.9,  # noqa: E731
                                       epsilon=1e-5)
            conv = lambda c, k, s: fnn.Conv(c, (k, k), (s, s), padding="SAME",  # noqa: E731
                                            use_bias=False, kernel_init=init)
            y = fnn.relu(bn()(conv(self.channels, 3, self.stride)(x)))
            y = bn()(conv(self.channels, 3, 1)(y))
            if self.stride != 1 or x.shape[-1] != self.channels:
                x = bn()(conv(self.channels, 1, self.stride)(x))
            return fnn.relu(x + y)

    class ResNet(fnn.Module):  # type: ignore[name-defined]
        @fnn.compact
        def __call__(self, x, *, training):
            x = fnn.Conv(stage_channels[0], (3, 3), padding="SAME", use_bias=False,
                         kernel_init=init)(x)
            x = fnn.relu(fnn.BatchNorm(use_running_average=not training, momentum=0.9,
                                       epsilon=1e-5)(x))
            for s, c in enumerate(stage_channels):
                for b in range(blocks_per_stage):
                    x = Block(c, 2 if (s > 0 and b == 0) else 1)(x, training=training)
            return fnn.Dense(num_classes, kernel_init=init)(jnp.mean(x, axis=(1, 2)))

    return ResNet()


def flax_transformer(num_classes: int, width: int, depth: int, heads: int):
    """The transformer stack (see the module's docstring) in flax.linen."""
    fnn = _linen()

    class Block(fnn.Module):  # type: ignore[name-defined]
        @fnn.compact
        def __call__(self, x):
            b, t, _ = x.shape
            q, k, v = jnp.split(fnn.Dense(3 * width)(fnn.LayerNorm()(x)), 3, axis=-1)
            split = lambda a: a.reshape(b, t, heads, width // heads)  # noqa: E731
            a = fnn.dot_product_attention(split(q), split(k), split(v)).reshape(b, t, width)
            x = x + fnn.Dense(width)(a)
            h = fnn.gelu(fnn.Dense(2 * width)(fnn.LayerNorm()(x)))
            return x + fnn.Dense(width)(h)

    class Transformer(fnn.Module):  # type: ignore[name-defined]
        @fnn.compact
        def __call__(self, x, *, training):
            x = fnn.Dense(width)(x)
            for _ in range(depth):
                x = Block()(x)
            return fnn.Dense(num_classes)(jnp.mean(fnn.LayerNorm()(x), axis=1))

    return Transformer()


def jtricks_transformer(num_classes: int, width: int, depth: int, heads: int, *,
                        scan: bool = True):
    """The transformer stack as a :class:`jtricks.nn.Model`, from ``jtricks.nn`` layers.

    Written as a jtricks user writes a deep stack: the block once, repeated with
    :func:`jtricks.nn.stack` (one ``lax.scan`` over the stacked blocks; ``scan=False``
    unrolls them, the same numbers).
    """
    from jtricks import nn

    def block_init(key, input_shape):
        k_qkv, k_out, k_fc0, k_fc1 = jax.random.split(key, 4)
        return {"ln_0": nn.init_layer_norm(width),
                "qkv": nn.init_dense(k_qkv, width, 3 * width),
                "out": nn.init_dense(k_out, width, width),
                "ln_1": nn.init_layer_norm(width),
                "fc_0": nn.init_dense(k_fc0, width, 2 * width),
                "fc_1": nn.init_dense(k_fc1, 2 * width, width)}, {}

    def attention(p, x):
        b, t, _ = x.shape
        q, k, v = jnp.split(nn.dense(p["qkv"], nn.layer_norm(p["ln_0"], x)), 3, axis=-1)
        q, k, v = (a.reshape(b, t, heads, width // heads) for a in (q, k, v))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(width // heads)
        a = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
        return nn.dense(p["out"], a.reshape(b, t, width))

    def block_apply(p, state, x, *, training, key=None, axis_name=None):
        x = x + attention(p, x)
        h = jax.nn.gelu(nn.dense(p["fc_0"], nn.layer_norm(p["ln_1"], x)))
        return x + nn.dense(p["fc_1"], h), state

    blocks = nn.stack(nn.Model(block_init, block_apply), depth, scan=scan)

    def init(key, input_shape):
        seq, d_in = input_shape
        k_embed, k_blocks, k_head = jax.random.split(key, 3)
        block_params, block_state = blocks.init(k_blocks, (seq, width))
        return {"embed": nn.init_dense(k_embed, d_in, width), "blocks": block_params,
                "ln": nn.init_layer_norm(width),
                "head": nn.init_dense(k_head, width, num_classes)}, {"blocks": block_state}

    def apply(params, state, x, *, training, key=None, axis_name=None):
        x = nn.dense(params["embed"], x)
        x, block_state = blocks.apply(params["blocks"], state["blocks"], x, training=training)
        logits = nn.dense(params["head"], jnp.mean(nn.layer_norm(params["ln"], x), axis=1))
        return logits, {"blocks": block_state}

    return nn.Model(init, apply)


def flax_init(model, x, key):
    """``(params, batch_stats)`` of a flax model on a batch like ``x`` (batch_stats may be {})."""
    variables = model.init({"params": key, "dropout": key}, x, training=False)
    return variables["params"], variables.get("batch_stats", {})


def flax_loss(model):
    """``loss(params, stats, batch, dropout_key) -> (loss, new_stats)``, cross-entropy."""
    import optax

    def loss(params, stats, batch, key):
        x, y = batch
        if stats:
            logits, updated = model.apply({"params": params, "batch_stats": stats}, x,
                                          training=True, rngs={"dropout": key},
                                          mutable=["batch_stats"])
            stats = updated["batch_stats"]
        else:
            logits = model.apply({"params": params}, x, training=True, rngs={"dropout": key})
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), stats

    return loss


def flax_train_step(model, tx):
    """The training step a flax + optax user writes: ``step(state, batch) -> (state, loss)``.

    ``state = (params, batch_stats, opt_state, key)``; jit it with ``donate_argnums=0``.
    """
    import optax

    loss_fn = flax_loss(model)

    def step(state, batch):
        params, stats, opt_state, key = state
        key, dropout_key = jax.random.split(key)
        (value, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, stats, batch, dropout_key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), stats, opt_state, key), value

    return step


def flax_grad_step(model):
    """Forward and backward only (no optimizer): ``step(state, batch) -> (state, loss)``."""
    loss_fn = flax_loss(model)

    def step(state, batch):
        params, stats, opt_state, key = state
        (value, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, stats, batch, key)
        norm = sum(jnp.vdot(g, g) for g in jax.tree.leaves(grads))  # keeps every gradient live
        return (params, stats, opt_state, key), value + 0 * norm

    return step


def flax_accuracy(model):
    """``accuracy(params, stats, x, y)`` in inference mode."""

    def accuracy(params, stats, x, y):
        variables = {"params": params, **({"batch_stats": stats} if stats else {})}
        return jnp.mean(jnp.argmax(model.apply(variables, x, training=False), -1) == y)

    return accuracy
