"""The lesson's dropout experiment: one classifier, several dropout rates, validation
curves — every rate trained together with ``jax.vmap``.

Runs on the embedded digits, or on MNIST if you have the IDX files::

    python examples/dropout_experiment.py [--quick] [--mnist DIR] [--plot dropout.png]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jtricks


def load(mnist_dir):
    if mnist_dir:
        images, labels = jtricks.data.load_mnist_idx(mnist_dir)
    else:
        images, labels = jtricks.data.load_digits()
    tr, va, _ = jtricks.data.split(jax.random.PRNGKey(0), len(labels), stratify=labels)
    scaler = jtricks.data.minmax_scale(images[tr], feature_range=(0, 1))
    return (scaler(images[tr]), labels[tr]), (scaler(images[va]), labels[va])


def main(quick: bool = False, mnist_dir=None, plot=None):
    train, val = load(mnist_dir)
    rates = jnp.array([0.0, 0.1, 0.2, 0.3, 0.5])
    epochs = 2 if quick else 20
    width = 128 if quick else 512

    def build(h):   # h["dropout"] is a tracer: every rate trains in one program
        model = jtricks.nn.mlp((width, width, 10), dropout=h["dropout"])
        return model, jtricks.optim.adam(1e-3)

    result = jtricks.sweep.train(build, {"dropout": rates}, train, val,
                                 key=jax.random.PRNGKey(1), epochs=epochs, batch_size=64)
    curves = {"accuracy": result.members.curves["val_accuracy"],
              "loss": result.members.curves["val_loss"]}
    for rate, acc, loss in zip(rates, curves["accuracy"], curves["loss"]):
        print(f"dropout {float(rate):.1f}: validation accuracy {float(acc[-1]):.4f}, "
              f"best validation loss {float(loss.min()):.4f}")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for rate, acc in zip(rates, curves["accuracy"]):
            ax.plot(np.arange(1, epochs + 1), acc, label=f"dropout {float(rate):.1f}")
        ax.set(xlabel="epoch", ylabel="validation accuracy", title="Dropout rates")
        ax.legend()
        fig.savefig(plot, dpi=110)
    return rates, curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    parser.add_argument("--mnist", metavar="DIR", help="directory with the MNIST IDX files")
    parser.add_argument("--plot", metavar="PNG", help="save the validation curves here")
    args = parser.parse_args()
    main(args.quick, args.mnist, args.plot)
