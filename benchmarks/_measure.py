"""Timing helpers shared by the benchmarks: interleaved timing, medians and quartiles, fresh
compiles, copy bandwidth, the machine."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from benchmarks._worker_io import log as log  # re-exported


def interleaved_times(runs: dict, repeats: int, warmup: int = 2, block: int = 3) -> dict:
    """Seconds per call of each of ``runs``, timed in turn so that load drifts hit all alike.

    Each of the ``repeats`` rounds runs every program in turn: one untimed call
    (the first call after another program pays for that program's leftovers:
    its dirty cache lines, its threads) and then ``block`` timed calls, the
    steady state a training loop sees.

    Returns:
      ``{name: [seconds of every timed call]}``.
    """
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            run()
            for _ in range(block):
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
    return times


def summarize(values, scale: float = 1.0) -> tuple[float, list[float]]:
    """``(median, [q1, q3])`` of ``values`` times ``scale`` (the interquartile range).

    >>> summarize([1, 2, 3, 4, 100])
    (3.0, [2.0, 4.0])
    """
    values = sorted(v * scale for v in values)
    if len(values) < 2:
        return values[0], [values[0], values[0]]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), [q1, q3]


def compile_fresh(fn, *args, donate=(0, 1)):
    """Compiles a fresh ``jit`` of ``fn`` (never a cache hit), arguments ``donate`` donated.

    Returns:
      ``(compiled, seconds)``: tracing, lowering and the XLA compile together.
    """

    def fresh(*a):
        return fn(*a)

    t0 = time.perf_counter()
    compiled = jax.jit(fresh, donate_argnums=donate).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def stepper(compiled, params, state, grads):
    """A closure running ``params, state = compiled(params, state, grads)`` to completion."""
    carry = [params, state]

    def run():
        carry[0], carry[1] = compiled(carry[0], carry[1], grads)
        jax.block_until_ready(carry)

    return run


def copy_runner(n: int):
    """A closure running a jitted in-place ``x + 1`` on ``n`` float32 (reads and writes 8n bytes)."""
    f = jax.jit(lambda x: x + 1.0, donate_argnums=0)
    box = [jnp.zeros((n,), jnp.float32)]

    def run():
        box[0] = f(box[0])
        box[0].block_until_ready()

    return run


def describe_machine() -> dict:
    """CPU model, cores, platform and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import optax

    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", "?"),
        "optax": optax.__version__,
        "devices": ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})),
    }
    try:
        import flax

        info["flax"] = flax.__version__
    except ImportError:  # pragma: no cover - flax comes with the bench extra
        info["flax"] = "not installed (pip install 'jtricks[bench]')"
    try:
        import torch

        policy = os.environ.get("OMP_WAIT_POLICY", "unset: OpenMP's default")
        info["torch"] = (f"{torch.__version__} ({os.cpu_count()} intra-op threads, set by the "
                         f"harness; OMP_WAIT_POLICY {policy})")
    except ImportError:
        info["torch"] = "not installed (pip install 'jtricks[bench]'): no PyTorch columns"
    return info


def human(n: int) -> str:
    """``1024 -> "1K"``, ``16 << 20 -> "16M"``, other sizes as they are."""
    for unit, div in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def parse_shape(text: str) -> tuple[int, int]:
    """``"2048x1K"`` -> ``(2048, 1024)``; raises ``ValueError`` on anything else."""
    try:
        leaves, size = text.strip().lower().split("x")
        scale = {"k": 1 << 10, "m": 1 << 20}.get(size[-1], 1)
        shape = int(leaves), int(size.rstrip("km")) * scale
    except (ValueError, IndexError):
        raise ValueError(f"tree shape {text!r} is not LEAVESxSIZE, e.g. 2048x1K or 1x16M") from None
    if min(shape) < 1:
        raise ValueError(f"tree shape {text!r} needs at least one leaf of at least one float")
    return shape
