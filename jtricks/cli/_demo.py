"""``jtricks demo``: run the lesson's experiments on digits and write the report."""

from __future__ import annotations

import os

from ._common import CliError, check, integer, require_extras, say

COMMAND = "demo"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="run one experiment per trick of the lesson and write a report",
        description="Runs the lesson's experiments (vanishing and exploding gradients, "
                    "scaling, initializers, batch / layer / "
                    "group norm, dropout, optimizers, learning-rate decay, "
                    "clipping, overfitting and early stopping, L1/L2 decay, class imbalance "
                    "and resampling, model averaging, augmentation, architecture: skip "
                    "connections and drop path, honest evaluation: validation against "
                    "test) on the embedded digits "
                    "and MNIST-1D, each arm over 8 seeds, and writes a report folder: "
                    "README.md with tables and verdicts, one PNG per experiment, "
                    "metrics.jsonl/csv.")
    p.add_argument("--out", default="jtricks-report",
                   help="report folder (default: jtricks-report)")
    p.add_argument("--quick", action="store_true",
                   help="few epochs per experiment (verdicts tentative)")
    p.add_argument("--only", default=None, metavar="NAME,NAME",
                   help="run only these experiments (comma-separated)")
    p.add_argument("--seed", type=integer, default=0,
                   help="seeds the data split and shifts every experiment's 8 seeds "
                        "(--seed s trains with seeds 8s ... 8s+7)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-compile-cache", action="store_true",
                   help="compile every program afresh: do not read or write JAX's persistent "
                        "compilation cache (on by default, see JTRICKS_COMPILE_CACHE; a second "
                        "run loads the compiled programs instead of compiling them)")
    p.set_defaults(run=run)


def run(args) -> int:
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out!r} exists and is not a directory")
    from jtricks._validate import check_int

    check("--seed", args.seed, check_int, "seed", lo=0)
    from jtricks.demo import NEEDS, EXPERIMENTS, run_demo

    require_extras("jtricks demo", NEEDS)
    if args.no_compile_cache:  # main() turned it on; nothing is compiled yet
        import jax

        jax.config.update("jax_compilation_cache_dir", None)

    only = None
    if args.only:
        only = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in only if n not in EXPERIMENTS]
        if unknown:
            raise CliError(f"--only: unknown experiment {', '.join(unknown)}; accepted: "
                           f"{', '.join(EXPERIMENTS)}")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise CliError(f"--out {args.out!r}: cannot create the report folder ({e.strerror})")
    run_demo(args.out, quick=args.quick, only=only, progress=not args.quiet, seed=args.seed)
    say(f"report written to {os.path.join(args.out, 'README.md')}")
    return 0
