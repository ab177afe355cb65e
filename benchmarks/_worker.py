"""A benchmark worker: ``python -m benchmarks._worker KIND ...`` runs one row in this process.

* ``step LEAVES SIZE [--repeats R] [--copy-n N] [--skip NAME,...] [--compile-limit S]``:
  a row of the optimizer-step table (:mod:`benchmarks._step`);
* ``model NAME [--quick] [--repeats R]``: a row of the real-model table
  (:mod:`benchmarks._models`).

The row is printed as tagged JSON lines, stage by stage; ``jtricks bench``
starts one worker per row, with a time limit. (A module of its own, so that
``-m`` does not find it already imported by the ``benchmarks`` package.)
"""

from __future__ import annotations

import argparse

import jax


def _worker_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._worker")
    parser.add_argument("kind", choices=("step", "model"))
    parser.add_argument("args", nargs="+")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--copy-n", type=int, default=16 << 20)
    parser.add_argument("--skip", default="")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--platform", default="cpu")
    parser.add_argument("--compile-limit", type=float, default=None)
    args = parser.parse_args(argv)
    with jax.default_device(jax.devices(args.platform)[0]):
        if args.kind == "step":
            from benchmarks._step import step_row

            leaves, size = (int(a) for a in args.args)
            skip = tuple(s for s in args.skip.split(",") if s)
            step_row(leaves, size, args.repeats, args.copy_n, skip, args.compile_limit)
        else:
            from benchmarks._models import model_row

            model_row(args.args[0], args.quick, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main())
