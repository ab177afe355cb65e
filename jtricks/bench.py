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
  with jtricks vs the same model written with flax + optax.

Every step donates its parameters and optimizer state, is warmed up, and is
timed with ``block_until_ready``; the figures are medians over repeats. Run
``python -m jtricks.bench`` (or ``jtricks bench``, or ``python scripts/bench.py``);
``--quick`` is a seconds-long smoke run on tiny trees.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jtricks.optim import ravel

BYTES_PER_PARAM = 7 * 4  # read p, g, m, v; write p, m, v (float32)
FULL_SHAPES = ((1, 16 << 20), (64, 256 << 10), (2048, 1024), (8192, 512))
QUICK_SHAPES = ((32, 128),)
FULL_COMPILE = (256, 1024, 4096)
QUICK_COMPILE = ()  # the quick run's compile table has the step rows only


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _median_time(run, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _compile(fn, *args):
    """Compiles a fresh jit of ``fn`` (never a cache hit) with params and state donated."""

    def fresh(*a):
        return fn(*a)

    t0 = time.perf_counter()
    compiled = jax.jit(fresh, donate_argnums=(0, 1)).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _interleaved_medians(runs: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds of each of ``runs``, timed in turn so that load drifts hit all alike."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _stepper(compiled, params, state, grads):
    """A closure running ``params, state = compiled(params, state, grads)`` to completion."""
    carry = [params, state]

    def run():
        carry[0], carry[1] = compiled(carry[0], carry[1], grads)
        jax.block_until_ready(carry)

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
    except ImportError:  # pragma: no cover
        pass
    return info


def _copy_runner(n: int):
    """A closure running a jitted in-place ``x + 1`` on ``n`` float32 (reads and writes 8n bytes)."""
    f = jax.jit(lambda x: x + 1.0, donate_argnums=0)
    box = [jnp.zeros((n,), jnp.float32)]

    def run():
        box[0] = f(box[0])
        box[0].block_until_ready()

    return run


def copy_bandwidth(n: int, repeats: int) -> float:
    """Bytes per second of a jitted in-place ``x + 1`` on ``n`` float32 (read + write)."""
    return 8 * n / _median_time(_copy_runner(n), repeats, warmup=3)


def _optimizers():
    import optax

    import jtricks.optim as jo
    ours = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    return jo, ours, optax, theirs


def _tree(num_leaves: int, size: int, scale: float):
    return [
        jnp.full((size,), scale * (1 + i % 7), jnp.float32) for i in range(num_leaves)
    ]


def _optax_step(optax, tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def _jtricks_steps(jo, tx):
    def flat_step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jo.apply_updates(params, updates), state

    def tree_grads_step(params, state, grads):
        flat_grads, _ = ravel(grads)
        return flat_step(params, state, flat_grads)

    return flat_step, tree_grads_step


def bench_steps(shapes, repeats: int, copy_n: int) -> list[dict]:
    """Per-step time of clip + Adam + apply on each tree shape.

    A copy of ``copy_n`` floats is timed in turn with the steps, so every
    shape's bandwidth fraction is against a copy measured under the same load.
    """
    copy_run = _copy_runner(copy_n)
    jo, ours, optax, theirs = _optimizers()
    flat_step, tree_grads_step = _jtricks_steps(jo, ours)
    rows = []
    for num_leaves, size in shapes:
        n = num_leaves * size
        label = f"{num_leaves} x {_human(size)}"
        grads = _tree(num_leaves, size, 1e-3)

        _log(f"[bench] step {label}: optax compile ...")
        params = _tree(num_leaves, size, 0.1)
        compiled, optax_compile = _compile(
            _optax_step(optax, theirs), params, theirs.init(params), grads
        )
        runs = {
            "copy": copy_run,
            "optax": _stepper(compiled, params, theirs.init(params), grads),
        }
        _log(f"[bench] step {label}: optax compiled in {optax_compile:.1f} s; jtricks ...")

        flat_params, _ = ravel(_tree(num_leaves, size, 0.1))
        flat_grads, _ = ravel(grads)
        compiled, flat_compile = _compile(
            flat_step, flat_params, ours.init(flat_params), flat_grads
        )
        runs["flat"] = _stepper(compiled, flat_params, ours.init(flat_params), flat_grads)
        flat_params, _ = ravel(_tree(num_leaves, size, 0.1))
        compiled, tree_compile = _compile(
            tree_grads_step, flat_params, ours.init(flat_params), grads
        )
        runs["tree"] = _stepper(compiled, flat_params, ours.init(flat_params), grads)
        del compiled, params, flat_params, flat_grads
        _log(f"[bench] step {label}: timing ...")
        t = _interleaved_medians(runs, repeats)
        t_optax, t_flat, t_tree = t["optax"], t["flat"], t["tree"]
        copy_bw = 8 * copy_n / t["copy"]
        del runs

        rows.append(
            dict(
                shape=label,
                copy_bw=copy_bw,
                leaves=num_leaves,
                params=n,
                optax_ms=1e3 * t_optax,
                flat_ms=1e3 * t_flat,
                tree_ms=1e3 * t_tree,
                ratio=t_flat / t_optax,
                tree_ratio=t_tree / t_optax,
                optax_bw=BYTES_PER_PARAM * n / t_optax / copy_bw,
                flat_bw=BYTES_PER_PARAM * n / t_flat / copy_bw,
                tree_bw=BYTES_PER_PARAM * n / t_tree / copy_bw,
                optax_compile_s=optax_compile,
                flat_compile_s=flat_compile,
                tree_compile_s=tree_compile,
            )
        )
        _log(
            f"[bench] step {label}: optax {1e3 * t_optax:.2f} ms, jtricks {1e3 * t_flat:.2f} ms "
            f"(tree grads {1e3 * t_tree:.2f} ms)"
        )
    return rows


def bench_compile(leaf_counts, size: int) -> list[dict]:
    """Compile time of the clip + Adam + apply step for ``leaf_counts`` leaves of ``size``."""
    jo, ours, optax, theirs = _optimizers()
    flat_step, tree_grads_step = _jtricks_steps(jo, ours)
    rows = []
    for num_leaves in leaf_counts:
        grads = _tree(num_leaves, size, 1e-3)
        params = _tree(num_leaves, size, 0.1)
        _log(f"[bench] compile {num_leaves} leaves: optax ...")
        _, t_optax = _compile(_optax_step(optax, theirs), params, theirs.init(params), grads)
        flat_params, _ = ravel(params)
        flat_grads, _ = ravel(grads)
        state = ours.init(flat_params)
        _, t_flat = _compile(flat_step, flat_params, state, flat_grads)
        _, t_tree = _compile(tree_grads_step, flat_params, state, grads)
        rows.append(
            dict(leaves=num_leaves, size=size, optax_s=t_optax, flat_s=t_flat, tree_s=t_tree)
        )
        _log(f"[bench] compile {num_leaves} leaves: optax {t_optax:.2f} s, jtricks {t_flat:.2f} s")
    return rows


# ----------------------------------------------------------------------------- training step


def _digits(n_batch: int):
    try:
        from jtricks.data import load_digits

        images, labels = load_digits()
    except (ImportError, AttributeError):
        from sklearn.datasets import load_digits as sk_digits

        d = sk_digits()
        images = d.images.reshape(-1, 8, 8, 1).astype(np.float32)
        labels = d.target.astype(np.int32)
    x = jnp.asarray(images[:n_batch], jnp.float32) / 16.0
    y = jnp.asarray(labels[:n_batch], jnp.int32)
    return x, y


def _cross_entropy(logits, labels):
    """Mean cross-entropy, ``jtricks.losses.cross_entropy`` when it is there."""
    try:
        from jtricks.losses import cross_entropy
    except ImportError:  # pragma: no cover
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))
    return cross_entropy(logits, labels)


def _jtricks_mlp(features, dropout):
    """The digits MLP: ``jtricks.nn.mlp``, or the same layers written here until it lands."""
    try:
        from jtricks import nn

        return nn.mlp(features, batch_norm=True, dropout=dropout)
    except (ImportError, AttributeError):
        return _local_mlp(features, dropout)


def _local_mlp(features, dropout):
    """dense -> batch norm -> relu -> dropout per hidden layer, pure functions."""
    from collections import namedtuple

    def init(key, input_shape):
        params, state, n_in = {}, {}, int(np.prod(input_shape))
        for i, width in enumerate(features):
            key, sub = jax.random.split(key)
            w = jax.random.normal(sub, (n_in, width)) * np.sqrt(2.0 / n_in)
            params[f"dense_{i}"] = {"kernel": w, "bias": jnp.zeros(width)}
            if i < len(features) - 1:
                params[f"bn_{i}"] = {"scale": jnp.ones(width), "bias": jnp.zeros(width)}
                state[f"bn_{i}"] = {"mean": jnp.zeros(width), "var": jnp.ones(width)}
            n_in = width
        return params, state

    def apply(params, state, x, *, training, key=None, axis_name=None):
        del axis_name
        x, new_state = x.reshape((x.shape[0], -1)), {}
        for i in range(len(features)):
            d = params[f"dense_{i}"]
            x = x @ d["kernel"] + d["bias"]
            if i == len(features) - 1:
                break
            bn, st = params[f"bn_{i}"], state[f"bn_{i}"]
            if training:
                mean, var = jnp.mean(x, 0), jnp.var(x, 0)
                new_state[f"bn_{i}"] = {
                    "mean": 0.9 * st["mean"] + 0.1 * mean,
                    "var": 0.9 * st["var"] + 0.1 * var,
                }
            else:
                mean, var = st["mean"], st["var"]
                new_state[f"bn_{i}"] = st
            x = (x - mean) * jax.lax.rsqrt(var + 1e-5) * bn["scale"] + bn["bias"]
            x = jax.nn.relu(x)
            if training and dropout > 0:
                key, sub = jax.random.split(key)
                keep = jax.random.bernoulli(sub, 1.0 - dropout, x.shape)
                x = jnp.where(keep, x / (1.0 - dropout), 0.0)
        return x, new_state

    return namedtuple("Model", "init apply")(init, apply)


def _flax_mlp(features, dropout):
    import flax.linen as fnn

    class MLP(fnn.Module):
        @fnn.compact
        def __call__(self, x, *, training):
            x = x.reshape((x.shape[0], -1))
            for width in features[:-1]:
                x = fnn.Dense(width, kernel_init=fnn.initializers.he_normal())(x)
                x = fnn.BatchNorm(use_running_average=not training, momentum=0.9, epsilon=1e-5)(x)
                x = fnn.relu(x)
                x = fnn.Dropout(dropout, deterministic=not training)(x)
            return fnn.Dense(features[-1], kernel_init=fnn.initializers.he_normal())(x)

    return MLP()


def bench_train_step(features, batch: int, repeats: int) -> dict:
    """One training step (forward, backward, Adam, apply) of the digits MLP."""
    import optax

    import jtricks.optim as jo
    from jtricks.train import TrainState, train_step

    x, y = _digits(batch)
    dropout = 0.1
    key = jax.random.key(0)

    # jtricks: jtricks.nn model, jtricks Adam, jtricks.train.train_step; the
    # parameters either raveled once (the model reads them through unravel) or a tree.
    model = _jtricks_mlp(features, dropout)
    params, model_state = model.init(key, x.shape[1:])
    tx = jo.adam(1e-3)

    def jtricks_runner(flat: bool):
        start, unravel = ravel(params) if flat else (params, lambda tree: tree)

        def loss_fn(train_params, model_state, batch, key):
            xb, yb = batch
            logits, new_state = model.apply(
                unravel(train_params), model_state, xb, training=True, key=key
            )
            return _cross_entropy(logits, yb), (new_state, {})

        state = TrainState.create(
            params=jax.tree.map(jnp.copy, start),
            tx=tx,
            key=jax.random.key(1),
            model_state=jax.tree.map(jnp.copy, model_state),
        )
        step = jax.jit(partial(train_step, loss_fn=loss_fn, tx=tx), donate_argnums=0)
        box = [state]

        def run():
            box[0], metrics = step(box[0], (x, y))
            jax.block_until_ready((box[0], metrics))

        return run

    # flax + optax: the same model and optimizer, parameters as a tree.
    fmodel = _flax_mlp(features, dropout)
    variables = fmodel.init({"params": key, "dropout": key}, x, training=False)
    ftx = optax.adam(1e-3)
    fstate = (variables["params"], variables["batch_stats"], ftx.init(variables["params"]), key)

    def flax_step(fstate, batch):
        params, stats, opt_state, key = fstate
        key, dkey = jax.random.split(key)
        xb, yb = batch

        def loss(params):
            logits, updated = fmodel.apply(
                {"params": params, "batch_stats": stats},
                xb,
                training=True,
                rngs={"dropout": dkey},
                mutable=["batch_stats"],
            )
            return _cross_entropy(logits, yb), updated["batch_stats"]

        (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = ftx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), stats, opt_state, key), value

    fstep = jax.jit(flax_step, donate_argnums=0)
    fbox = [fstate]

    def run_theirs():
        fbox[0], value = fstep(fbox[0], (x, y))
        jax.block_until_ready((fbox[0], value))

    runs = {"flat": jtricks_runner(True), "tree": jtricks_runner(False), "flax": run_theirs}
    t = _interleaved_medians(runs, repeats, warmup=3)
    n_params = int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
    return dict(
        features=features,
        batch=batch,
        params=n_params,
        leaves=len(jax.tree.leaves(params)),
        flat_ms=1e3 * t["flat"],
        tree_ms=1e3 * t["tree"],
        flax_ms=1e3 * t["flax"],
    )


