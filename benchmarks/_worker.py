"""A benchmark worker: ``python -m benchmarks._worker {step|compile} LEAVES SIZE [...]``.

Runs one row of :mod:`benchmarks._step` in this process and prints its
figures as tagged JSON lines; ``jtricks bench`` starts one per row, with a
time limit. (A module of its own, so that ``-m`` does not find it already
imported by the ``benchmarks`` package.)
"""

from __future__ import annotations

import argparse

import jax

from benchmarks._step import compile_row, step_row


def _worker_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._worker")
    parser.add_argument("kind", choices=("step", "compile"))
    parser.add_argument("leaves", type=int)
    parser.add_argument("size", type=int)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--copy-n", type=int, default=16 << 20)
    parser.add_argument("--platform", default="cpu")
    args = parser.parse_args(argv)
    with jax.default_device(jax.devices(args.platform)[0]):
        if args.kind == "step":
            step_row(args.leaves, args.size, args.repeats, args.copy_n)
        else:
            compile_row(args.leaves, args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main())
