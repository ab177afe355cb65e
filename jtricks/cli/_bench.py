"""``jtricks bench``: hands every argument to ``jtricks.bench.main(argv)``."""

from __future__ import annotations

import sys

COMMAND = "bench"


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run the benchmarks (see 'jtricks bench --help')",
                              add_help=False)
    p.add_argument("args", nargs="*")


def run_bench(argv) -> int:
    """Imports the benchmarks lazily and runs them with ``argv``."""
    try:
        from jtricks import bench
    except ImportError as e:
        print(f"jtricks bench: error: the benchmarks are not available ({e})", file=sys.stderr)
        return 2
    return int(bench.main(list(argv)) or 0)
