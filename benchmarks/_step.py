"""Table 1: the optimizer step, ``chain(clip_by_global_norm(1), adam(1e-3))`` + apply, float32.

One row per tree shape, each in its own worker process (``python -m benchmarks._worker step
LEAVES SIZE``). The columns, all donated:

* ``optax_tree``: optax on the parameter tree, as an optax user writes it;
* ``jtricks_tree``: jtricks on the tree, the default path users take;
* ``optax_ravel``: optax on the buffers of ``jtricks.optim.ravel`` (flat gradients);
* ``jtricks_flat``: jtricks on the same buffers;
* ``jtricks_flatten``: ``jtricks.optim.flatten(tx)`` on the tree;
* ``optax_flatten``: ``optax.flatten(tx)`` on the tree (the same path in optax);
* ``torch_foreach`` / ``torch_fused``: ``clip_grad_norm_`` + ``torch.optim.Adam(foreach=True)``
  / ``(fused=True)`` on the same CPU, a tensor per leaf.

The cheap programs compile first; each compile time is printed as it finishes. Each program
whose compile time grows with the leaves has the same time limit (``jtricks bench
--timeout``): a worker stops itself when one of them runs past it, and the row is run again
without that program (``--skip``), which is reported as "> T s" (:func:`isolated_step_row`).
"""

from __future__ import annotations

import os
import threading
import time

import jax.numpy as jnp

from benchmarks._measure import (
    compile_fresh,
    human,
    interleaved_times,
    log,
    stepper,
    summarize,
)
from benchmarks._worker_io import emit, isolated

COLUMNS = ("optax_tree", "jtricks_tree", "optax_ravel", "jtricks_flat", "optax_flatten",
           "jtricks_flatten", "torch_foreach", "torch_fused")
SLOW = ("jtricks_tree", "jtricks_flatten", "optax_flatten", "optax_tree")  # compile time grows with the leaves


def _tree(num_leaves: int, size: int, scale: float):
    return [jnp.full((size,), scale * (1 + i % 7), jnp.float32) for i in range(num_leaves)]


def _step(tx, apply_updates):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state

    return step


def _jax_programs(num_leaves: int, size: int):
    """``{column: (step, params, state, grads)}`` of the JAX columns."""
    import optax

    import jtricks.optim as jo

    optax_tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    jt_tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3))
    flatten_tx = jo.flatten(jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3)))
    grads = _tree(num_leaves, size, 1e-3)
    flat_grads, _ = jo.ravel(grads)

    def tree():
        return _tree(num_leaves, size, 0.1)

    def flat():
        return jo.ravel(tree())[0]

    specs = {
        "jtricks_flat": (jt_tx, jo.apply_updates, flat, flat_grads),
        "optax_ravel": (optax_tx, optax.apply_updates, flat, flat_grads),
        "jtricks_tree": (jt_tx, jo.apply_updates, tree, grads),
        "jtricks_flatten": (flatten_tx, jo.apply_updates, tree, grads),
        "optax_flatten": (optax.flatten(optax_tx), optax.apply_updates, tree, grads),
        "optax_tree": (optax_tx, optax.apply_updates, tree, grads),
    }
    return {name: (_step(tx, apply), make, g, tx) for name, (tx, apply, make, g) in specs.items()}


def _torch_programs(num_leaves: int, size: int) -> dict:
    """``{column: run}`` of the PyTorch columns (none without torch)."""
    from benchmarks._torch_models import torch_or_none

    torch = torch_or_none()
    if torch is None:
        return {}
    from torch.nn.utils import clip_grad_norm_

    runs = {}
    for name, kwargs in (("torch_foreach", dict(foreach=True)), ("torch_fused", dict(fused=True))):
        params = [torch.full((size,), 0.1 * (1 + i % 7)).requires_grad_() for i in range(num_leaves)]
        for i, p in enumerate(params):
            p.grad = torch.full((size,), 1e-3 * (1 + i % 7))
        opt = torch.optim.Adam(params, lr=1e-3, **kwargs)

        def run(params=params, opt=opt):
            clip_grad_norm_(params, 1.0, foreach=True)
            opt.step()

        runs[name] = run
    return runs


