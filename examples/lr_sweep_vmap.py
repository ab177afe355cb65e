"""A learning-rate sweep in one compiled program: ``jax.vmap`` over the learning rate.

jtricks hyperparameters may be traced, so the optimizer is built inside the
vmapped function and every learning rate trains at once, without recompiling.

    python examples/lr_sweep_vmap.py [--quick]
"""

import argparse

import jax
import jax.numpy as jnp

import jtricks
from jtricks.train import TrainState, classifier_eval, classifier_loss, evaluate, make_epoch


def main(quick: bool = False):
    images, labels = jtricks.data.load_digits()
    tr, va, _ = jtricks.data.split(jax.random.PRNGKey(0), len(labels), stratify=labels)
    scaler = jtricks.data.minmax_scale(images[tr])
    train, val = (scaler(images[tr]), labels[tr]), (scaler(images[va]), labels[va])
    model = jtricks.nn.mlp((128, 10))
    params, model_state = model.init(jax.random.PRNGKey(1), (8, 8, 1))
    epochs = 3 if quick else 15

    def train_one(learning_rate):
        tx = jtricks.optim.sgd(learning_rate, momentum=0.9)   # learning_rate is a tracer
        state = TrainState.create(params=params, tx=tx, key=2, model_state=model_state)
        epoch = make_epoch(classifier_loss(model), tx, batch_size=32)

        def body(state, e):
            state, _, _ = epoch(state, train, jax.random.fold_in(jax.random.PRNGKey(3), e))
            return state, evaluate(classifier_eval(model), state.params, state.model_state,
                                   val)["accuracy"]

        return jax.lax.scan(body, state, jnp.arange(epochs))[1]

    learning_rates = jnp.logspace(-4, 0, 9)
    curves = jax.jit(jax.vmap(train_one))(learning_rates)    # (9, epochs), one program
    for lr, curve in zip(learning_rates, curves):
        print(f"lr {float(lr):8.5f}: final validation accuracy {float(curve[-1]):.3f}")
    best = int(jnp.argmax(curves[:, -1]))
    print(f"best learning rate: {float(learning_rates[best]):.4g}")
    return learning_rates, curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    main(parser.parse_args().quick)
