"""``jtricks train``: train one configuration, every trick a flag, test once at the end."""

from __future__ import annotations

import argparse
import json
import os

from .. import _registry
from ._common import (CliError, data_spec, decay_factor, int_list, load_dataset,
                      non_negative_float, non_negative_int, positive_float, positive_int, rate,
                      say, unit_open)
from ._devices import add_devices_argument, data_parallel, request_devices

# The choices and a learning rate that works on digits for each when --lr is not given, from
# the one table of optimizers (jtricks/_registry.py imports no JAX: --help stays fast).
OPTIMIZERS = _registry.cli_names()
DEFAULT_LR = _registry.cli_default_lr()
INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal",
                "gaussian", "orthogonal", "uniform", "normal", "zeros", "ones")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu")
SCHEDULES = ("constant", "per-epoch", "cosine", "warmup-cosine", "step")

COMMAND = "train"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train one configuration with any combination of tricks",
        description="Train a classifier on digits (default) or MNIST with every trick of the "
                    "lesson as a flag. Splits the data 70/20/10 (MNIST: its train files "
                    "5:1 into train/validation, t10k as test), validates after every epoch "
                    "and evaluates the test split once, at the end.")
    g = p.add_argument_group("data")
    g.add_argument("--data", type=data_spec, default=("digits", None), metavar="digits|mnist:DIR",
                   help="the embedded digits (default) or a directory with MNIST IDX files")
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
    g.add_argument("--init-scale", type=positive_float, default=None,
                   help="scale of --init uniform (default 0.05) or stddev of --init normal "
                        "(default 1.0)")
    g.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    g.add_argument("--dropout", type=rate, default=0.1,
                   help="drop probability after each hidden layer, in [0, 1) (default 0.1)")
    g.add_argument("--drop-path", type=rate, default=0.0,
                   help="stochastic depth of the resnet's residual branches")
    g.add_argument("--batch-norm", action=_BooleanFlag, default=None,
                   help="batch norm after each layer (default: on for resnet, off otherwise)")
    g = p.add_argument_group("optimizer")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    g.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default depends on the optimizer: "
                        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--momentum", type=unit_open, default=0.9,
                   help="momentum γ for momentum/nesterov/rmsprop (default 0.9)")
    g.add_argument("--b1", type=rate, default=0.9, help="Adam's b1 (default 0.9)")
    g.add_argument("--b2", type=rate, default=0.999, help="Adam's b2 (default 0.999)")
    g.add_argument("--eps", type=positive_float, default=None,
                   help="epsilon of the adaptive optimizers (default: the optimizer's)")
    g.add_argument("--rho", type=rate, default=0.9,
                   help="decay of the squared averages for rmsprop/adadelta (default 0.9)")
    g.add_argument("--schedule", choices=SCHEDULES, default="constant",
                   help="learning-rate schedule: constant, per-epoch (×--lr-decay after every "
                        "epoch), cosine, warmup-cosine, step (×0.1 at 50%% and 75%%)")
    g.add_argument("--lr-decay", type=decay_factor, default=0.98,
                   help="factor per epoch of --schedule per-epoch (default 0.98)")
    g.add_argument("--warmup-epochs", type=non_negative_int, default=1)
    g.add_argument("--clip-norm", type=positive_float, default=None, metavar="θ",
                   help="clip the global gradient norm to θ")
    g.add_argument("--clip-value", type=positive_float, default=None,
                   help="clip every gradient entry to [-v, v]")
    g.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                   help="L2 weight decay (decoupled for adamw)")
    g.add_argument("--l1", type=non_negative_float, default=0.0, help="L1 weight decay")
    g.add_argument("--apply-if-finite", action="store_true",
                   help="skip steps whose gradients are not finite instead of stopping")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=30)
    g.add_argument("--batch-size", type=positive_int, default=32)
    g.add_argument("--seed", type=non_negative_int, default=0,
                   help="seeds the split, the initialization, dropout and the data order")
    add_devices_argument(g)
    g.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                   help="stop when validation loss has not improved for PATIENCE epochs; "
                        "keep the best parameters")
    g.add_argument("--reduce-lr-on-plateau", type=unit_open, default=None, metavar="FACTOR",
                   help="multiply the learning rate by FACTOR when validation loss stalls")
    g.add_argument("--plateau-patience", type=non_negative_int, default=3)
    g.add_argument("--ema", type=unit_open, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the weights and test it")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="runs/train",
                   help="folder for history.jsonl/csv and summary.json (default runs/train)")
    g.add_argument("--checkpoint-dir", default=None, help="save orbax checkpoints here")
    g.add_argument("--checkpoint-every", type=positive_int, default=5, metavar="N")
    g.add_argument("--resume", action="store_true",
                   help="continue from the latest complete checkpoint in --checkpoint-dir")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