def _give_up(row: dict) -> None:
    """Ends the worker with ``row`` (whose ``"compiling"`` names the stuck program) as its
    last record: an XLA compile cannot be interrupted, only its process ended."""
    row["compiling"][1] = time.time() - row["compiling"][1]  # how long it ran
    emit(row)
    os._exit(0)


def step_row(num_leaves: int, size: int, repeats: int, copy_n: int, skip=(),
             compile_limit: float | None = None) -> None:
    """Emits the row of one tree shape: compile times as they finish, then the step times.

    A program of :data:`SLOW` still compiling after ``compile_limit`` seconds ends the
    worker, its last record naming it and how long it ran (``row["compiling"]``)."""
    del copy_n  # the copy bandwidth is not part of this table
    row: dict = dict(shape=f"{num_leaves} x {human(size)}", leaves=num_leaves, size=size,
               compile_s={}, ms={}, spread={}, skipped=list(skip))
    runs = {}
    programs = _jax_programs(num_leaves, size)
    for name in ("jtricks_flat", "optax_ravel"):
        step, make, grads, tx = programs[name]
        compiled, row["compile_s"][name] = compile_fresh(step, make(), tx.init(make()), grads)
        runs[name] = stepper(compiled, make(), tx.init(make()), grads)
    runs.update(_torch_programs(num_leaves, size))
    emit(row)
    for name in SLOW:
        if name in skip:
            continue
        log(f"[bench] step {row['shape']}: compiling {name} ...")
        row["compiling"] = [name, time.time()]  # when the limit stops it: how long it ran
        emit(row)
        step, make, grads, tx = programs[name]
        watchdog = None
        if compile_limit is not None:
            watchdog = threading.Timer(compile_limit, _give_up, (row,))
            watchdog.daemon = True
            watchdog.start()
        compiled, row["compile_s"][name] = compile_fresh(step, make(), tx.init(make()), grads)
        if watchdog is not None:
            watchdog.cancel()
        runs[name] = stepper(compiled, make(), tx.init(make()), grads)
        row.pop("compiling")
        emit(row)
        log(f"[bench] step {row['shape']}: {name} compiled in {row['compile_s'][name]:.1f} s")
    order = [c for c in COLUMNS if c in runs]
    times = interleaved_times({c: runs[c] for c in order}, repeats)
    for name, ts in times.items():
        row["ms"][name], row["spread"][name] = summarize(ts, scale=1e3)
    emit(row)
    log(f"[bench] step {row['shape']}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in row["ms"].items()))


def isolated_step_row(num_leaves: int, size: int, *, repeats: int, timeout: float,
                      platform: str = "cpu") -> dict:
    """:func:`step_row` in a worker, each program of :data:`SLOW` given ``timeout`` seconds to
    compile; one that does not compile in time is recorded in ``row["compile_limit_s"]`` (the
    seconds its compile ran before the worker stopped) and the row is run again without it.
    The worker as a whole has ``timeout`` seconds per program (a worker stuck elsewhere is
    stopped, and keeps what it had measured)."""
    skipped: dict = {}
    while True:
        args = [str(num_leaves), str(size), f"--repeats={repeats}", f"--platform={platform}",
                f"--compile-limit={timeout}", "--skip=" + ",".join(skipped)]
        row = isolated("step", args, timeout * (len(SLOW) + 2))
        if "compiling" not in row or row["ms"]:
            break  # done, or out of time while timing: the row keeps its compile times
        stuck, ran = row["compiling"]
        skipped[stuck] = ran if not row["timed_out"] else row["ended"] - ran
        log(f"[bench] step {row['shape']}: {stuck} did not compile in {skipped[stuck]:.0f} s; "
            "running the row again without it")
    row["compile_limit_s"] = skipped
    return row
