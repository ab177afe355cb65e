"""Runs the jtricks benchmarks (same as ``jtricks bench``); see ``benchmarks/__init__.py``.

Usage, from anywhere in a source checkout: ``python scripts/bench.py [--quick]
[--out BENCHMARKS.md]``. The checkout's root is put first on ``sys.path``, so
the checkout's ``benchmarks`` and ``jtricks`` are the ones imported.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    from benchmarks import main

    sys.exit(main())
