"""``jtricks sweep``: train every combination of hyperparameters as one compiled program."""

from __future__ import annotations

import argparse
import json
import os

from .. import _registry
from ._common import (CliError, data_spec, int_list, load_dataset, non_negative_float,
                      non_negative_int, positive_float, positive_int, rate, say)

COMMAND = "sweep"
OPTIMIZERS = _registry.cli_names(sweep=True)  # the choices make_build below knows


def _values(kind):
    """argparse type: a comma-separated list of ``kind`` values, e.g. ``1e-3,1e-2``."""

    def parse(text):
        try:
            return tuple(kind(v) for v in text.split(","))
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"in {text!r}: {e}") from None

    return parse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="train a grid of hyperparameters at once (one vmapped program)",
        description="Train every combination of the given learning rates, weight decays, "
                    "dropout rates and initializer scales as one vmapped, jitted program "
                    "(one compilation), each member with its own early stopping on the "
                    "validation loss; report every member and test the best one once.")
    g = p.add_argument_group("swept hyperparameters (comma-separated lists)")
    g.add_argument("--lr", type=_values(positive_float), default=(1e-3, 3e-3, 1e-2),
                   metavar="LR,...", help="learning rates (default 1e-3,3e-3,1e-2)")
    g.add_argument("--weight-decay", type=_values(non_negative_float), default=(0.0, 1e-4),
                   metavar="WD,...", help="weight decays, decoupled for adamw (default 0,1e-4)")
    g.add_argument("--dropout", type=_values(rate), default=(0.0, 0.2), metavar="P,...",
                   help="dropout rates in [0, 1) (default 0,0.2)")
    g.add_argument("--init-scale", type=_values(positive_float), default=(1.0,),
                   metavar="S,...", help="multipliers of the He-normal standard deviation "
                                         "of the kernels (default 1)")
    g = p.add_argument_group("fixed settings")
    g.add_argument("--data", type=data_spec, default=("digits", None), metavar="digits|mnist:DIR")
    g.add_argument("--scale", choices=("minmax", "standardize", "none"), default="minmax")
    g.add_argument("--hidden", type=int_list, default=(128,), metavar="W1,W2,...",
                   help="hidden widths of the mlp (default 128)")
    g.add_argument("--batch-norm", action="store_true", help="batch norm after each hidden layer")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    g.add_argument("--epochs", type=positive_int, default=30)
    g.add_argument("--batch-size", type=positive_int, default=64)
    g.add_argument("--patience", type=non_negative_int, default=5,
                   help="early-stopping patience in epochs, per member (default 5)")
    g.add_argument("--seed", type=non_negative_int, default=0)
    g.add_argument("--out", default="runs/sweep", help="folder for sweep.json (default runs/sweep)")
    p.set_defaults(run=run)


def make_build(args, num_classes: int):
    """``build(h) -> (model, tx)`` for :func:`jtricks.sweep.train`, from traced scalars."""
    import jtricks

    def build(h):
        kernel_init = jtricks.init.variance_scaling(2.0 * h["init_scale"] ** 2, "fan_in", "normal")
        model = jtricks.nn.mlp((*args.hidden, num_classes), kernel_init=kernel_init,
                               batch_norm=args.batch_norm, dropout=h["dropout"])
        lr, wd = h["learning_rate"], h["weight_decay"]
        if args.optimizer == "adamw":
            return model, jtricks.optim.adamw(lr, weight_decay=wd)
        base = (jtricks.optim.adam(lr) if args.optimizer == "adam"
                else jtricks.optim.sgd(lr, momentum=0.9 if args.optimizer == "momentum" else None))
        return model, jtricks.optim.chain(jtricks.optim.add_decayed_weights(wd), base)

    return build


def run(args) -> int:
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out!r} exists and is not a directory")
    import time

    import jax
    import numpy as np

    from jtricks import sweep

    data = load_dataset(args.data, args.seed, scale=args.scale)
    (xtr, ytr), (xva, yva), (xte, yte) = data["train"], data["val"], data["test"]
    if args.batch_size > len(ytr):
        raise CliError(f"--batch-size {args.batch_size} exceeds the {len(ytr)} training examples")
    hparams = sweep.grid(learning_rate=args.lr, weight_decay=args.weight_decay,
                         dropout=args.dropout, init_scale=args.init_scale)
    k = len(hparams["learning_rate"])
    model_of = make_build(args, data["num_classes"])
    say(f"jtricks sweep: {k} configurations on {data['name']} ({len(ytr)} train / {len(yva)} "
        f"validation), up to {args.epochs} epochs each, patience {args.patience}; "
        "compiling once...")
    start = time.perf_counter()
    result = sweep.train(model_of, hparams, (xtr, ytr, xva, yva), key=jax.random.PRNGKey(args.seed),
                         epochs=args.epochs, batch_size=args.batch_size, patience=args.patience)
    seconds = time.perf_counter() - start

    def accuracy(h, params, model_state, x, y):
        model, _ = model_of(h)
        logits, _ = model.apply(params, model_state, x, training=False)
        return (logits.argmax(-1) == y).mean()

    members = result.members
    val_acc = np.asarray(jax.jit(jax.vmap(accuracy, (0, 0, 0, None, None)))(
        hparams, members.params, members.model_state, xva, yva))
    best = result.member(result.best)
    best_h = {n: v[result.best] for n, v in hparams.items()}
    test_acc = float(jax.jit(accuracy)(best_h, best.params, best.model_state, xte, yte))

    rows = []
    print(f"{'#':>3s} {'lr':>8s} {'wd':>8s} {'dropout':>7s} {'init':>5s} {'epochs':>6s} "
          f"{'best':>4s} {'val loss':>9s} {'val acc':>7s}")
    for i in range(k):
        row = {n: float(v[i]) for n, v in hparams.items()}
        row.update(epochs_run=int(members.epochs_run[i]), best_epoch=int(members.best_epoch[i]),
                   best_val_loss=float(members.best_value[i]), val_accuracy=float(val_acc[i]))
        rows.append(row)
        mark = "*" if i == result.best else " "
        print(f"{i:3d}{mark}{row['learning_rate']:8.0e} {row['weight_decay']:8.0e} "
              f"{row['dropout']:7.2f} {row['init_scale']:5.2f} {row['epochs_run']:6d} "
              f"{row['best_epoch']:4d} {row['best_val_loss']:9.4f} {row['val_accuracy']:7.4f}")
    total_steps = int(np.sum(members.epochs_run)) * (len(ytr) // args.batch_size)
    print(f"best: #{result.best} (lowest validation loss); test accuracy {test_acc:.4f} "
          f"({len(yte)} test examples, evaluated once)")
    say(f"jtricks sweep: {k} members, {total_steps} member-steps in {seconds:.1f} s "
        "(compilation included)")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        summary = {"data": data["name"], "best": result.best, "test_accuracy": test_acc,
                   "seconds": seconds, "members": rows,
                   "config": {n: (list(v) if isinstance(v, tuple) else v)
                              for n, v in vars(args).items() if n not in ("run", "data")}}
        with open(os.path.join(args.out, "sweep.json"), "w") as f:
            json.dump(summary, f, indent=2)
    return 0
