"""``jtricks bench``: jtricks side by side with optax, flax + optax and PyTorch, one command.

``jtricks bench --out BENCHMARKS.md`` regenerates every table of ``BENCHMARKS.md``:

1. ``optimizer``: ``chain(clip_by_global_norm(1), adam(1e-3))`` + apply on trees of
   1 x 8M, 64 x 128K, 1024 x 1K and 4096 x 256 float32 leaves: optax and jtricks on the tree,
   both on ``jtricks.optim.ravel`` buffers, ``jtricks.optim.flatten``, and PyTorch's Adam
   (``foreach`` / ``fused``) with ``clip_grad_norm_`` (:mod:`benchmarks._step`);
2. ``models``: the training step of a ResNet with batch norm and of a transformer stack, each
   with hundreds of leaves, in flax + optax, jtricks and PyTorch (:mod:`benchmarks._models`);
3. ``cold``: time to a target validation accuracy from a cold start, each run a fresh process,
   and the compiled training throughput (:mod:`benchmarks._cold`,
   :mod:`benchmarks._throughput`);
4. ``sweep``: K = 16 learning rates with ``jtricks.sweep.train`` against 16 sequential flax +
   optax and PyTorch runs, and member-steps per second (:mod:`benchmarks._sweep`).

``--only TABLE[,TABLE]`` reruns some tables and keeps the others of the existing report (its
figures are stored in the report itself, in a comment at its end). ``--quick`` is a seconds-long
smoke run on tiny sizes, without PyTorch. Run it from a source checkout (``jtricks bench``,
``python -m benchmarks`` from the checkout's root, or ``python scripts/bench.py``); the installed
``jtricks`` does not ship the harness. PyTorch, flax and scikit-learn come with the ``bench``
extra; without PyTorch its columns are skipped (one line says so).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]

TABLES = ("optimizer", "models", "cold", "sweep")
FULL_SHAPES = ((1, 8 << 20), (64, 128 << 10), (1024, 1024), (4096, 256))
QUICK_SHAPES = ((32, 128),)
DEFAULT_TIMEOUT = 120.0
# The benchmarks compare with flax on the embedded digits (scikit-learn).
NEEDS = ("flax", "sklearn")


def _parse_args(argv):
    from benchmarks._measure import parse_shape

    parser = argparse.ArgumentParser(prog="jtricks bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds-long smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per figure")
    parser.add_argument("--out", default="BENCHMARKS.md", help="report path ('-': none)")
    parser.add_argument("--only", default=",".join(TABLES),
                        help=f"comma-separated tables to run ({', '.join(TABLES)}); the "
                        "others are kept from the existing --out")
    parser.add_argument(
        "--shapes", default=None,
        help="comma-separated trees of the optimizer table, LEAVESxSIZE with K/M suffixes "
        "(default 1x8M,64x128K,1024x1K,4096x256)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT,
        help=f"seconds allowed to each optimizer program whose compile grows with the leaves "
        f"(default {DEFAULT_TIMEOUT:.0f}; one that does not compile in time is reported as "
        "'> T s'); a model row's worker gets 6 times as long, a cold-start run 10 times",
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats={args.repeats} must be >= 1")
    if args.timeout <= 0:
        parser.error(f"--timeout={args.timeout} must be > 0 seconds")
    args.only = tuple(t.strip() for t in args.only.split(",") if t.strip())
    unknown = [t for t in args.only if t not in TABLES]
    if unknown or not args.only:
        parser.error(f"--only={','.join(args.only)!r}: tables are {', '.join(TABLES)}")
    try:
        args.shapes = (None if args.shapes is None
                       else tuple(parse_shape(t) for t in args.shapes.split(",") if t.strip()))
    except ValueError as e:
        parser.error(str(e))
    return args


def main(argv=None) -> int:
    """Runs the benchmarks, prints the report and writes it to ``--out``.

    Args:
      argv: command-line arguments (default ``sys.argv[1:]``); see
        ``jtricks bench --help``.

    Returns:
      The exit status: 0, or 2 (one line on stderr) when flax or scikit-learn (the
      ``bench`` extra) is missing.
    """
    args = _parse_args(argv)
    # PyTorch runs as a user runs it: as many threads as cores, OpenMP's default waiting.
    # OMP_WAIT_POLICY=PASSIVE, set here until issue 16's last stop, made it 2-3x slower on
    # the idle 2-core machine (one process each, medians: digits MLP epoch 241 ms against
    # 89, CNN epoch 306 against 94, table 2's transformer step 190 against 104 and ResNet
    # step 480 against 222); a policy in the caller's environment is kept and reported.
    from jtricks._optional import install_hint, missing

    absent = missing(NEEDS)
    if absent:
        print(f"jtricks bench: error: {install_hint(absent, 'jtricks bench', extra='bench')}",
              file=sys.stderr)
        return 2
    from benchmarks._run import run_tables

    command = "jtricks bench " + " ".join(sys.argv[1:] if argv is None else argv)
    return run_tables(args, command.strip())
