"""``jtricks sweep``: train every combination of hyperparameters as one compiled program."""

from __future__ import annotations

import json
import os

from .. import _registry
from ._common import (CliError, check, check_finite, data_extras, data_spec, int_list,
                      integer, library_errors, load_data, number_list, require_extras, say)
from ._devices import add_process_arguments, check_devices, request_devices, start_processes

COMMAND = "sweep"
OPTIMIZERS = _registry.cli_names(sweep=True)  # the choices make_build below knows


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="train a grid of hyperparameters at once (one vmapped program)",
        description="Train every combination of the given learning rates, weight decays, "
                    "dropout rates and initializer scales as one vmapped, jitted program "
                    "(one compilation), each member with its own early stopping on the "
                    "validation loss; report every member and test the best one once.")
    g = p.add_argument_group("swept hyperparameters (comma-separated lists)")
    g.add_argument("--lr", type=number_list, default=(1e-3, 3e-3, 1e-2),
                   metavar="LR,...", help="learning rates (default 1e-3,3e-3,1e-2)")
    g.add_argument("--weight-decay", type=number_list, default=(0.0, 1e-4),
                   metavar="WD,...", help="weight decays, decoupled for adamw (default 0,1e-4)")
    g.add_argument("--dropout", type=number_list, default=(0.0, 0.2), metavar="P,...",
                   help="dropout rates in [0, 1] (default 0,0.2)")
    g.add_argument("--init-scale", type=number_list, default=(1.0,),
                   metavar="S,...", help="multipliers of the He-normal standard deviation "
                                         "of the kernels (default 1)")
    g = p.add_argument_group("fixed settings")
    g.add_argument("--data", type=data_spec, default="digits",
                   metavar="digits|mnist1d|mnist:DIR")
    g.add_argument("--scale", choices=("minmax", "standardize", "none"), default="minmax")
    g.add_argument("--hidden", type=int_list, default=(128,), metavar="W1,W2,...",
                   help="hidden widths of the mlp (default 128)")
    g.add_argument("--batch-norm", action="store_true", help="batch norm after each hidden layer")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    g.add_argument("--epochs", type=integer, default=30)
    g.add_argument("--batch-size", type=integer, default=64)
    g.add_argument("--patience", type=integer, default=5,
                   help="early-stopping patience in epochs, per member (default 5)")
    g.add_argument("--seed", type=integer, default=0)
    g.add_argument("--devices", type=integer, default=1, metavar="N",
                   help="split the members over N devices (a 'member' mesh axis; each "
                        "device trains K/N of them; on CPU, N devices are simulated); the "
                        "number of members K must divide by N; with --coordinator, N counts "
                        "the devices of all processes (default 1)")
    add_process_arguments(g)
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


def check_args(args) -> None:
    """The checks that need no data: every number finite, the integer flags through the
    library's ``check_int``, and ``--init-scale`` (a multiplier of the He-normal standard
    deviation, which reaches the library squared) through ``check_positive``.

    Raises:
      CliError: naming the flag and the value.
    """
    from jtricks._validate import check_int, check_positive

    check_finite(args, {"--lr": "lr", "--weight-decay": "weight_decay",
                        "--dropout": "dropout", "--init-scale": "init_scale"})
    check("--init-scale", args.init_scale, check_positive, "init_scale")
    check("--epochs", args.epochs, check_int, "epochs", lo=1)
    check("--batch-size", args.batch_size, check_int, "batch_size", lo=1)
    check("--patience", args.patience, check_int, "patience", lo=0)
    check("--seed", args.seed, check_int, "seed", lo=0)
    check_devices(args.devices)


def check_members(args, build) -> None:
    """Builds every member of the grid with the concrete values of the flags, so that the
    library's construction-time checks (skipped for the traced values of the sweep)
    see them.

    Raises:
      CliError: e.g. ``--dropout 0,1.5: dropout=1.5 must be <= 1``.
    """
    import itertools

    flags = {"learning_rate": ("--lr", args.lr), "weight_decay": ("--weight-decay",
                                                                  args.weight_decay),
             "dropout": ("--dropout", args.dropout), "features": ("--hidden", args.hidden)}
    with library_errors(flags):
        for lr, wd, rate, scale in itertools.product(args.lr, args.weight_decay, args.dropout,
                                                     args.init_scale):
            build({"learning_rate": lr, "weight_decay": wd, "dropout": rate,
                   "init_scale": scale})


