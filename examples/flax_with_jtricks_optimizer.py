"""A jtricks optimizer and initializer inside an ordinary flax training loop.

jtricks optimizers are optax-compatible GradientTransformations, so they drop
into ``flax.training.train_state.TrainState``; jtricks initializers work as
flax ``kernel_init``.

    python examples/flax_with_jtricks_optimizer.py [--quick]
"""

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

import jtricks


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(128, kernel_init=jtricks.init.he_normal())(x))
        return nn.Dense(10, kernel_init=jtricks.init.glorot_uniform())(x)


def main(quick: bool = False) -> float:
    images, labels = jtricks.data.load_digits()
    train_idx, val_idx, _ = jtricks.data.split(jax.random.PRNGKey(0), len(labels),
                                               stratify=labels)
    scaler = jtricks.data.minmax_scale(images[train_idx])        # fit on training data only
    x_train, y_train = scaler(images[train_idx]), jnp.asarray(labels[train_idx])
    x_val, y_val = scaler(images[val_idx]), jnp.asarray(labels[val_idx])

    model = MLP()
    tx = jtricks.optim.chain(jtricks.optim.clip_by_global_norm(1.0),
                             jtricks.optim.adam(1e-3))
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(jax.random.PRNGKey(1), x_train[:1]), tx=tx)

    @jax.jit
    def step(state, x, y):
        def loss_fn(params):
            logits = state.apply_fn(params, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    batch = 32
    for epoch in range(1 if quick else 20):
        order = jax.random.permutation(jax.random.PRNGKey(epoch), len(y_train))
        batches = len(order) // batch
        xs = x_train[order[:batches * batch]].reshape(batches, batch, *x_train.shape[1:])
        ys = y_train[order[:batches * batch]].reshape(batches, batch)
        for x, y in zip(xs, ys):
            state, loss = step(state, x, y)
    accuracy = float(jnp.mean(state.apply_fn(state.params, x_val).argmax(-1) == y_val))
    print(f"flax MLP + jtricks adam: validation accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    main(parser.parse_args().quick)
