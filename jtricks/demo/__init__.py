"""``jtricks demo``: one experiment per trick of the lesson, on the embedded digits,
written up as a report folder (README.md with tables and verdicts, a PNG per
experiment, metrics JSONL/CSV).

Example:
  >>> from jtricks.demo import run_demo
  >>> results = run_demo("jtricks-report", quick=True)
"""

from __future__ import annotations

import os
import sys
import time

from ._basics import batch_norm, dropout, initializers, scaling
from ._common import Result
from ._optimization import clipping, optimizers, schedules
from ._overfitting import averaging, imbalance, overfitting, weight_decay
from ._report import write_report

EXPERIMENTS = {
    "scaling": scaling,
    "initializers": initializers,
    "batch_norm": batch_norm,
    "dropout": dropout,
    "optimizers": optimizers,
    "schedules": schedules,
    "clipping": clipping,
    "overfitting": overfitting,
    "weight_decay": weight_decay,
    "imbalance": imbalance,
    "averaging": averaging,
}

__all__ = ["EXPERIMENTS", "Result", "run_demo"]


def run_demo(out_dir: str = "jtricks-report", *, quick: bool = False, only=None,
             progress: bool = True, seed: int = 0) -> list[Result]:
    """Runs the experiments and writes the report into ``out_dir``.

    Args:
      out_dir: the report folder (created).
      quick: few epochs per experiment (well under a minute in total).
      only: names of the experiments to run (default: all, see ``EXPERIMENTS``).
      progress: show a progress bar on stderr.
      seed: seeds the data split.

    Returns:
      The :class:`Result` of every experiment.

    Raises:
      ValueError: for an unknown experiment name.
    """
    from tqdm.auto import tqdm

    from ._common import load

    names = list(EXPERIMENTS) if only is None else list(only)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(EXPERIMENTS)}")
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    data = load(seed)
    results = []
    bar = tqdm(names, desc="demo", unit="experiment", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    for name in bar:
        bar.set_postfix_str(name)
        result = EXPERIMENTS[name](data, out_dir, quick)
        results.append(result)
        bar.write(f"  {result.title} ({result.seconds:.1f} s): {result.verdict}",
                  file=sys.stderr)
    bar.close()
    write_report(out_dir, results, quick=quick, total_seconds=time.perf_counter() - start)
    return results