def run(args) -> int:
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out!r} exists and is not a directory")
    check_args(args)
    require_extras("jtricks sweep", data_extras(args.data))
    if not start_processes(args):  # one process, or the first JAX call of each of several
        request_devices(args.devices)
    import time

    import jax
    import numpy as np

    from jtricks import parallel, sweep
    from jtricks.train import classifier_eval, evaluate

    data = load_data(args.data, args.seed, scale=args.scale)
    (xtr, ytr), (xva, yva), (xte, yte) = data.train, data.val, data.test
    if args.batch_size > len(ytr):
        raise CliError(f"--batch-size {args.batch_size} exceeds the {len(ytr)} training examples")
    hparams = sweep.grid(learning_rate=args.lr, weight_decay=args.weight_decay,
                         dropout=args.dropout, init_scale=args.init_scale)
    k = len(hparams["learning_rate"])
    if k % args.devices:
        raise CliError(f"--devices {args.devices}: the {k} members do not divide over "
                       f"{args.devices} devices; sweep a multiple of {args.devices} "
                       "configurations")
    if jax.process_count() > 1 and args.devices != jax.device_count():
        raise CliError(f"--devices {args.devices}: a sweep of {jax.process_count()} processes "
                       f"splits its members over all their devices, {jax.device_count()}")
    model_of = make_build(args, data.num_classes)
    check_members(args, model_of)
    # Across processes, each trains the members of its devices; process 0 alone reports.
    first = jax.process_index() == 0
    report = say if first else (lambda message: None)
    report(f"jtricks sweep: {k} configurations on {data.name} ({len(ytr)} train / "
           f"{len(yva)} validation), up to {args.epochs} epochs each, patience "
           f"{args.patience}; compiling once...")
    start = time.perf_counter()
    result = sweep.train(model_of, hparams, (xtr, ytr), (xva, yva),
                         key=jax.random.PRNGKey(args.seed), epochs=args.epochs,
                         batch_size=args.batch_size, patience=args.patience,
                         mesh=(parallel.data_mesh(args.devices, axis_name="member")
                               if args.devices > 1 else None))
    seconds = time.perf_counter() - start

    members = result.members
    parts = {"val_accuracy": members.curves["val_accuracy"], "best_epoch": members.best_epoch,
             "epochs_run": members.epochs_run, "best_value": members.best_value,
             "best": (members.params, members.model_state)}
    if jax.process_count() > 1:  # the members of every process, on every host
        from jtricks.sweep._rounds import host

        parts = jax.tree.map(host, parts)
    if not first:
        return 0
    # validation accuracy at each member's best epoch (the parameters it keeps)
    val_acc = np.take_along_axis(np.asarray(parts["val_accuracy"]),
                                 np.asarray(parts["best_epoch"])[:, None], 1)[:, 0]
    model, _ = model_of({n: v[result.best] for n, v in hparams.items()})
    params, model_state = jax.tree.map(lambda leaf: leaf[result.best], parts["best"])
    test_acc = float(evaluate(classifier_eval(model), params, model_state, (xte, yte))["accuracy"])

    rows = []
    print(f"{'#':>3s} {'lr':>8s} {'wd':>8s} {'dropout':>7s} {'init':>5s} {'epochs':>6s} "
          f"{'best':>4s} {'val loss':>9s} {'val acc':>7s}")
    for i in range(k):
        row = {n: float(v[i]) for n, v in hparams.items()}
        row.update(epochs_run=int(parts["epochs_run"][i]),
                   best_epoch=int(parts["best_epoch"][i]),
                   best_val_loss=float(parts["best_value"][i]), val_accuracy=float(val_acc[i]))
        rows.append(row)
        mark = "*" if i == result.best else " "
        print(f"{i:3d}{mark}{row['learning_rate']:8.0e} {row['weight_decay']:8.0e} "
              f"{row['dropout']:7.2f} {row['init_scale']:5.2f} {row['epochs_run']:6d} "
              f"{row['best_epoch']:4d} {row['best_val_loss']:9.4f} {row['val_accuracy']:7.4f}")
    total_steps = int(np.sum(parts["epochs_run"])) * (len(ytr) // args.batch_size)
    print(f"best: #{result.best} (lowest validation loss); test accuracy {test_acc:.4f} "
          f"({len(yte)} test examples, evaluated once)")
    say(f"jtricks sweep: {k} members, {total_steps} member-steps in {seconds:.1f} s "
        "(compilation included)")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        summary = {"data": data.name, "best": result.best, "test_accuracy": test_acc,
                   "seconds": seconds, "members": rows,
                   "config": {n: (list(v) if isinstance(v, tuple) else v)
                              for n, v in vars(args).items() if n not in ("run", "data")}}
        with open(os.path.join(args.out, "sweep.json"), "w") as f:
            json.dump(summary, f, indent=2)
    return 0
