"""What every subcommand shares: one-line usage errors, flag syntax, the library's
checks reported as flags, optional packages, the datasets."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys


class CliError(Exception):
    """A bad value on the command line: ``main`` prints ``jtricks <command>: error: <message>``
    on one line and exits with status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block) and exit 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# -- argparse types: only the syntax of a flag (is it a number, an integer, a list).
# Whether the value is in range is decided by the library (see ``library_errors``
# and ``check``), so the command line accepts exactly what the library accepts.


def number(text):
    """argparse type: a number (``1e-3``, ``0.5``; ``inf`` and ``nan`` parse and are
    refused later by :func:`check_finite`)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def integer(text):
    """argparse type: an integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _list_of(kind, what: str, example: str):
    """argparse type: comma-separated values of ``kind``, e.g. ``example``."""

    def parse(text):
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of {what} (e.g. {example})") from None

    parse.__doc__ = f"argparse type: comma-separated {what}, e.g. ``{example}``."
    return parse


int_list = _list_of(int, "integers", "256,128")
number_list = _list_of(float, "numbers", "1e-3,1e-2")


def data_spec(text):
    """argparse type: ``digits``, ``mnist1d`` or ``mnist:DIR`` (the directory is checked
    when loading)."""
    if text in ("digits", "mnist1d"):
        return text
    if text.startswith("mnist:"):
        if not text[len("mnist:"):]:
            raise argparse.ArgumentTypeError("mnist: needs a directory, e.g. mnist:~/data/mnist")
        return text
    raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; accepted: digits, mnist1d, "
                                     "mnist:DIR")


# -- values: the library's checks, reported as the flag and the value.


def show(value) -> str:
    """A flag's value as it is typed: ``1.5``, ``256,128``."""
    if isinstance(value, (tuple, list)):
        return ",".join(show(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


@contextlib.contextmanager
def library_errors(flags: dict):
    """Turns a ``ValueError``/``TypeError`` of the library into a :class:`CliError`
    naming the flag and its value.

    Args:
      flags: ``{library argument name: (flag, value)}`` for the flags whose values go
        into the code of the block (``value=None``: the message shows the flag alone). The library's messages start with the argument's
        name (``dropout=1.5 must be <= 1``), which picks the flag; a message naming
        none of them names every flag of the block.

    Example:
      >>> import jtricks.nn
      >>> with library_errors({"dropout": ("--dropout", 1.5)}):
      ...     jtricks.nn.mlp((10,), dropout=1.5)
      Traceback (most recent call last):
      jtricks.cli._common.CliError: --dropout 1.5: dropout=1.5 must be <= 1
    """
    try:
        yield
    except (ValueError, TypeError) as e:
        match = re.match(r"(\w+)(?:\[[^\]]*\])?=", str(e))
        named = [flags[match.group(1)]] if match and match.group(1) in flags else list(
            dict.fromkeys(flags.values()))
        where = ", ".join(flag if value is None else f"{flag} {show(value)}"
                          for flag, value in named)
        raise CliError(f"{where}: {e}") from None


def check(flag: str, value, checker, name: str, **kw):
    """Runs a check of :mod:`jtricks._validate` (``check_int``, ``check_number``, ...) on
    a flag that feeds no library constructor; returns what the check returns.

    A list flag (a tuple value) is checked element by element.

    Raises:
      CliError: ``"--epochs 0: epochs=0 must be >= 1"``, ``"--lr 0.001,inf: lr=inf must
        be finite"``.
    """
    with library_errors({name: (flag, value)}):
        if isinstance(value, tuple):
            return tuple(checker(name, v, **kw) for v in value)
        return checker(name, value, **kw)


def check_finite(args, flags) -> None:
    """Refuses ``inf`` and ``nan`` in the number flags ``flags`` (``{flag: dest}``) of
    ``args``, single values or lists; ``None`` (not given) passes."""
    from jtricks._validate import check_number

    for flag, dest in flags.items():
        value = getattr(args, dest)
        if value is not None:
            check(flag, value, check_number, dest, finite=True)


def require_extras(command: str, modules) -> None:
    """Exits 2 with one line naming the extra when an optional package is missing.

    Args:
      command: e.g. ``"jtricks demo"``.
      modules: import names, e.g. ``("sklearn", "matplotlib")``.

    Raises:
      CliError: ``"jtricks demo needs scikit-learn, matplotlib: pip install
        'jtricks[demo]'"``.
    """
    from jtricks._optional import install_hint, missing

    absent = missing(modules)
    if absent:
        raise CliError(install_hint(absent, command))


def load_data(spec: str, seed: int, *, scale: str = "minmax"):
    """:func:`jtricks.data.load_split` of ``--data spec``; its errors name ``--data``.

    Returns:
      A :class:`jtricks.data.Split` (NumPy arrays, scaled on the training part).

    Raises:
      CliError: when the directory or a file is missing or unreadable, or a class is
        too small to split.
    """
    import jtricks.data as jd

    try:
        return jd.load_split(spec, seed, scale=scale)
    except (OSError, ValueError, ImportError) as e:
        raise CliError(f"--data {spec}: cannot load it: {e}") from None


def writable_dir(flag: str, path: str) -> None:
    """Checks, before any work and without creating anything, that ``path`` is a
    directory this process can write to, or can be created as one (its nearest
    existing parent is a writable directory): e.g. ``--out``, ``--checkpoint-dir``.

    Raises:
      CliError: ``"--out runs/x: exists and is a file; give a directory"``,
        ``"--out /x/y: /x is not writable; choose another directory"``.

    Example:
      >>> import os, tempfile
      >>> folder = tempfile.mkdtemp()
      >>> writable_dir("--out", os.path.join(folder, "run", "1"))  # can be created
      >>> open(os.path.join(folder, "notes"), "w").close()
      >>> writable_dir("--out", os.path.join(folder, "notes"))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      jtricks.cli._common.CliError: --out .../notes: exists and is a file; give a directory
    """
    import os

    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise CliError(f"{flag} {path}: exists and is a file; give a directory")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CliError(f"{flag} {path}: {parent} is a file, so the directory cannot be "
                       "created; choose another directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        what = "is not writable" if parent == path else \
            f"cannot be created ({parent} is not writable)"
        raise CliError(f"{flag} {path}: {what}; choose another directory")


def say(message: str) -> None:
    """Progress and results for a person, on stderr (stdout keeps the results)."""
    print(message, file=sys.stderr, flush=True)


def data_extras(spec: str) -> tuple[str, ...]:
    """The optional packages ``--data spec`` needs: scikit-learn for digits, mnist1d for
    MNIST-1D, none for MNIST IDX files."""
    return {"digits": ("sklearn",), "mnist1d": ("mnist1d",)}.get(spec, ())
