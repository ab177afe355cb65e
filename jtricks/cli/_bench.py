"""``jtricks bench``: runs the source checkout's ``benchmarks/`` with every argument.

The benchmark harness is not part of the installed package (it needs flax and
starts worker processes); it lives in ``benchmarks/`` at the root of a source
checkout. With an editable install (``pip install -e .``) the checkout is the
parent directory of the imported ``jtricks`` package, and ``jtricks bench
ARGS`` is ``python -m benchmarks ARGS`` run there. Without a checkout it exits
with status 2 and one line saying how to run the benchmarks.
"""

from __future__ import annotations

import os
import sys

COMMAND = "bench"

HOW = ("the benchmarks run from a source checkout of jtricks: clone the repository, "
       "run 'pip install -e \".[bench]\"' in it, then 'jtricks bench' "
       "(or 'python -m benchmarks' from the checkout's root)")


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run the benchmarks (see 'jtricks bench --help')",
                              add_help=False)
    p.add_argument("args", nargs="*")


def find_checkout(package_dir: str | None = None) -> str | None:
    """The source checkout holding ``benchmarks/`` beside ``package_dir``, or ``None``.

    Args:
      package_dir: the ``jtricks`` package directory (default: the imported one).

    Returns:
      The checkout's root (the parent of ``package_dir``) when it has a
      ``benchmarks/__init__.py``; ``None`` for an installed (non-editable) copy.
    """
    if package_dir is None:
        import jtricks

        package_dir = os.path.dirname(os.path.abspath(jtricks.__file__))
    root = os.path.dirname(os.path.realpath(package_dir))
    return root if os.path.isfile(os.path.join(root, "benchmarks", "__init__.py")) else None


def _import_benchmarks(root: str):
    """Imports ``benchmarks`` from ``root``; refuses another package of that name."""
    import importlib

    expected = os.path.join(root, "benchmarks")
    loaded = sys.modules.get("benchmarks")
    if loaded is not None:
        where = os.path.dirname(os.path.realpath(getattr(loaded, "__file__", "") or ""))
        if where != os.path.realpath(expected):
            raise ImportError(f"another module named 'benchmarks' is already imported "
                              f"(from {where or 'nowhere'}), not {expected}")
        return loaded
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module("benchmarks")
    where = os.path.dirname(os.path.realpath(str(module.__file__)))
    if where != os.path.realpath(expected):
        raise ImportError(f"'benchmarks' was imported from {where}, not {expected}")
    return module


def run_bench(argv) -> int:
    """Finds the checkout's ``benchmarks/`` and runs its ``main(argv)``; 2 where there is none."""
    root = find_checkout()
    if root is None:
        print(f"jtricks bench: error: {HOW}", file=sys.stderr)
        return 2
    try:
        benchmarks = _import_benchmarks(root)
    except ImportError as e:
        print(f"jtricks bench: error: the benchmarks in {root} could not be imported ({e}); "
              "install their dependencies with 'pip install -e \".[bench]\"'", file=sys.stderr)
        return 2
    return int(benchmarks.main(list(argv)) or 0)
