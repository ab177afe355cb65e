"""``jtricks train``: train one configuration, every trick a flag, test once at the end."""

from __future__ import annotations

import argparse
import json
import os

from .. import _registry
from ._build import DEFAULT_LR, _augmenter, build, build_schedule
from ._common import (CliError, check, check_finite, data_extras, data_spec, int_list, integer,
                      load_data, number, require_extras, say, writable_dir)
from ._devices import (add_devices_argument, add_process_arguments, check_devices, data_parallel,
                       request_devices, start_processes)

# The choices and a learning rate that works on digits for each when --lr is not given, from
# the one table of optimizers (jtricks/_registry.py imports no JAX: --help stays fast).
OPTIMIZERS = _registry.cli_names()
INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal",
                "gaussian", "orthogonal", "uniform", "normal", "zeros", "ones")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu")
SCHEDULES = ("constant", "per-epoch", "cosine", "warmup-cosine", "step")

COMMAND = "train"
# The batch of every evaluation (validation after each epoch, the test once), passed to
# each call and to the programs compiled ahead of them, so the two cannot disagree.
EVAL_BATCH = 1024
# jtricks.train.fit needs no optional package (its progress bar shows when tqdm is
# installed); --data digits needs scikit-learn, --checkpoint-dir orbax.


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train one configuration with any combination of tricks",
        description="Train a classifier on digits (default), MNIST-1D or MNIST with every "
                    "trick of the lesson as a flag. Splits the data 70/20/10 (MNIST: its train files "
                    "5:1 into train/validation, t10k as test; MNIST-1D: its training part "
                    "4:1, its test part as test), validates after every epoch "
                    "and evaluates the test split once, at the end.")
    g = p.add_argument_group("data")
    g.add_argument("--data", type=data_spec, default="digits", metavar="digits|mnist1d|mnist:DIR",
                   help="the embedded digits (default), MNIST-1D (generated locally, harder) "
                        "or a directory with MNIST IDX files")
    g.add_argument("--scale", choices=("minmax", "standardize", "none"), default="minmax",
                   help="input scaling fitted on the training split (default: minmax to [-1, 1])")
    g.add_argument("--augment", action="store_true",
                   help="random shift/rotation/zoom of training images")
    g.add_argument("--class-weights", action="store_true",
                   help="weight the loss by inverse class frequency")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=("mlp", "cnn", "resnet"), default="mlp")
    g.add_argument("--hidden", type=int_list, default=(256, 128), metavar="W1,W2,...",
                   help="hidden widths of the mlp (default: 256,128)")
    g.add_argument("--init", choices=INITIALIZERS, default="he_normal",
                   help="kernel initializer (default: he_normal)")
    g.add_argument("--init-scale", type=number, default=None,
                   help="scale of --init uniform (default 0.05) or stddev of --init normal "
                        "(default 1.0)")
    g.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    g.add_argument("--dropout", type=number, default=0.1,
                   help="drop probability after each hidden layer, in [0, 1] (default 0.1)")
    g.add_argument("--drop-path", type=number, default=0.0,
                   help="stochastic depth of the resnet's residual branches")
    g.add_argument("--batch-norm", action=_BooleanFlag, default=None,
                   help="batch norm after each layer (default: on for resnet, off otherwise)")
    g = p.add_argument_group("optimizer")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    g.add_argument("--lr", type=number, default=None,
                   help="learning rate (default depends on the optimizer: "
                        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--momentum", type=number, default=0.9,
                   help="momentum γ of --optimizer momentum / nesterov (default 0.9)")
    g.add_argument("--b1", type=number, default=0.9, help="Adam's b1 (default 0.9)")
    g.add_argument("--b2", type=number, default=0.999, help="Adam's b2 (default 0.999)")
    g.add_argument("--eps", type=number, default=None,
                   help="epsilon of the adaptive optimizers (default: the optimizer's)")
    g.add_argument("--rho", type=number, default=0.9,
                   help="decay of the squared averages for rmsprop/adadelta (default 0.9)")
    g.add_argument("--schedule", choices=SCHEDULES, default="constant",
                   help="learning-rate schedule: constant, per-epoch (×--lr-decay after every "
                        "epoch), cosine, warmup-cosine, step (×0.1 at 50%% and 75%%)")
    g.add_argument("--lr-decay", type=number, default=0.98,
                   help="factor per epoch of --schedule per-epoch (default 0.98)")
    g.add_argument("--warmup-epochs", type=integer, default=1)
    g.add_argument("--clip-norm", type=number, default=None, metavar="θ",
                   help="clip the global gradient norm to θ")
    g.add_argument("--clip-value", type=number, default=None,
                   help="clip every gradient entry to [-v, v]")
    g.add_argument("--weight-decay", type=number, default=0.0,
                   help="L2 weight decay (decoupled for adamw)")
    g.add_argument("--l1", type=number, default=0.0, help="L1 weight decay")
    g.add_argument("--apply-if-finite", action="store_true",
                   help="skip steps whose gradients are not finite instead of stopping")
    g.add_argument("--max-bad-steps", type=integer, default=None, metavar="N",
                   help="with --apply-if-finite: apply the update anyway after N non-finite "
                        "steps in a row, so the run stops as diverged (default: skip them "
                        "for the whole run)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=integer, default=30)
    g.add_argument("--batch-size", type=integer, default=32)
    g.add_argument("--seed", type=integer, default=0,
                   help="seeds the split, the initialization, dropout and the data order")
    add_devices_argument(g)
    add_process_arguments(g)
    g.add_argument("--early-stopping", type=integer, default=None, metavar="PATIENCE",
                   help="stop when validation loss has not improved for PATIENCE epochs; "
                        "keep the best parameters")
    g.add_argument("--reduce-lr-on-plateau", type=number, default=None, metavar="FACTOR",
                   help="multiply the learning rate by FACTOR when the epoch's mean training "
                        "loss has not improved for --plateau-patience epochs in a row "
                        "(jtricks.optim.reduce_on_plateau, optax's meaning)")
    g.add_argument("--plateau-patience", type=integer, default=3)
    g.add_argument("--ema", type=number, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the weights and test it")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="runs/train",
                   help="folder for history.jsonl/csv and summary.json (default runs/train)")
    g.add_argument("--checkpoint-dir", default=None, help="save orbax checkpoints here")
    g.add_argument("--checkpoint-every", type=integer, default=5, metavar="N")
    g.add_argument("--resume", action="store_true",
                   help="continue from the latest usable checkpoint in --checkpoint-dir "
                        "(damaged ones are moved aside; refused when none is usable or "
                        "they were written with other flags)")
    g.add_argument("--restart", action="store_true",
                   help="start over in a --checkpoint-dir whose checkpoints cannot be "
                        "continued (without --resume, none usable, or written with other "
                        "flags): they are moved into DIR/archived-N first")
    g.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write every epoch's metrics (learning rate included) as "
                        "TensorBoard events to DIR (needs tensorboardX: the tensorboard "
                        "extra)")
    g.add_argument("--log-steps", action="store_true",
                   help="with --tensorboard: also every step's loss, accuracy, gradient norm "
                        "and learning rate (batch/*)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run, flag_defaults={dest: p.get_default(dest) for dest in _APPLIES})


class _BooleanFlag(argparse.BooleanOptionalAction):
    """``--batch-norm`` / ``--no-batch-norm``."""

    def __init__(self, option_strings, dest, default=None, help=None, **kw):
        super().__init__(option_strings, dest, default=default, help=help)


# Every flag that holds a number (``--flag: dest``): ``inf`` and ``nan`` are refused.
NUMBER_FLAGS = {"--init-scale": "init_scale", "--dropout": "dropout", "--drop-path": "drop_path",
                "--lr": "lr", "--momentum": "momentum", "--b1": "b1", "--b2": "b2",
                "--eps": "eps", "--rho": "rho", "--lr-decay": "lr_decay",
                "--clip-norm": "clip_norm", "--clip-value": "clip_value",
                "--weight-decay": "weight_decay", "--l1": "l1",
                "--reduce-lr-on-plateau": "reduce_lr_on_plateau", "--ema": "ema"}


# A flag that does not apply to the chosen configuration is an error, not silently
# ignored: dest -> (flag, whether it applies, what uses it, what this run chose).
_APPLIES = {
    "hidden": ("--hidden", lambda a: a.model == "mlp", "--model mlp",
               lambda a: f"--model {a.model}"),
    "dropout": ("--dropout", lambda a: a.model != "resnet", "--model mlp and cnn "
                "(the resnet drops whole branches: --drop-path)", lambda a: "--model resnet"),
    "drop_path": ("--drop-path", lambda a: a.model == "resnet", "--model resnet",
                  lambda a: f"--model {a.model}"),
    "init_scale": ("--init-scale", lambda a: a.init in ("uniform", "normal"),
                   "--init uniform and normal", lambda a: f"--init {a.init}"),
    "momentum": ("--momentum", lambda a: a.optimizer in ("momentum", "nesterov"),
                 "--optimizer momentum and nesterov", lambda a: f"--optimizer {a.optimizer}"),
    "b1": ("--b1", lambda a: a.optimizer in ("adam", "adamw"), "--optimizer adam and adamw",
           lambda a: f"--optimizer {a.optimizer}"),
    "b2": ("--b2", lambda a: a.optimizer in ("adam", "adamw"), "--optimizer adam and adamw",
           lambda a: f"--optimizer {a.optimizer}"),
    "rho": ("--rho", lambda a: a.optimizer in ("rmsprop", "adadelta"),
            "--optimizer rmsprop and adadelta", lambda a: f"--optimizer {a.optimizer}"),
    "eps": ("--eps", lambda a: a.optimizer in ("adagrad", "rmsprop", "adadelta", "adam",
                                               "adamw"),
            "the adaptive optimizers", lambda a: f"--optimizer {a.optimizer}"),
    "lr_decay": ("--lr-decay", lambda a: a.schedule == "per-epoch", "--schedule per-epoch",
                 lambda a: f"--schedule {a.schedule}"),
    "warmup_epochs": ("--warmup-epochs", lambda a: a.schedule == "warmup-cosine",
                      "--schedule warmup-cosine", lambda a: f"--schedule {a.schedule}"),
    "plateau_patience": ("--plateau-patience", lambda a: a.reduce_lr_on_plateau is not None,
                         "--reduce-lr-on-plateau", lambda a: "no --reduce-lr-on-plateau"),
    "log_steps": ("--log-steps", lambda a: a.tensorboard is not None, "--tensorboard DIR",
                  lambda a: "no --tensorboard"),
}


def check_applies(args, defaults: dict) -> None:
    """Refuses a flag set (to other than its default) where the configuration does not
    use it, e.g. ``--lr-decay 0.9`` without ``--schedule per-epoch``.

    Raises:
      CliError: ``--lr-decay 0.9: applies only to --schedule per-epoch (this run:
        --schedule constant)``.
    """
    for dest, (flag, applies, users, chosen) in _APPLIES.items():
        value = getattr(args, dest)
        if value != defaults[dest] and not applies(args):
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            given = flag if value is True else f"{flag} {shown}"  # a switch: the flag alone
            raise CliError(f"{given}: applies only to {users} (this run: {chosen(args)})")
    if args.schedule == "warmup-cosine" and args.warmup_epochs >= args.epochs:
        raise CliError(f"--warmup-epochs {args.warmup_epochs}: must be fewer than --epochs "
                       f"{args.epochs} (the cosine decay follows the warm-up)")


def check_args(args) -> None:
    """The checks that need no data, before anything is loaded or trained: numbers are
    finite, and the flags that feed no library constructor pass the library's
    :mod:`jtricks._validate` checks (the others are checked by :func:`build`).

    Raises:
      CliError: naming the flag and the value.
    """
    from jtricks._validate import check_int

    check_finite(args, NUMBER_FLAGS)
    check("--epochs", args.epochs, check_int, "epochs", lo=1)
    check("--batch-size", args.batch_size, check_int, "batch_size", lo=1)
    check("--seed", args.seed, check_int, "seed", lo=0)
    check("--warmup-epochs", args.warmup_epochs, check_int, "warmup_epochs", lo=0)
    check("--checkpoint-every", args.checkpoint_every, check_int, "checkpoint_every", lo=1)
    if args.max_bad_steps is not None:
        if not args.apply_if_finite:
            raise CliError(f"--max-bad-steps {args.max_bad_steps}: needs --apply-if-finite "
                           "(without it no step is skipped)")
        check("--max-bad-steps", args.max_bad_steps, check_int, "max_bad_steps", lo=0)
    check_devices(args.devices)
    check_applies(args, args.flag_defaults)


# Flags that do not change what an exact resume computes: left out of the run configuration
# (--epochs is in it when the schedule depends on it).
NOT_IN_RUN_CONFIG = {"run", "command", "epochs", "checkpoint_dir", "checkpoint_every", "resume",
                     "restart", "out", "quiet", "devices", "flag_defaults", "tensorboard",
                     "log_steps", "coordinator", "num_processes", "process_id"}


def run_config(args, data, dtype) -> dict:
    """What must match for an exact ``--resume``, keyed by flag: the model, the
    optimizer and its hyperparameters (the learning rate as used), the data, the
    split seed and the sizes of the split, the dtype; ``--epochs`` when the
    schedule depends on it. :func:`jtricks.train.fit` stores it in every checkpoint.

    Example:
      >>> from jtricks.cli import build_parser
      >>> args = build_parser().parse_args(["train", "--seed", "3"])
      >>> class Data:
      ...     name, y_train, y_val, y_test, num_classes = "digits", [0] * 7, [0] * 2, [0], 10
      >>> config = run_config(args, Data, "float32")
      >>> config["--seed"], config["--lr"], config["dtype"], "--epochs" in config
      (3, 0.001, 'float32', False)
    """
    config = {"--" + k.replace("_", "-"): (list(v) if isinstance(v, tuple) else v)
              for k, v in sorted(vars(args).items()) if k not in NOT_IN_RUN_CONFIG}
    config["--lr"] = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    if args.schedule not in ("constant", "per-epoch"):
        config["--epochs"] = args.epochs
    config.update({"--data": data.name, "dtype": str(dtype), "num_classes": data.num_classes,
                   "examples": [len(data.y_train), len(data.y_val), len(data.y_test)]})
    return config


def resolved_config(args) -> dict:
    """The flags as the run used them: defaults that depend on other flags resolved
    (``lr``: the optimizer's default learning rate; ``batch_norm``: on for the resnet)."""
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
              if k not in ("run", "data", "flag_defaults")}
    config["data"] = args.data
    config["lr"] = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    config["batch_norm"] = (args.model == "resnet") if args.batch_norm is None else args.batch_norm
    return config


