"""``jtricks demo``: one experiment per trick of the lesson, on the embedded digits and
MNIST-1D (each in the regime where the trick can matter, see ``_data``), written up as
a report folder (README.md with tables and verdicts, a PNG per
experiment, metrics JSONL/CSV).

Example:
  >>> import tempfile
  >>> from jtricks.demo import run_demo
  >>> results = run_demo(tempfile.mkdtemp(), quick=True, only=["imbalance"], progress=False)
  >>> [r.name for r in results]
  ['imbalance']
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import time

from jtricks._optional import install_hint, missing, require

from ._basics import batch_norm, initializers, scaling
from ._dropout import dropout
from ._evaluation import evaluation
from ._gradients import gradients
from ._common import SMOKE, Result
from ._data import mnist1d
from ._lr_range import learning_rate
from ._optimization import clipping, optimizers, schedules
from ._architecture import architecture
from ._augmentation import augmentation
from ._averaging import averaging
from ._imbalance import imbalance
from ._normalization import normalization
from ._overfitting import overfitting, weight_decay
from ._report import write_report

EXPERIMENTS = {
    "gradients": gradients,
    "scaling": scaling,
    "initializers": initializers,
    "batch_norm": batch_norm,
    "normalization": normalization,
    "dropout": dropout,
    "optimizers": optimizers,
    "schedules": schedules,
    "clipping": clipping,
    "overfitting": overfitting,
    "weight_decay": weight_decay,
    "imbalance": imbalance,
    "averaging": averaging,
    "learning_rate": learning_rate,
    "augmentation": augmentation,
    "architecture": architecture,
    "evaluation": evaluation,
}

__all__ = ["EXPERIMENTS", "Result", "SMOKE", "run_demo"]

_ON_MNIST1D = ("schedules", "averaging", "augmentation")

# Rough CPU-seconds of each experiment at --quick size (measured cold, one at a time, in
# one process; shared 2-core machine at load 10-13, so inflated alike).
_COST = {"normalization": 31, "augmentation": 26, "initializers": 22, "dropout": 20,
         "learning_rate": 19, "schedules": 16, "averaging": 16, "optimizers": 15,
         "architecture": 14, "gradients": 14, "overfitting": 13, "evaluation": 11,
         "imbalance": 9, "batch_norm": 9, "scaling": 9, "weight_decay": 8, "clipping": 7}

# The optional packages the demo imports (the ``demo`` extra): the digits, MNIST-1D,
# the figures, the progress bar.
NEEDS = ("sklearn", "mnist1d", "matplotlib", "tqdm")


def run_demo(out_dir: str = "jtricks-report", *, quick: bool = False, only=None,
             progress: bool = True, seed: int = 0, workers: int = 2) -> list[Result]:
    """Runs the experiments and writes the report into ``out_dir``.

    Args:
      out_dir: the report folder (created).
      quick: few epochs per experiment (tentative verdicts); ``"smoke"``
        (test-only): one or two epochs everywhere, which checks the report, not the
        effects.
      only: names of the experiments to run (default: all, see ``EXPERIMENTS``).
      progress: show a progress bar on stderr.
      seed: seeds the data split and shifts every experiment's seeds (``--seed s``
        trains with seeds ``8 s ... 8 s + 7``).
      workers: experiments run at the same time (threads).

    Returns:
      The :class:`Result` of every experiment.

    Raises:
      ValueError: for an unknown experiment name.
      ImportError: if scikit-learn, mnist1d, matplotlib or tqdm (the ``demo`` extra)
        is missing, naming them and the extra, before any experiment runs.
    """
    from jtricks.data import load_split

    absent = missing(NEEDS)
    if absent:
        raise ImportError(install_hint(absent, "jtricks.demo.run_demo"))
    tqdm = require("tqdm.auto", "jtricks.demo.run_demo").tqdm

    names = list(EXPERIMENTS) if only is None else list(only)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(EXPERIMENTS)}")
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    data = load_split("digits", seed, keep_raw=True)  # raw pixels: the scaling experiment
    if any(n in _ON_MNIST1D for n in names):
        mnist1d(seed)  # generated (or read from its cache) once, before the threads start
    # One BLAS thread: XLA's LAPACK calls (the orthogonal initializer's QR) go through
    # OpenBLAS, whose idle threads spin while XLA's own threads hold the cores; measured:
    # 160 QRs of 128×128 took 7.9 CPU-s with 2 OpenBLAS threads, 0.19 s with one.
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # sklearn needs it

    limit = threadpool_limits(1, "blas")
    bar = tqdm(total=len(names), desc="demo", unit="experiment", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    # Two experiments at a time: while one traces Python, the other compiles (XLA
    # releases the GIL), which keeps both cores of a small machine busy.
    try:
        done = _run_all(names, data, out_dir, quick, seed, workers, bar)
    finally:
        bar.close()
        limit.restore_original_limits()
    results = [done[name] for name in names]
    write_report(out_dir, results, quick=quick, total_seconds=time.perf_counter() - start,
                 seed=seed)
    return results


def _run_all(names, data, out_dir, quick, seed, workers, bar) -> dict:
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        # the costliest first, so that the two threads finish together
        futures = {pool.submit(EXPERIMENTS[name], data, out_dir, quick, seed=seed): name
                   for name in sorted(names, key=lambda n: -_COST.get(n, 0))}
        done = {}
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            done[futures[future]] = result
            bar.update(1)
            bar.set_postfix_str(result.name)
            bar.write(f"  {result.title} ({result.seconds:.1f} s): {result.verdict}",
                      file=sys.stderr)
    return done
