"""``jtricks train``'s flags made into library objects: the model, the schedule, the
optimizer chain, early stopping, the averager, class weights and augmentation.

The library's own checks decide which values are valid; :func:`jtricks.cli._common.
library_errors` turns a refusal into one line naming the flag and the value.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import _registry
from ._common import library_errors

# A learning rate that works on digits for each optimizer when --lr is not given.
DEFAULT_LR = _registry.cli_default_lr()


def _initializer(name: str, scale):
    import jtricks.init as ji

    with library_errors({"scale": ("--init-scale", scale), "stddev": ("--init-scale", scale)}):
        if name in ("zeros", "ones"):
            return getattr(ji, name)
        if name == "uniform":
            return ji.uniform(0.05 if scale is None else scale)
        if name == "normal":
            return ji.normal(1.0 if scale is None else scale)
        return getattr(ji, name)()


def build_model(args, num_classes: int):
    """The model of ``args`` (``--model``, ``--hidden``, ``--init``, ...).

    Raises:
      CliError: when the library refuses a value, naming its flag.
    """
    import jax

    import jtricks.nn as nn

    activation = getattr(jax.nn, args.activation)
    kernel_init = _initializer(args.init, args.init_scale)
    with library_errors({"features": ("--hidden", args.hidden),
                         "dropout": ("--dropout", args.dropout),
                         "drop_path": ("--drop-path", args.drop_path)}):
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
    """The learning rate or schedule of ``args``.

    Raises:
      CliError: when the library refuses ``--lr`` or ``--lr-decay``.
    """
    import jtricks.optim as jo
    import jtricks.optim.schedules as sch

    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    total = max(args.epochs * steps_per_epoch, 1)
    flags = {name: ("--lr", lr) for name in ("learning_rate", "init_value", "peak_value")}
    flags["factor"] = ("--lr-decay", args.lr_decay)
    with library_errors(flags):
        jo.scale_by_learning_rate(lr)  # the optimizers' check of a learning rate
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
    """The gradient transformation of ``args``: clipping, decay, optimizer, wrappers.

    Raises:
      CliError: when the library refuses a value, naming its flag.
    """
    import jtricks.optim as jo

    lr = build_schedule(args, steps_per_epoch)
    eps = {} if args.eps is None else {"eps": args.eps}
    name = args.optimizer
    flags = {"learning_rate": ("--lr", DEFAULT_LR[name] if args.lr is None else args.lr),
             "momentum": ("--momentum", args.momentum),
             "decay": ("--rho", args.rho), "rho": ("--rho", args.rho), "b1": ("--b1", args.b1),
             "b2": ("--b2", args.b2), "eps": ("--eps", args.eps),
             "weight_decay": ("--weight-decay", args.weight_decay), "l1": ("--l1", args.l1),
             "max_delta": ("--clip-value", args.clip_value),
             "max_norm": ("--clip-norm", args.clip_norm)}
    with library_errors(flags):
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
    with library_errors({"factor": ("--reduce-lr-on-plateau", args.reduce_lr_on_plateau),
                         "patience": ("--plateau-patience", args.plateau_patience)}):
        if args.reduce_lr_on_plateau is not None:
            # one evaluation per epoch: the epoch's mean training loss (fit passes value=loss)
            tx = jo.chain(tx, jo.reduce_on_plateau(args.reduce_lr_on_plateau,
                                                   args.plateau_patience,
                                                   accumulation_size=steps_per_epoch))
    if args.apply_if_finite:
        tx = jo.apply_if_finite(tx, max_consecutive_errors=(
            UNLIMITED_BAD_STEPS if args.max_bad_steps is None else args.max_bad_steps))
    return tx


# apply_if_finite's counter saturates at the int32 maximum: never more than this in a row.
UNLIMITED_BAD_STEPS = 2**31 - 1


class Built(NamedTuple):
    """What :func:`build` makes from the flags."""

    model: Any
    tx: Any
    early_stopping: Any
    averager: Any
    class_weights: Any


def build(args, data) -> Built:
    """The one place where the flags become library objects; the library's checks decide
    which values are valid and a refusal names the flag and the value.

    Args:
      args: the parsed flags (after :func:`check_args`).
      data: the :class:`jtricks.data.Split` trained on.

    Raises:
      CliError: e.g. ``--dropout 1.5: dropout=1.5 must be <= 1``.
    """
    import jtricks.data as jd
    import jtricks.train as jt

    steps_per_epoch = len(data.y_train) // min(args.batch_size, len(data.y_train))
    model = build_model(args, data.num_classes)
    tx = build_optimizer(args, steps_per_epoch)
    with library_errors({"patience": ("--early-stopping", args.early_stopping)}):
        early = (jt.early_stopping(args.early_stopping)
                 if args.early_stopping is not None else None)
    with library_errors({"decay": ("--ema", args.ema)}):
        averager = jt.ema(args.ema) if args.ema is not None else None
    with library_errors({"labels": ("--class-weights", None)}):
        weights = (jd.class_weights(data.y_train, data.num_classes) if args.class_weights
                   else None)
    return Built(model, tx, early, averager, weights)


def _augmenter(x_train):
    """Per-example random shift (±1 px), rotation (±10°) and zoom, background preserved;
    for one-row signals (MNIST-1D) a circular shift along the row (±4 positions)."""
    import jax
    import jax.numpy as jnp

    import jtricks
    import jtricks.data as jd

    background = float(x_train.min())

    def one(key, image):
        if image.shape[0] == 1:  # a 1-D signal: rotation and zoom mean nothing
            shift = jax.random.uniform(key, (), minval=-4.0, maxval=4.0)
            return jd.affine_transform(image, jnp.eye(2), jnp.stack([0.0, shift]), mode="wrap")
        k1, k2, k3 = jax.random.split(key, 3)
        image = jd.random_shift(k1, image, max_shift=1.0, cval=background)
        image = jd.random_rotate(k2, image, max_degrees=10.0, cval=background)
        return jd.random_zoom(k3, image, cval=background)

    def augment(key, x):  # example i's key from its global index: device-count free
        return jax.vmap(one)(jtricks.nn.example_keys(key, x.shape[0]), x)

    return augment