def run(args) -> int:
    if args.resume and not args.checkpoint_dir:
        raise CliError("--resume needs --checkpoint-dir DIR (the folder of the checkpoints "
                       "to continue from)")
    if args.restart and not args.checkpoint_dir:
        raise CliError("--restart needs --checkpoint-dir DIR (the folder to start over in)")

    check_args(args)
    # the paths before any data is loaded or any step trained
    if args.out:
        writable_dir("--out", args.out)
    if args.checkpoint_dir:
        writable_dir("--checkpoint-dir", args.checkpoint_dir)
    if args.tensorboard:
        writable_dir("--tensorboard", args.tensorboard)
    require_extras("jtricks train", data_extras(args.data)
                   + (("orbax.checkpoint",) if args.checkpoint_dir else ())
                   + (("tensorboardX",) if args.tensorboard else ()))

    if not start_processes(args):  # one process, or the first JAX call of each of several
        request_devices(args.devices)
    import jax

    # Across processes, process 0 alone writes --out and reports progress.
    first = jax.process_index() == 0

    import jtricks.train as jt

    data = load_data(args.data, args.seed, scale=args.scale)
    (xtr, ytr), (xva, yva), (xte, yte) = data.train, data.val, data.test
    steps_per_epoch = len(ytr) // min(args.batch_size, len(ytr))
    model, tx, early, averager, weights = build(args, data)
    loss_fn = jt.classifier_loss(model, class_weights=weights,
                                 augment=_augmenter(xtr) if args.augment else None)
    eval_fn = jt.classifier_eval(model)
    schedule = build_schedule(args, steps_per_epoch)
    if args.devices == 1 and jax.process_count() == 1:  # fit's programs compile meanwhile
        state, data_key = init_compiling(
            model, tx, args.seed, (xtr, ytr), loss_fn=loss_fn, batch_size=args.batch_size,
            val_data=(xva, yva), test_data=(xte, yte), eval_fn=eval_fn, averager=averager,
            learning_rate=schedule)
    else:
        state, data_key = jt.init_state(model, tx, args.seed, xtr.shape[1:])  # one program
    state, loss_fn = data_parallel(args.devices, args.batch_size, state, loss_fn)
    say(f"jtricks train: {data.name} ({len(ytr)} train / {len(yva)} validation / "
        f"{len(yte)} test), {args.model}, {args.optimizer}, {args.epochs} epochs of "
        f"{steps_per_epoch} steps")
    writer = jt.TensorBoardWriter(args.tensorboard) if args.tensorboard else None
    try:
        result = jt.fit(
            state, (xtr, ytr), loss_fn=loss_fn, tx=tx, epochs=args.epochs,
            batch_size=args.batch_size,
            data_key=data_key, val_data=(xva, yva), eval_fn=eval_fn, eval_batch_size=EVAL_BATCH,
            early_stopping=early, averager=averager,
            checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
            resume=args.resume, restart=args.restart,
            run_config=run_config(args, data, xtr.dtype) if args.checkpoint_dir else None,
            history_dir=args.out if first else None,
            progress=False if args.quiet or not first else None,
            learning_rate=schedule, writers=writer,
            log_steps=args.log_steps)
    except jt.CheckpointError as e:
        hint = ("; resume with the flags it was written with, or start over with --restart"
                if "another run configuration" in str(e) or "another model" in str(e)
                else "")
        message = str(e)
        for library, flag in (("restart=True (jtricks train --restart)", "--restart"),
                              ("resume=True (jtricks train --resume)", "--resume"),
                              ("restart=True (--restart)", "--restart")):
            message = message.replace(library, flag)
        where = "" if os.path.abspath(args.checkpoint_dir) in message else \
            f" {args.checkpoint_dir}"
        raise CliError(f"--checkpoint-dir{where}: {message}{hint}") from None
    except KeyboardInterrupt:
        where = (f"; the checkpoints in {args.checkpoint_dir} are intact: continue with "
                 "--resume" if args.checkpoint_dir else "")
        say(f"jtricks train: interrupted{where}")
        return 130
    finally:
        if writer is not None:
            writer.close()
    if result.stop_reason and "diverged" in result.stop_reason:
        say(f"jtricks train: stopped: {result.stop_reason}")
        return 1
    params, model_state = result.state.params, result.state.model_state
    if averager is not None:
        params = jt.averaged_params(result.avg_state, params)
    if jax.process_count() > 1:  # the test runs in each process, on a local copy
        from jax.experimental import multihost_utils

        params, model_state = multihost_utils.process_allgather((params, model_state),
                                                                tiled=True)
    test = jt.evaluate(eval_fn, params, model_state, (xte, yte), batch_size=EVAL_BATCH)
    stopping = early_stopping_report(args, result, averager)
    if stopping and stopping["stopped"]:
        say(f"jtricks train: {stopping['message']}")
    summary = {
        "data": data.name, "epochs_run": len(result.history),
        "stop_reason": result.stop_reason,
        "best_val_accuracy": max((r["val_accuracy"] for r in result.history), default=None),
        "test_accuracy": float(test["accuracy"]), "test_loss": float(test["loss"]),
        "test_examples": int(len(yte)),
        "early_stopping": stopping,
        "config": resolved_config(args),
    }
    if not first:
        return 0
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
    print(f"test accuracy: {summary['test_accuracy']:.4f} "
          f"({len(yte)} test examples, evaluated once after training"
          f"{', EMA weights' if averager is not None else ''})")
    return 0