# ----------------------------------------------------------------------------- report


def _parse_shape(text: str) -> tuple[int, int]:
    """``"2048x1K"`` -> ``(2048, 1024)``."""
    leaves, size = text.lower().split("x")
    scale = {"k": 1 << 10, "m": 1 << 20}.get(size[-1], 1)
    return int(leaves), int(size.rstrip("km")) * scale


def _human(n: int) -> str:
    for unit, div in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def format_report(command: str, machine: dict, sections: list[tuple], train) -> str:
    lines = ["# jtricks benchmarks", "", f"Made by: `{command}`", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    for device, copy_n, copy_bw, steps, compiles in sections:
        lines += [
            "",
            f"## Adam + global-norm clipping, update + apply ({device})",
            "",
            f"Copy bandwidth (jitted donated `x + 1` on {_human(copy_n)} floats, read + write, "
            f"timed in turn with the steps of each row): median **{copy_bw / 1e9:.1f} GB/s** "
            f"(rows: {', '.join(format(r['copy_bw'] / 1e9, '.1f') for r in steps)}). "
            "Effective bandwidth counts 7 x 4 bytes per parameter. `jtricks` keeps the "
            "parameters and the Adam state flat (`jtricks.optim.ravel`) and gets flat "
            "gradients, as the backward pass of `unravel` produces them; `jtricks (grad tree)` "
            "starts from a gradient tree and concatenates it inside the step. Ratio = "
            "jtricks time / optax time (< 1 is faster).",
            "",
            "| tree | optax ms | jtricks ms | ratio | jtricks (grad tree) ms | ratio | "
            "optax % copy bw | jtricks % copy bw | (grad tree) % copy bw |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in steps:
            lines.append(
                f"| {r['shape']} | {r['optax_ms']:.2f} | {r['flat_ms']:.2f} | {r['ratio']:.2f} | "
                f"{r['tree_ms']:.2f} | {r['tree_ratio']:.2f} | {100 * r['optax_bw']:.0f}% | "
                f"{100 * r['flat_bw']:.0f}% | {100 * r['tree_bw']:.0f}% |"
            )
        lines += [
            "",
            f"### Compile time of that step ({device})",
            "",
            "| leaves | optax s | jtricks s | speed-up | jtricks (grad tree) s | speed-up |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in compiles:
            lines.append(
                f"| {r['leaves']} x {_human(r['size'])} | {r['optax_s']:.2f} | {r['flat_s']:.2f} | "
                f"{r['optax_s'] / r['flat_s']:.0f}x | {r['tree_s']:.2f} | "
                f"{r['optax_s'] / r['tree_s']:.1f}x |"
            )
        for r in steps:
            lines.append(
                f"| {r['shape']} (step above) | {r['optax_compile_s']:.2f} | "
                f"{r['flat_compile_s']:.2f} | {r['optax_compile_s'] / r['flat_compile_s']:.0f}x | "
                f"{r['tree_compile_s']:.2f} | {r['optax_compile_s'] / r['tree_compile_s']:.1f}x |"
            )
    if train is not None:
        lines += [
            "",
            "## Full training step: digits MLP with batch norm and dropout",
            "",
            f"MLP {train['features']} (batch norm + dropout 0.1, {train['params']} parameters in "
            f"{train['leaves']} leaves), batch {train['batch']}, Adam; forward + backward + "
            "update + apply, state donated.",
            "",
            "| jtricks, flat params ms | ratio | jtricks, tree params ms | ratio | "
            "flax + optax ms |",
            "|---:|---:|---:|---:|---:|",
            f"| {train['flat_ms']:.3f} | {train['flat_ms'] / train['flax_ms']:.2f} | "
            f"{train['tree_ms']:.3f} | {train['tree_ms'] / train['flax_ms']:.2f} | "
            f"{train['flax_ms']:.3f} |",
        ]
    lines += _targets(sections, train)
    lines += [
        "",
        "## Notes",
        "",
        "- Every step donates its parameters and optimizer state; each figure is the median "
        "over the repeats after warm-up, and the rows of one table are timed in turn "
        "(optax, jtricks, copy, ...) so that a change in the machine's load hits them alike. "
        "On a shared machine, compare the ratios, not the absolute times.",
        "- `jtricks` is the step a user writes after `flat, unravel = jtricks.optim.ravel(params)`: "
        "`chain(clip_by_global_norm(1.0), adam(1e-3))` and `apply_updates` on one buffer per "
        "dtype, whatever the tree looks like. Its step and its compile time no longer depend "
        "on the number of leaves; that cost moves into the model, which reads "
        "`unravel(flat)` (slices) and whose backward pass ends with one concatenate per dtype "
        "(the full training step above includes both).",
        "- `jtricks (grad tree)` is the same step fed a gradient tree: one concatenate more.",
        "- `jtricks.optim.flatten(tx)` (state flat, parameters and updates still trees) "
        "still splits the updates into one kernel per leaf, so its compile time grows with "
        "the leaves like optax's; it is not in these tables.",
        "",
    ]
    return "\n".join(lines)


def _targets(sections, train) -> list[str]:
    """The issue's targets, each marked met or not met from the figures above."""

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = ["", "## Targets", ""]
    for device, _, _, steps, _ in sections:
        many = [r for r in steps if r["leaves"] >= 2048]
        worst = max(steps, key=lambda r: r["ratio"])
        lines.append(
            f"- ({device}) never slower than optax (ratio <= 1.0): "
            f"{mark(worst['ratio'] <= 1.0)} (worst {worst['ratio']:.2f} on {worst['shape']})"
        )
        if many:
            step_x = min(1 / r["ratio"] for r in many)
            compile_x = min(r["optax_compile_s"] / r["flat_compile_s"] for r in many)
            lines.append(
                f"- ({device}) >= 2048 leaves: >= 3x faster per step: {mark(step_x >= 3)} "
                f"(least {step_x:.1f}x); >= 5x faster to compile: {mark(compile_x >= 5)} "
                f"(least {compile_x:.0f}x)"
            )
        low = min(steps, key=lambda r: r["flat_bw"])
        lines.append(
            f"- ({device}) >= 50% of the copy bandwidth on every tree: "
            f"{mark(low['flat_bw'] >= 0.5)} (lowest {100 * low['flat_bw']:.0f}% on {low['shape']})"
        )
    if train is not None:
        best = min(train["flat_ms"], train["tree_ms"])
        lines.append(
            f"- full training step no slower than flax + optax: {mark(best <= train['flax_ms'])} "
            f"(flat params {train['flat_ms'] / train['flax_ms']:.2f}x, tree params "
            f"{train['tree_ms'] / train['flax_ms']:.2f}x the flax time)"
        )
    return lines


def _section(device, shapes, compile_counts, compile_size, copy_n, repeats):
    with jax.default_device(device):
        steps = bench_steps(shapes, repeats, copy_n)
        compiles = bench_compile(compile_counts, compile_size)
        copy_bw = statistics.median(r["copy_bw"] for r in steps)
    return (f"{device.platform}: {device.device_kind}", copy_n, copy_bw, steps, compiles)


def main(argv=None) -> int:
    """Runs the benchmarks, prints the tables and writes ``BENCHMARKS.md``.

    Args:
      argv: command-line arguments (default ``sys.argv[1:]``): ``--quick`` for a
        tiny smoke run, ``--repeats N``, ``--out PATH`` (``-`` to write nothing).

    Returns:
      The exit status, 0.
    """
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
        help="comma-separated leaf counts of the compile table (default 256,1024,4096)",
    )
    args = parser.parse_args(argv)
    command = "jtricks bench " + " ".join(sys.argv[1:] if argv is None else argv)

    if args.quick:
        shapes, counts, size, copy_n = QUICK_SHAPES, QUICK_COMPILE, 128, 1 << 16
        repeats = args.repeats or 2
        features, batch = (16, 10), 16
    else:
        shapes, counts, size, copy_n = FULL_SHAPES, FULL_COMPILE, 1024, 16 << 20
        repeats = args.repeats or 10
        features, batch = (256, 256, 10), 128

    if args.shapes:
        shapes = tuple(_parse_shape(text) for text in args.shapes.split(",") if text)
    if args.compile_leaves:
        counts = tuple(int(c) for c in args.compile_leaves.split(",") if c)
    machine = describe_machine()
    sections = [_section(jax.devices("cpu")[0], shapes, counts, size, copy_n, repeats)]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if gpus:
        sections.append(_section(gpus[0], shapes, counts, size, copy_n, repeats))
    train = None
    if not args.no_train:
        _log("[bench] training step ...")
        train = bench_train_step(features, batch, repeats if args.quick else max(repeats, 20))
    report = format_report(command, machine, sections, train)
    print(report)
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(report)
        _log(f"[bench] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
