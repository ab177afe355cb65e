"""``jtricks bench``: optimizer steps and a training step, jtricks vs optax / flax.

Measures, side by side in one run:

* the machine's copy bandwidth (a jitted, donated ``x + 1`` on 16M floats);
* Adam with global-norm clipping, update + apply, on trees of 1 x 16M,
  64 x 256K, 2048 x 1K and 8192 x 512 float32 leaves: optax on the tree, and
  jtricks with the parameters kept flat (:func:`jtricks.optim.ravel`), both as
  the optimizer sees them (flat gradients, as the backward pass of ``unravel``
  produces them) and starting from a gradient *tree* (one concatenate more);
  effective bandwidth counts 7 x 4 bytes per parameter (read p, g, m, v; write
  p, m, v) and is given as a fraction of the copy bandwidth;
* the compile time of that step for 256, 1024 and 4096 leaves;
* a full training step of a digits MLP with batch norm and dropout, written
  with jtricks vs the same model written with flax + optax;
* the step and compile tables again on the first GPU, when there is one.

Every step donates its parameters and optimizer state, is warmed up, and is
timed with ``block_until_ready``; the figures are medians over repeats. Each
step or compile row runs in its own process with a time limit (``--timeout``),
because optax's compile time grows faster than linearly with the leaves.
Run ``jtricks bench`` from a source checkout (or, from the checkout's root,
``python -m benchmarks`` or ``python scripts/bench.py``); ``--quick`` is a
seconds-long smoke run on tiny trees. The harness lives beside the package,
not in it: the installed ``jtricks`` does not ship it (nor its flax
dependency).
"""

from __future__ import annotations

import argparse
import sys

import jax

from jtricks._optional import install_hint, missing
from benchmarks._measure import describe_machine, log, parse_shape
from benchmarks._report import format_report
from benchmarks._step import isolated_compile_row, isolated_step_row
from benchmarks._train import bench_train_step

__all__ = ["main"]

FULL_SHAPES = ((1, 16 << 20), (64, 256 << 10), (2048, 1024), (8192, 512))
FULL_COMPILE = (256, 1024, 4096)
QUICK_SHAPES = ((32, 128),)
DEFAULT_TIMEOUT = 3600.0
# The training step compares with flax on the embedded digits (scikit-learn).
TRAIN_NEEDS = ("flax", "sklearn")


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="jtricks bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny trees, seconds-long smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per median")
    parser.add_argument("--out", default="BENCHMARKS.md", help="report path ('-': none)")
    parser.add_argument("--no-train", action="store_true", help="skip the training step")
    parser.add_argument(
        "--shapes",
        default=None,
        help="comma-separated trees of the step table, LEAVESxSIZE with K/M suffixes "
        "(default 1x16M,64x256K,2048x1K,8192x512)",
    )
    parser.add_argument(
        "--compile-leaves",
        default=None,
        help="comma-separated leaf counts of the compile table of 1K leaves "
        "(default 256,1024,4096; '' for none)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds allowed to each row's process (default {DEFAULT_TIMEOUT:.0f}); a row "
        "whose optax compile runs out of time keeps its jtricks figures",
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats={args.repeats} must be >= 1")
    if args.timeout <= 0:
        parser.error(f"--timeout={args.timeout} must be > 0 seconds")
    try:
        args.shapes = (
            None
            if args.shapes is None
            else tuple(parse_shape(t) for t in args.shapes.split(",") if t.strip())
        )
        args.compile_leaves = (
            None
            if args.compile_leaves is None
            else tuple(int(c) for c in args.compile_leaves.split(",") if c.strip())
        )
    except ValueError as e:
        parser.error(str(e))
    if args.compile_leaves and min(args.compile_leaves) < 1:
        parser.error(f"--compile-leaves must be positive counts, got {args.compile_leaves}")
    return args


def _section(platform: str, shapes, compile_counts, compile_size, copy_n, repeats, timeout):
    device = jax.devices(platform)[0]
    common = dict(platform=platform, timeout=timeout)
    steps = [
        isolated_step_row(leaves, size, repeats=repeats, copy_n=copy_n, **common)
        for leaves, size in shapes
    ]
    compiles = [isolated_compile_row(n, compile_size, **common) for n in compile_counts]
    return dict(
        device=f"{device.platform}: {device.device_kind}",
        copy_n=copy_n,
        steps=steps,
        compiles=compiles,
    )


def main(argv=None) -> int:
    """Runs the benchmarks, prints the tables and writes ``BENCHMARKS.md``.

    Args:
      argv: command-line arguments (default ``sys.argv[1:]``); see
        ``jtricks bench --help``.

    Returns:
      The exit status: 0, or 2 (one line on stderr) when the training step's optional
      packages (flax, scikit-learn: the ``bench`` extra) are missing.
    """
    args = _parse_args(argv)
    absent = [] if args.no_train else missing(TRAIN_NEEDS)
    if absent:  # before any row runs: the training step comes last
        print(f"jtricks bench: error: {install_hint(absent, 'the training step', extra='bench')}"
              " (or skip it: --no-train)", file=sys.stderr)
        return 2
    command = "jtricks bench " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.quick:
        shapes, counts, copy_n = QUICK_SHAPES, (), 1 << 16
        repeats, features, batch = args.repeats or 2, (16, 10), 16
    else:
        shapes, counts, copy_n = FULL_SHAPES, FULL_COMPILE, 16 << 20
        repeats, features, batch = args.repeats or 10, (256, 256, 10), 128
    shapes = args.shapes if args.shapes is not None else shapes
    counts = args.compile_leaves if args.compile_leaves is not None else counts
    size = 128 if args.quick else 1024

    machine = describe_machine()
    platforms = ["cpu"] + (["gpu"] if _has_gpu() else [])
    sections = [
        _section(p, shapes, counts, size, copy_n, repeats, args.timeout) for p in platforms
    ]
    trains = []
    for p in [] if args.no_train else platforms:
        log(f"[bench] training step ({p}) ...")
        with jax.default_device(jax.devices(p)[0]):
            train = bench_train_step(features, batch, repeats if args.quick else max(repeats, 20))
        trains.append(dict(train, device=sections[platforms.index(p)]["device"]))
    report = format_report(command, machine, sections, trains)
    print(report)
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(report)
        log(f"[bench] wrote {args.out}")
    return 0


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False
