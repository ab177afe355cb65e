"""What every subcommand shares: one-line usage errors, argument types, datasets."""

from __future__ import annotations

import argparse
import os
import sys


class CliError(Exception):
    """A bad value on the command line: ``main`` prints ``jtricks: error: <message>``
    on one line and exits with status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block) and exit 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(kind, text, lo=None, hi=None, lo_open=False, hi_open=False, what=""):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value != value or (lo is not None and (value < lo or (lo_open and value == lo))) or (
            hi is not None and (value > hi or (hi_open and value == hi))):
        raise argparse.ArgumentTypeError(f"{text} is out of range; expected {what}")
    return value


def positive_float(text):
    """argparse type: a number > 0."""
    return _number(float, text, lo=0, lo_open=True, what="a number > 0")


def non_negative_float(text):
    """argparse type: a number >= 0."""
    return _number(float, text, lo=0, what="a number >= 0")


def rate(text):
    """argparse type: a probability in [0, 1)."""
    return _number(float, text, lo=0, hi=1, hi_open=True, what="a number in [0, 1)")


def unit_open(text):
    """argparse type: a number in (0, 1)."""
    return _number(float, text, lo=0, hi=1, lo_open=True, hi_open=True,
                   what="a number in (0, 1)")


def decay_factor(text):
    """argparse type: a multiplicative factor in (0, 1]."""
    return _number(float, text, lo=0, hi=1, lo_open=True, what="a number in (0, 1]")


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _number(int, text, lo=1, what="an integer >= 1")


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    return _number(int, text, lo=0, what="an integer >= 0")


def int_list(text):
    """argparse type: comma-separated positive integers, e.g. ``256,128``."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 256,128)") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every width must be >= 1")
    return values


def data_spec(text):
    """argparse type: ``digits`` or ``mnist:DIR`` (checked for existence here)."""
    if text == "digits":
        return ("digits", None)
    if text.startswith("mnist:"):
        directory = os.path.expanduser(text[len("mnist:"):])
        if not directory:
            raise argparse.ArgumentTypeError("mnist: needs a directory, e.g. mnist:~/data/mnist")
        if not os.path.isdir(directory):
            raise argparse.ArgumentTypeError(
                f"MNIST directory {directory!r} does not exist; expected a directory with "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
                "and t10k-labels-idx1-ubyte (optionally .gz)")
        return ("mnist", directory)
    raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; accepted: digits, mnist:DIR")


def load_dataset(spec, seed: int, *, scale: str = "minmax"):
    """Loads a dataset and makes the honest 70/20/10 (digits) split, scaled on train.

    Args:
      spec: ``("digits", None)`` or ``("mnist", directory)`` from :func:`data_spec`.
      seed: seeds the split.
      scale: ``"minmax"`` (to [-1, 1]), ``"standardize"`` or ``"none"``; fitted on
        the training part only.

    Returns:
      ``{"train": (x, y), "val": (x, y), "test": (x, y), "num_classes": int,
      "name": str}`` with NumPy arrays.

    Raises:
      CliError: when files are missing or unreadable.
    """
    import jax
    import numpy as np

    import jtricks.data as jd

    name, directory = spec
    if name == "digits":
        x, y = jd.load_digits()
        x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
        parts = jd.split(jax.random.PRNGKey(seed), len(y), (0.7, 0.2, 0.1), stratify=y)
        (xtr, ytr), (xva, yva), (xte, yte) = [(x[np.asarray(i)], y[np.asarray(i)])
                                             for i in parts]
    else:
        try:
            x, y = jd.load_mnist_idx(directory, split="train")
            xte, yte = jd.load_mnist_idx(directory, split="test")
        except (OSError, ValueError) as e:
            raise CliError(f"cannot read MNIST from {directory!r}: {e}") from None
        x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
        xte, yte = np.asarray(xte, np.float32), np.asarray(yte, np.int32)
        tr, va = jd.split(jax.random.PRNGKey(seed), len(y), (5 / 6, 1 / 6), stratify=y)
        (xtr, ytr), (xva, yva) = (x[np.asarray(tr)], y[np.asarray(tr)]), (
            x[np.asarray(va)], y[np.asarray(va)])
    if scale != "none":
        scaler = (jd.minmax_scale(xtr, feature_range=(-1, 1)) if scale == "minmax"
                  else jd.standardize(xtr))
        xtr, xva, xte = (np.asarray(scaler(a)) for a in (xtr, xva, xte))
    return {"train": (xtr, ytr), "val": (xva, yva), "test": (xte, yte),
            "num_classes": int(max(ytr.max(), yva.max(), yte.max())) + 1,
            "name": name if name == "digits" else f"mnist:{directory}"}


def say(message: str) -> None:
    """Progress and results for a person, on stderr (stdout keeps the results)."""
    print(message, file=sys.stderr, flush=True)