class _BooleanFlag(argparse.BooleanOptionalAction):
    """``--batch-norm`` / ``--no-batch-norm``."""

    def __init__(self, option_strings, dest, default=None, help=None, **kw):
        super().__init__(option_strings, dest, default=default, help=help)


def _initializer(name: str, scale):
    import jtricks.init as ji

    if name in ("zeros", "ones"):
        return getattr(ji, name)
    if name == "uniform":
        return ji.uniform(0.05 if scale is None else scale)
    if name == "normal":
        return ji.normal(1.0 if scale is None else scale)
    return getattr(ji, name)()


def build_model(args, num_classes: int):
    """The model of ``args`` (``--model``, ``--hidden``, ``--init``, ...)."""
    import jax

    import jtricks.nn as nn

    activation = getattr(jax.nn, args.activation)
    kernel_init = _initializer(args.init, args.init_scale)
    if args.model == "mlp":
        return nn.mlp((*args.hidden, num_classes), activation=activation,
                      kernel_init=kernel_init, batch_norm=bool(args.batch_norm),
                      dropout=args.dropout)
    if args.model == "cnn":
        return nn.cnn(num_classes, activation=activation, kernel_init=kernel_init,
                      batch_norm=bool(args.batch_norm), dropout=args.dropout)
    return nn.resnet(num_classes, activation=activation, kernel_init=kernel_init,
                     batch_norm=args.batch_norm is not False, drop_path=args.drop_path)


def build_schedule(args, steps_per_epoch: int):
    """The learning rate or schedule of ``args``."""
    import jtricks.optim.schedules as sch

    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    total = max(args.epochs * steps_per_epoch, 1)
    if args.schedule == "constant":
        return lr
    if args.schedule == "per-epoch":
        return sch.per_epoch(lr, args.lr_decay, steps_per_epoch)
    if args.schedule == "cosine":
        return sch.cosine_decay(lr, total)
    if args.schedule == "warmup-cosine":
        warmup = max(min(args.warmup_epochs * steps_per_epoch, total - 1), 1)
        return sch.warmup_cosine_decay(0.0, lr, warmup, max(total, warmup + 1))
    return sch.piecewise_constant(lr, {int(total * 0.5): 0.1, int(total * 0.75): 0.1})


def build_optimizer(args, steps_per_epoch: int):
    """The gradient transformation of ``args``: clipping, decay, optimizer, wrappers."""
    import jtricks.optim as jo

    lr = build_schedule(args, steps_per_epoch)
    eps = {} if args.eps is None else {"eps": args.eps}
    name = args.optimizer
    if name == "sgd":
        base = jo.sgd(lr)
    elif name in ("momentum", "nesterov"):
        base = jo.sgd(lr, momentum=args.momentum, nesterov=name == "nesterov")
    elif name == "normalized":
        base = jo.chain(jo.normalize_by_norm(), jo.scale_by_learning_rate(lr))
    elif name == "adagrad":
        base = jo.adagrad(lr, **eps)
    elif name == "rmsprop":
        base = jo.rmsprop(lr, decay=args.rho, **eps)
    elif name == "adadelta":
        base = jo.adadelta(lr, rho=args.rho, **eps)
    elif name == "adam":
        base = jo.adam(lr, b1=args.b1, b2=args.b2, **eps)
    else:
        base = jo.adamw(lr, b1=args.b1, b2=args.b2, weight_decay=args.weight_decay, **eps)
    parts = []
    if args.clip_value is not None:
        parts.append(jo.clip(args.clip_value))
    if args.clip_norm is not None:
        parts.append(jo.clip_by_global_norm(args.clip_norm))
    if args.l1:
        parts.append(jo.add_l1_decay(args.l1))
    if args.weight_decay and name != "adamw":
        parts.append(jo.add_decayed_weights(args.weight_decay))
    tx = jo.chain(*parts, base) if parts else base
    if args.apply_if_finite:
        tx = jo.apply_if_finite(tx, max_consecutive_errors=5)
    return tx


