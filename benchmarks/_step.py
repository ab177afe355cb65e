"""The optimizer-step rows: clip + Adam + apply, jtricks vs optax, each row in its own process.

optax's compile time grows faster than linearly with the number of leaves (on
a 2-core CPU: about 1 minute at 2048 leaves, 5 at 4096, far longer at 8192),
so every row runs in a worker process with a time limit. A worker first
compiles and times the jtricks steps and reports them, then compiles optax;
if optax's compile does not finish in time the worker is stopped and the row
keeps the jtricks figures with optax marked "did not compile in T s". The
worker's memory (12 GB for an 8192-leaf optax compile) goes with it.

Run a row by hand with ``python -m benchmarks._worker step 2048 1024``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax.numpy as jnp

from benchmarks._measure import (
    compile_fresh,
    copy_runner,
    human,
    interleaved_medians,
    log,
    stepper,
)

BYTES_PER_PARAM = 7 * 4  # read p, g, m, v; write p, m, v (float32)
_TAG = "@@jtricks-bench "  # marks the worker's JSON lines on stdout


def _optimizers():
    import optax

    import jtricks.optim as jo

    ours = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    return ours, theirs


def _tree(num_leaves: int, size: int, scale: float):
    return [jnp.full((size,), scale * (1 + i % 7), jnp.float32) for i in range(num_leaves)]


def _optax_step(tx):
    import optax

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def _jtricks_steps(tx):
    """The flat step (flat gradients, as ``unravel``'s backward gives them) and one fed a tree."""
    import jtricks.optim as jo

    def flat_step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jo.apply_updates(params, updates), state

    def tree_grads_step(params, state, grads):
        flat_grads, _ = jo.ravel(grads)
        return flat_step(params, state, flat_grads)

    return flat_step, tree_grads_step


def _emit(record: dict) -> None:
    print(_TAG + json.dumps(record), flush=True)


def _bandwidths(row: dict, times: dict, copy_n: int) -> None:
    """Adds ms, ratios and fractions of the copy bandwidth to ``row`` from ``times`` (seconds)."""
    n = row["params"]
    copy_bw = 8 * copy_n / times["copy"]
    row["copy_bw"] = copy_bw
    for name in ("flat", "tree", "optax"):
        if name in times:
            row[f"{name}_ms"] = 1e3 * times[name]
            row[f"{name}_bw"] = BYTES_PER_PARAM * n / times[name] / copy_bw
    if "optax" in times:
        row["ratio"] = times["flat"] / times["optax"]
        row["tree_ratio"] = times["tree"] / times["optax"]


def step_row(num_leaves: int, size: int, repeats: int, copy_n: int) -> None:
    """Emits the row of one tree shape: jtricks (and a copy) first, then with optax."""
    ours, theirs = _optimizers()
    flat_step, tree_grads_step = _jtricks_steps(ours)
    from jtricks.optim import ravel

    label = f"{num_leaves} x {human(size)}"
    row = dict(shape=label, leaves=num_leaves, size=size, params=num_leaves * size)
    grads = _tree(num_leaves, size, 1e-3)
    flat_grads, _ = ravel(grads)

    runs = {"copy": copy_runner(copy_n)}
    flat_params, _ = ravel(_tree(num_leaves, size, 0.1))
    compiled, row["flat_compile_s"] = compile_fresh(
        flat_step, flat_params, ours.init(flat_params), flat_grads
    )
    runs["flat"] = stepper(compiled, flat_params, ours.init(flat_params), flat_grads)
    tree_params, _ = ravel(_tree(num_leaves, size, 0.1))
    compiled, row["tree_compile_s"] = compile_fresh(
        tree_grads_step, tree_params, ours.init(tree_params), grads
    )
    runs["tree"] = stepper(compiled, tree_params, ours.init(tree_params), grads)
    _bandwidths(row, interleaved_medians(runs, repeats), copy_n)
    _emit(row)  # what is kept if optax's compile runs out of time
    log(f"[bench] step {label}: jtricks {row['flat_ms']:.2f} ms; optax compile ...")

    params = _tree(num_leaves, size, 0.1)
    compiled, row["optax_compile_s"] = compile_fresh(
        _optax_step(theirs), params, theirs.init(params), grads
    )
    log(f"[bench] step {label}: optax compiled in {row['optax_compile_s']:.1f} s; timing ...")
    runs = {"optax": stepper(compiled, params, theirs.init(params), grads), **runs}
    _bandwidths(row, interleaved_medians(runs, repeats), copy_n)
    _emit(row)
    log(f"[bench] step {label}: optax {row['optax_ms']:.2f} ms, jtricks {row['flat_ms']:.2f} ms")


def compile_row(num_leaves: int, size: int) -> None:
    """Emits the compile times of the step for ``num_leaves`` leaves: jtricks first, then optax."""
    ours, theirs = _optimizers()
    flat_step, tree_grads_step = _jtricks_steps(ours)
    from jtricks.optim import ravel

    params, grads = _tree(num_leaves, size, 0.1), _tree(num_leaves, size, 1e-3)
    flat_params, _ = ravel(params)
    flat_grads, _ = ravel(grads)
    state = ours.init(flat_params)
    row = dict(leaves=num_leaves, size=size)
    _, row["flat_s"] = compile_fresh(flat_step, flat_params, state, flat_grads)
    _, row["tree_s"] = compile_fresh(tree_grads_step, flat_params, state, grads)
    _emit(row)
    log(f"[bench] compile {num_leaves} leaves: jtricks {row['flat_s']:.2f} s; optax ...")
    _, row["optax_s"] = compile_fresh(_optax_step(theirs), params, theirs.init(params), grads)
    _emit(row)
    log(f"[bench] compile {num_leaves} leaves: optax {row['optax_s']:.2f} s")


def run_worker(
    cmd: list[str], timeout: float, heartbeat: float = 60.0
) -> tuple[dict | None, bool]:
    """Runs ``cmd`` (a worker printing tagged JSON lines) with a time limit.

    The worker's stderr (its progress) passes through, and every ``heartbeat``
    seconds a line says it is still running (an optax compile can take many
    minutes); the checkout's root (the parent of ``benchmarks/``) and the
    parent of the imported ``jtricks`` are put on its ``PYTHONPATH``, so that
    it imports the same packages as this process.

    Returns:
      ``(record, timed_out)``: the last JSON record the worker printed (``None``
      if none) and whether it was stopped at ``timeout`` seconds.
    """
    env = dict(os.environ)
    import jtricks

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(jtricks.__file__)))
    paths = dict.fromkeys(p for p in (root, package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
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
    records = [json.loads(line[len(_TAG) :]) for line in out.splitlines() if line.startswith(_TAG)]
    return (records[-1] if records else None), timed_out


def _worker(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks._worker", *args]


def _isolated(kind: str, num_leaves: int, size: int, optax_key: str, timeout: float, *args):
    """Runs one row in a worker; a row without ``optax_key`` says why (time limit or failure)."""
    record, timed_out = run_worker(_worker(kind, str(num_leaves), str(size), *args), timeout)
    if record is None:
        raise RuntimeError(
            f"the benchmark worker for the {kind} row {num_leaves} x {size} produced no result "
            + (f"within {timeout:.0f} s" if timed_out else "(it failed; see its error above)")
        )
    if optax_key not in record and timed_out:
        record["optax_timeout_s"] = timeout
    elif optax_key not in record:  # e.g. killed for memory while compiling; error on stderr
        record["optax_failed"] = True
        log("[bench] the optax part of this row failed (see its error above); row kept without it")
    return record


def isolated_step_row(num_leaves, size, *, repeats, copy_n, platform, timeout) -> dict:
    """:func:`step_row` in a worker; ``optax_timeout_s`` is set when optax did not compile in time."""
    args = (f"--repeats={repeats}", f"--copy-n={copy_n}", f"--platform={platform}")
    return _isolated("step", num_leaves, size, "optax_ms", timeout, *args)


def isolated_compile_row(num_leaves, size, *, platform, timeout) -> dict:
    """:func:`compile_row` in a worker; ``optax_timeout_s`` is set when optax did not finish."""
    return _isolated("compile", num_leaves, size, "optax_s", timeout, f"--platform={platform}")