def init_compiling(model, tx, seed: int, train_data, *, loss_fn, batch_size: int, val_data,
                   test_data, eval_fn, averager, learning_rate):
    """:func:`jtricks.train.init_state` on a background thread while this one compiles
    :func:`jtricks.train.fit`'s epoch from the state's shapes; the background thread
    then compiles the small programs (the epoch's order, the finiteness check, the
    validation and test evaluations: ``jtricks.train._programs.compile_beside``).
    Returns ``init_state``'s ``(state, data_key)``; ``fit`` given these same
    arguments compiles nothing more (tests/test_train_compiles.py).
    """
    import jax

    import jtricks.train as jt
    from jtricks.train._engine import init_shapes
    from jtricks.train._programs import compile_beside, compile_programs
    from jtricks.train._steps import _evaluator

    input_shape = jax.tree.leaves(train_data)[0].shape[1:]
    shapes, key = init_shapes(model, tx, seed, input_shape)
    programs = compile_programs(shapes, train_data, loss_fn=loss_fn, tx=tx,
                                batch_size=batch_size, data_key=key, val_data=val_data,
                                eval_fn=eval_fn, eval_batch_size=EVAL_BATCH, averager=averager,
                                learning_rate=learning_rate)
    test = (_evaluator(eval_fn, EVAL_BATCH), (shapes.params, shapes.model_state,
                                        jax.eval_shape(lambda t: t, test_data)))
    return compile_beside(programs, first=lambda: jt.init_state(model, tx, seed, input_shape),
                          more=[test])


