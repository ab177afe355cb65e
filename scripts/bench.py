"""Runs the jtricks benchmarks (same as ``jtricks bench``); see :mod:`jtricks.bench`.

Usage: ``PYTHONPATH=. python scripts/bench.py [--quick] [--out BENCHMARKS.md]``.
"""

import sys

from jtricks.bench import main

if __name__ == "__main__":
    sys.exit(main())