def _augmenter(x_train):
    """Per-example random shift (±1 px), rotation (±10°) and zoom, background preserved."""
    import jax

    import jtricks.data as jd

    background = float(x_train.min())

    def one(key, image):
        k1, k2, k3 = jax.random.split(key, 3)
        image = jd.random_shift(k1, image, max_shift=1.0, cval=background)
        image = jd.random_rotate(k2, image, max_degrees=10.0, cval=background)
        return jd.random_zoom(k3, image, cval=background)

    def augment(key, x):
        return jax.vmap(one)(jax.random.split(key, x.shape[0]), x)

    return augment


def run(args) -> int:
    if args.resume and not args.checkpoint_dir:
        raise CliError("--resume needs --checkpoint-dir DIR (the folder of the checkpoints "
                       "to continue from)")
    if args.model != "mlp" and args.hidden != (256, 128):
        say("note: --hidden only applies to --model mlp")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out!r} exists and is not a directory")

    request_devices(args.devices)
    import jax

    import jtricks.data as jd
    import jtricks.train as jt

    data = load_dataset(args.data, args.seed, scale=args.scale)
    (xtr, ytr), (xva, yva), (xte, yte) = data["train"], data["val"], data["test"]
    steps_per_epoch = len(ytr) // min(args.batch_size, len(ytr))
    try:  # every construction-time ValueError becomes a one-line usage error
        model = build_model(args, data["num_classes"])
        tx = build_optimizer(args, steps_per_epoch)
        early = (jt.early_stopping(args.early_stopping)
                 if args.early_stopping is not None else None)
        averager = jt.ema(args.ema) if args.ema is not None else None
        weights = jd.class_weights(ytr, data["num_classes"]) if args.class_weights else None
    except (ValueError, TypeError) as e:
        raise CliError(str(e)) from None
    loss_fn = jt.classifier_loss(model, class_weights=weights,
                                 augment=_augmenter(xtr) if args.augment else None)
    key = jax.random.PRNGKey(args.seed)
    init_key, train_key, data_key = jax.random.split(key, 3)
    params, model_state = model.init(init_key, xtr.shape[1:])
    state = jt.TrainState.create(params=params, tx=tx, key=train_key, model_state=model_state)
    state, loss_fn = data_parallel(args.devices, args.batch_size, state, loss_fn)
    say(f"jtricks train: {data['name']} ({len(ytr)} train / {len(yva)} validation / "
        f"{len(yte)} test), {args.model}, {args.optimizer}, {args.epochs} epochs of "
        f"{steps_per_epoch} steps")
    reduce_lr = (jt.ReduceLROnPlateau(args.reduce_lr_on_plateau, args.plateau_patience)
                 if args.reduce_lr_on_plateau is not None else None)
    result = jt.fit(
        state, tx, loss_fn, (xtr, ytr), epochs=args.epochs, batch_size=args.batch_size,
        data_key=data_key, val_data=(xva, yva), eval_fn=jt.classifier_eval(model),
        early_stopping=early, reduce_lr=reduce_lr, averager=averager,
        checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
        resume=args.resume, history_dir=args.out, progress=not args.quiet)
    if result.stop_reason and "diverged" in result.stop_reason:
        say(f"jtricks train: stopped: {result.stop_reason}")
        return 1
    params = result.state.params
    if averager is not None:
        params = jt.averaged_params(result.avg_state, params)
    test = jt.evaluate(jt.classifier_eval(model), params, result.state.model_state, (xte, yte))
    summary = {
        "data": data["name"], "epochs_run": len(result.history),
        "stop_reason": result.stop_reason,
        "best_val_accuracy": max((r["val_accuracy"] for r in result.history), default=None),
        "test_accuracy": float(test["accuracy"]), "test_loss": float(test["loss"]),
        "test_examples": int(len(yte)),
        "config": {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in vars(args).items() if k not in ("run", "data")},
    }
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
    print(f"test accuracy: {summary['test_accuracy']:.4f} "
          f"({len(yte)} test examples, evaluated once after training"
          f"{', EMA weights' if averager is not None else ''})")
    return 0