def early_stopping_report(args, result, averager=None) -> dict | None:
    """When and why early stopping ended the run, for ``summary.json`` and the
    terminal; ``None`` without ``--early-stopping``.

    Returns:
      ``{"stopped", "stopped_after_epoch", "epochs", "monitor", "best_value",
      "best_epoch", "epochs_without_improvement", "patience", "message"}``
      (epochs 1-based; ``stopped_after_epoch`` is ``None`` when all epochs ran).
    """
    if args.early_stopping is None:
        return None
    state = result.early_stopping_state
    last = result.history[-1]["epoch"] if result.history else 0
    stopped = result.stop_reason is not None and result.stop_reason.startswith("early stopping")
    best_epoch = int(state.best_epoch) + 1 if int(state.best_epoch) >= 0 else None
    best = float(state.best_value) if best_epoch is not None else None
    report = {"stopped": stopped, "stopped_after_epoch": last if stopped else None,
              "epochs": args.epochs, "monitor": "val_loss", "best_value": best,
              "best_epoch": best_epoch,
              "epochs_without_improvement": last - best_epoch if best_epoch else None,
              "patience": args.early_stopping}
    if best_epoch is None:
        report["message"] = "early stopping: no epoch was monitored"
        return report
    weights = "the EMA weights" if averager is not None else f"the weights of epoch {best_epoch}"
    report["message"] = (
        f"early stopping after epoch {last} of {args.epochs}: val_loss has not improved on "
        f"its best, {best:.4g} at epoch {best_epoch}, for {last - best_epoch} "
        f"epoch{'s' if last - best_epoch != 1 else ''} "
        f"(--early-stopping {args.early_stopping}); testing {weights}" if stopped else
        f"early stopping did not trigger: val_loss was best at epoch {best_epoch} ({best:.4g})")
    return report
