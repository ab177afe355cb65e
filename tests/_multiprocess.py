"""Launches one command as several JAX processes on 127.0.0.1 (for multi-process tests).

``run_processes(argv, num_processes=2, local_devices=2)`` starts ``num_processes`` copies
of ``python argv...`` that find each other through the environment that
``jtricks.parallel.initialize()`` (and ``jtricks train --num-processes``) reads:

- ``JAX_COORDINATOR_ADDRESS=127.0.0.1:<free port>``, ``JAX_NUM_PROCESSES``,
  ``JAX_PROCESS_ID`` (the rank);
- ``JAX_NUM_CPU_DEVICES=<local_devices>`` and ``JAX_PLATFORMS=cpu`` (each process
  simulates its CPU devices; the collectives between processes are gloo's);
- ``PYTHONPATH`` with the checkout and ``tests/`` first (the worker imports this
  checkout's ``jtricks`` and the test helpers).

Every argument may name ``{rank}``, ``{port}``, ``{coordinator}`` or
``{num_processes}``; they are filled in per process. The processes run
concurrently; on a timeout, on the first failure (the others would wait for it
in a collective until their own timeout) or when ``kill_when()`` turns true,
every process still running is killed with SIGKILL. With ``check=True`` (the
default) any non-zero exit raises ``AssertionError`` with the end of each
failed process's log.

Usage::

    results = run_processes([__file__, "{rank}", str(tmp_path)], timeout=120)
    assert all(r.returncode == 0 for r in results)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
# XLA flags for child processes whose results are compared only with each other's (or
# need no bit-exact match with this process's): XLA's optimisations off, which halves
# the compile time of the small programs they run for milliseconds. Level 0 leaves
# multiply-adds uncontracted, so the numbers differ in the last bits from level 1's,
# which the test process compiles at (root conftest.py).
FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")


def fast_compile_flags() -> str:
    """``XLA_FLAGS`` for a child process: this process's flags, then :data:`FAST_COMPILE`
    (the last level given wins)."""
    return " ".join([os.environ.get("XLA_FLAGS", ""), *FAST_COMPILE]).strip()


class ProcessResult(NamedTuple):
    """One process's outcome: its rank, exit code (negative: killed by that
    signal) and combined stdout + stderr."""

    rank: int
    returncode: int
    log: str


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _describe(results: Sequence[ProcessResult], tail: int) -> str:
    parts = []
    for r in results:
        how = f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit {r.returncode}"
        parts.append(f"--- process {r.rank}: {how}; last {tail} characters of its log:\n"
                     f"{r.log[-tail:]}")
    return "\n".join(parts)


def run_processes(
    argv: Sequence[str],
    *,
    num_processes: int = 2,
    local_devices: int = 2,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    kill_when: Callable[[], bool] | None = None,
    check: bool = True,
    cwd: str | Path = ROOT,
) -> list[ProcessResult]:
    """Runs ``python *argv`` as ``num_processes`` JAX processes and waits for them.

    Args:
      argv: the arguments after ``python`` (a script or ``-m module`` and its
        arguments); ``{rank}``, ``{port}``, ``{coordinator}`` and
        ``{num_processes}`` are filled in per process.
      num_processes: how many processes.
      local_devices: CPU devices each process simulates.
      timeout: seconds for the whole group; then every process is killed.
      env: extra environment variables (over ``os.environ``).
      kill_when: polled every 50 ms while the processes run; once it returns
        true every process is killed with SIGKILL (a simulated crash). The
        results then carry ``returncode == -9`` for the killed ones.
      check: raise ``AssertionError`` (with the logs) unless every process
        exited 0; with ``kill_when``, killed processes count as expected.
      cwd: the working directory of the processes.

    Returns:
      One :class:`ProcessResult` per rank, in rank order.

    Raises:
      AssertionError: with ``check``, if a process failed or the group timed out.
    """
    port = free_port()
    coordinator = f"127.0.0.1:{port}"
    base = dict(os.environ)
    base.update(
        JAX_PLATFORMS="cpu",
        JAX_COORDINATOR_ADDRESS=coordinator,
        JAX_NUM_PROCESSES=str(num_processes),
        JAX_NUM_CPU_DEVICES=str(local_devices),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                    base.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    base.update(env or {})
    fields = dict(port=port, coordinator=coordinator, num_processes=num_processes)
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(num_processes)]
    procs = []
    try:
        for rank in range(num_processes):
            procs.append(subprocess.Popen(
                [sys.executable, *(str(a).format(rank=rank, **fields) for a in argv)],
                cwd=cwd, env=dict(base, JAX_PROCESS_ID=str(rank)),
                stdout=logs[rank], stderr=subprocess.STDOUT, text=True,
            ))
        deadline, timed_out, killed = time.monotonic() + timeout, False, False
        while any(p.poll() is None for p in procs):
            failed = any(p.returncode not in (None, 0) for p in procs)
            timed_out = time.monotonic() > deadline
            killed = kill_when is not None and bool(kill_when())
            if failed or timed_out or killed:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
    results = []
    for rank, (p, f) in enumerate(zip(procs, logs)):
        f.seek(0)
        results.append(ProcessResult(rank, p.returncode, f.read()))
        f.close()
    if check:
        if timed_out:
            raise AssertionError(f"{num_processes} processes of {list(argv)} ran past "
                                 f"timeout={timeout} s\n{_describe(results, 3000)}")
        bad = [r for r in results if r.returncode != 0 and not (killed and r.returncode == -9)]
        if bad:
            raise AssertionError(f"{len(bad)} of {num_processes} processes of {list(argv)} "
                                 f"failed\n{_describe(bad, 3000)}")
    return results
