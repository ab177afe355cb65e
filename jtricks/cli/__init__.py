"""The ``jtricks`` command line: ``jtricks demo``, ``jtricks train``, ``jtricks bench``.

Every subcommand is one module of this package (``_train.py``, ``_demo.py``,
...) defining ``COMMAND`` (its name) and ``register(subparsers)``, which adds
its parser and sets ``run`` (``run(args) -> exit status``) as default. Adding
a subcommand is adding a module: this file finds them. Modules import JAX only
inside ``run``, so ``jtricks --help`` stays fast.

Errors in values (``--lr -1``, an unknown optimizer, a missing MNIST folder)
exit with status 2 and one line ``jtricks ...: error: ...`` naming what is
wrong and what is accepted.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from ._common import CliError as CliError
from ._common import Parser

__all__ = ["CliError", "build_parser", "compile_cache_dir", "enable_compile_cache", "main"]


def _command_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "COMMAND") and hasattr(module, "register"):
            yield module


def build_parser() -> Parser:
    """The argument parser with every subcommand registered."""
    from jtricks import __version__

    parser = Parser(prog="jtricks", description="The deep-learning training tricks in JAX: "
                    "run the lesson's experiments (demo), train one configuration (train), "
                    "train a grid of configurations at once (sweep), benchmark (bench).")
    parser.add_argument("--version", action="version", version=f"jtricks {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 failed run, 2 bad usage).

    Args:
      argv: the arguments after ``jtricks`` (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in _PASSTHROUGH:  # their own parsers see every flag
        return _PASSTHROUGH[argv[0]](argv[1:])
    args = parser.parse_args(argv)
    enable_compile_cache()
    try:
        return int(args.run(args) or 0)
    except CliError as e:
        print(f"jtricks {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jtricks {args.command}: interrupted", file=sys.stderr)
        return 130


def compile_cache_dir() -> str | None:
    """Where ``jtricks demo`` / ``train`` / ``sweep`` keep compiled programs between runs.

    ``$JTRICKS_COMPILE_CACHE`` if set (``off`` or ``0`` disables the cache), else
    ``$XDG_CACHE_HOME/jtricks/xla`` (``~/.cache/jtricks/xla``).
    """
    import os

    value = os.environ.get("JTRICKS_COMPILE_CACHE")
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "false", "no") else value
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jtricks", "xla")


def enable_compile_cache() -> str | None:
    """Turns on JAX's persistent compilation cache for this process; returns its folder.

    A run compiles the same programs as the previous run of the same
    configuration (the model's step, the epoch, the evaluation and the small
    programs of data preparation); with the cache, the second run loads them
    instead (``jtricks train --epochs 3`` on 2 CPU cores: about 50 s cold, 20 s
    warm under load). Every program is cached, however quick its compilation,
    since a run has dozens of small ones. JAX keys each entry by the program,
    the JAX version and the device, so a stale entry is never used. An
    unwritable folder leaves the cache off. ``jtricks bench`` does not use it:
    it measures compilation.
    """
    import os

    path = compile_cache_dir()
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK):
            return None
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def _run_bench(argv) -> int:  # not `_bench`: that name is the submodule `jtricks.cli._bench`
    from ._bench import run_bench

    return run_bench(argv)


_PASSTHROUGH = {"bench": _run_bench}
