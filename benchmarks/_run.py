"""Runs the tables ``jtricks bench`` was asked for and writes the report.

Every table's figures are stored with how they were made (command, commit, date, load, wall
time) in the report itself (a JSON comment at its end, :mod:`benchmarks._report`), so that
``--only TABLE`` reruns one table and keeps the others.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import tempfile
import time

from benchmarks._worker_io import isolated, log


def _commit(out: str = "BENCHMARKS.md") -> str:
    """The checkout's commit, and whether files other than the report ``out`` differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        report = os.path.relpath(os.path.abspath(out), root)
        skip = [] if report.startswith("..") else [f":(exclude){report}"]
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no",
                                "--", ".", *skip],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes" if dirty else "")


def _optimizer(args, repeats):
    from benchmarks import FULL_SHAPES, QUICK_SHAPES
    from benchmarks._step import isolated_step_row

    shapes = args.shapes or (QUICK_SHAPES if args.quick else FULL_SHAPES)
    return dict(rows=[isolated_step_row(n, s, repeats=repeats, timeout=args.timeout)
                      for n, s in shapes], timeout=args.timeout, rounds=repeats)


def _models(args, repeats):
    rows = []
    for name in ("resnet", "transformer"):
        rows.append(isolated("model", [name, f"--repeats={repeats}"]
                             + (["--quick"] if args.quick else []), 6 * args.timeout))
    return dict(rows=rows, rounds=repeats)


def _cold(args, repeats):
    from benchmarks._cold import LIBS, cold_run, save_digits
    from benchmarks._throughput import throughput

    target = 0.5 if args.quick else 0.97
    max_epochs = 2 if args.quick else 30
    models = ("mlp",) if args.quick else ("mlp", "cnn")
    libs = ("flax", "fit") if args.quick else LIBS
    runs: dict = {m: {lib: [] for lib in libs} for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.npz")
        save_digits(path)
        rounds = 1 if args.quick else max(1, repeats // 3)
        for r in range(rounds):
            for m in models:
                for lib in libs:
                    if lib == "torch":
                        from benchmarks._torch_models import torch_or_none

                        if torch_or_none() is None:
                            continue
                    row = cold_run(lib, m, path, target, max_epochs, timeout=10 * args.timeout)
                    runs[m][lib].append(row)
                    log(f"[bench] cold {m} {lib} (round {r + 1}): "
                        + (f"{row['seconds']:.1f} s" if "seconds" in row else "target not reached")
                        + f", epoch {row['epoch']}")
    speed = {m: throughput(m, repeats, quick=args.quick) for m in models}
    return dict(target=target, max_epochs=max_epochs, runs=runs, throughput=speed,
                rounds=rounds, throughput_rounds=repeats)


def _sweep(args, repeats):
    from benchmarks._sweep import sweep_table

    if args.quick:
        return sweep_table(k=2, epochs=1, features=(16, 10), repeats=1, ks=(4,))
    return sweep_table(k=16, epochs=5, features=(256, 128, 10), repeats=max(1, repeats // 3),
                       steady_repeats=repeats)


RUNNERS = {"optimizer": _optimizer, "models": _models, "cold": _cold, "sweep": _sweep}


def run_tables(args, command: str) -> int:
    """Runs ``args.only``'s tables, merges them into ``args.out``'s stored figures, writes it."""
    from benchmarks._measure import describe_machine
    from benchmarks._report import format_report, read_data

    data = read_data(args.out) if args.out != "-" and set(args.only) != set(RUNNERS) else {}
    repeats = args.repeats or (2 if args.quick else 9)
    for table in args.only:
        log(f"[bench] table {table} ...")
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        figures = RUNNERS[table](args, repeats)
        figures["meta"] = dict(
            command=command, commit=_commit(args.out), quick=args.quick,
            date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            load=[round(load0, 1), round(os.getloadavg()[0], 1)],
            wall_s=round(time.perf_counter() - t0, 1))
        data[table] = figures
    data["machine"] = describe_machine()
    report = format_report(data)
    print(report)
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(report)
        log(f"[bench] wrote {args.out}")
    return 0
