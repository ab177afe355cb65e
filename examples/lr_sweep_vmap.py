"""A learning-rate sweep in one compiled program: ``jax.vmap`` over the learning rate.

jtricks hyperparameters may be traced, so ``jtricks.sweep.train`` builds the
optimizer inside the vmapped engine and every learning rate trains at once,
without recompiling.

    python examples/lr_sweep_vmap.py [--quick]
"""

import argparse

import jax
import jax.numpy as jnp

import jtricks


def main(quick: bool = False):
    images, labels = jtricks.data.load_digits()
    tr, va, _ = jtricks.data.split(jax.random.PRNGKey(0), len(labels), stratify=labels)
    scaler = jtricks.data.minmax_scale(images[tr])
    train, val = (scaler(images[tr]), labels[tr]), (scaler(images[va]), labels[va])
    epochs = 3 if quick else 15

    def build(h):   # h["learning_rate"] is a tracer: one program for every rate
        return jtricks.nn.mlp((128, 10)), jtricks.optim.sgd(h["learning_rate"], momentum=0.9)

    learning_rates = jnp.logspace(-4, 0, 9)
    result = jtricks.sweep.train(build, {"learning_rate": learning_rates}, train, val,
                                 key=jax.random.PRNGKey(1), epochs=epochs, batch_size=32)
    curves = result.members.curves["val_accuracy"]           # (9, epochs)
    for lr, curve in zip(learning_rates, curves):
        print(f"lr {float(lr):8.5f}: final validation accuracy {float(curve[-1]):.3f}")
    best = int(jnp.argmax(curves[:, -1]))
    print(f"best learning rate: {float(learning_rates[best]):.4g}")
    return learning_rates, curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    main(parser.parse_args().quick)
