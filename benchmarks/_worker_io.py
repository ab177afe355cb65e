"""Worker processes: a row printed as tagged JSON lines, run with a time limit.

A worker (``python -m benchmarks._worker KIND ...``, or any command) prints
every stage of its row with :func:`emit`; :func:`run_worker` keeps the last one,
so a worker stopped at its time limit (an optax compile of thousands of leaves
can take many minutes) still gives what it had measured. This module imports
only the standard library: the cold-start workers of :mod:`benchmarks._cold`
use it before they import their framework.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

TAG = "@@jtricks-bench "  # marks the worker's JSON lines on stdout


def log(msg: str) -> None:
    """Progress on stderr (stdout carries the report, or a worker's JSON)."""
    print(msg, file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    """Prints ``record`` as a tagged JSON line (the row so far)."""
    print(TAG + json.dumps(record), flush=True)


def worker_env(extra: dict | None = None) -> dict:
    """This process's environment with the checkout and the imported ``jtricks`` on PYTHONPATH."""
    import jtricks

    env = dict(os.environ, **(extra or {}))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(jtricks.__file__)))
    paths = dict.fromkeys(p for p in (root, package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_worker(
    cmd: list[str], timeout: float, heartbeat: float = 60.0, env: dict | None = None
) -> tuple[dict | None, bool]:
    """Runs ``cmd`` (a worker printing tagged JSON lines) with a time limit.

    The worker's stderr (its progress) passes through, and every ``heartbeat``
    seconds a line says it is still running; the worker imports the same
    ``benchmarks`` and ``jtricks`` as this process (:func:`worker_env`).

    Returns:
      ``(record, timed_out)``: the last JSON record the worker printed (``None``
      if none) and whether it was stopped at ``timeout`` seconds.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env or worker_env())
    timed_out = False
    while True:
        left = timeout - (time.perf_counter() - t0)
        try:
            out, _ = proc.communicate(timeout=max(0.01, min(heartbeat, left)))
            break
        except subprocess.TimeoutExpired:
            elapsed = time.perf_counter() - t0
            if elapsed < timeout:
                log(f"[bench] ... still running ({elapsed:.0f} s of at most {timeout:.0f} s)")
                continue
            proc.kill()
            out, _ = proc.communicate()
            timed_out = True
            log(f"[bench] worker stopped at its time limit, after {elapsed:.0f} s")
            break
    records = [json.loads(line[len(TAG):]) for line in out.splitlines() if line.startswith(TAG)]
    return (records[-1] if records else None), timed_out


def isolated(kind: str, args: list[str], timeout: float) -> dict:
    """Runs ``python -m benchmarks._worker KIND ARGS``; its last record, ``timed_out`` set.

    Raises:
      RuntimeError: if the worker printed nothing (it failed; its error is above).
    """
    cmd = [sys.executable, "-m", "benchmarks._worker", kind, *args]
    record, timed_out = run_worker(cmd, timeout)
    if record is None:
        raise RuntimeError(
            f"the benchmark worker {kind} {' '.join(args)} produced no result "
            + (f"within {timeout:.0f} s" if timed_out else "(it failed; see its error above)")
        )
    record["timed_out"] = timeout if timed_out else None
    record["ended"] = time.time()
    return record
