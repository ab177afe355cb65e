"""Table 2: the training step of real models (hundreds of leaves), flax + optax vs jtricks vs PyTorch.

Each model runs in its own worker process (``python -m benchmarks._worker model NAME``): it
compiles the flax + optax step, the jtricks step (``jtricks.nn`` layers, ``jtricks.optim`` and
``jtricks.train.train_step``) and flax's gradient-only program, reporting each compile time as it
finishes, then times them and the eager PyTorch step interleaved. Every step is
``value_and_grad`` + ``clip_by_global_norm(1)`` + Adam(1e-3) + apply, state donated.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _jax_models as jm
from benchmarks._measure import compile_fresh, interleaved_times, log, summarize
from benchmarks._worker_io import emit

# name -> (architecture arguments, input shape of one example, batch)
FULL: dict[str, Any] = {
    "resnet": (dict(stage_channels=(16, 32, 64), blocks_per_stage=14), (32, 32, 3), 8),
    "transformer": (dict(width=64, depth=21, heads=4), (32, 16), 16),
}
QUICK: dict[str, Any] = {
    "resnet": (dict(stage_channels=(4, 8), blocks_per_stage=1), (8, 8, 3), 4),
    "transformer": (dict(width=16, depth=1, heads=2), (4, 8), 4),
}


def _describe(name: str, arch: dict, shape, batch: int) -> str:
    if name == "resnet":
        return (f"ResNet, stages {arch['stage_channels']} x {arch['blocks_per_stage']} basic "
                f"blocks with batch norm, {shape[0]}x{shape[1]}x{shape[2]} inputs, batch {batch}")
    return (f"transformer, {arch['depth']} pre-LN blocks (attention {arch['heads']} heads + "
            f"MLP), width {arch['width']}, sequence {shape[0]} x {shape[1]}, batch {batch}")


def _optimizers():
    import optax

    import jtricks.optim as jo

    return (optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)),
            jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3)))


def _models(name: str, arch: dict):
    from jtricks import nn

    if name == "resnet":  # jtricks: each stage's identical blocks scanned over stacked params
        return jm.flax_resnet(10, **arch), nn.resnet(10, scan_blocks=True, **arch)
    return jm.flax_transformer(10, **arch), jm.jtricks_transformer(10, **arch)


def _runner(compiled, state, batch):
    box = [state]

    def run():
        box[0], value = compiled(box[0], batch)
        jax.block_until_ready((box[0], value))

    return run


def _torch_runner(name, arch, shape, batch_np):
    from benchmarks import _torch_models as tm

    torch = tm.torch_or_none()
    if torch is None:
        return None, None
    torch.manual_seed(0)
    x, y = batch_np
    if name == "resnet":
        model, x = tm.resnet(10, in_channels=shape[-1], **arch), tm.nchw(torch, x)
    else:
        model, x = tm.transformer(10, d_in=shape[-1], **arch), torch.from_numpy(x)
    y = torch.from_numpy(y.astype(np.int64))
    step = tm.train_step(model, torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True))
    leaves = len(list(model.parameters()))

    def run():
        step(x, y)

    return run, leaves


def model_row(name: str, quick: bool, repeats: int) -> None:
    """Emits one model's row: compile times as they finish, then the interleaved step times."""
    arch, shape, batch_size = (QUICK if quick else FULL)[name]
    rng = np.random.default_rng(0)
    batch_np = (rng.standard_normal((batch_size, *shape)).astype(np.float32),
                rng.integers(0, 10, batch_size).astype(np.int32))
    batch = tuple(jnp.asarray(b) for b in batch_np)
    flax_model, jt_model = _models(name, arch)
    optax_tx, jt_tx = _optimizers()
    key = jax.random.key(0)

    import jtricks.train as jt

    params, stats = jm.flax_init(flax_model, batch[0], key)
    jt_params, jt_state = jt_model.init(key, shape)
    row: dict = dict(model=name, description=_describe(name, arch, shape, batch_size),
               leaves=len(jax.tree.leaves(jt_params)), flax_leaves=len(jax.tree.leaves(params)),
               params=int(sum(np.size(p) for p in jax.tree.leaves(jt_params))),
               compile_s={}, ms={}, spread={})
    fresh = lambda: (jax.tree.map(jnp.copy, params), jax.tree.map(jnp.copy, stats),  # noqa: E731
                     optax_tx.init(params), jax.random.key(0))
    jt_loss = jt.classifier_loss(jt_model)

    def jt_step(state, batch):
        return jt.train_step(state, batch, loss_fn=jt_loss, tx=jt_tx)

    programs = {
        "flax": (jm.flax_train_step(flax_model, optax_tx), fresh),
        "jtricks": (jt_step, lambda: jt.TrainState.create(
            params=jax.tree.map(jnp.copy, jt_params), tx=jt_tx, key=1,
            model_state=jax.tree.map(jnp.copy, jt_state))),
        "grad": (jm.flax_grad_step(flax_model), fresh),
    }
    runs = {}
    for label, (step, make_state) in programs.items():
        compiled, row["compile_s"][label] = compile_fresh(step, make_state(), batch, donate=(0,))
        runs[label] = _runner(compiled, make_state(), batch)
        emit(row)
        log(f"[bench] {name}: {label} compiled in {row['compile_s'][label]:.1f} s")
    torch_run, row["torch_leaves"] = _torch_runner(name, arch, shape, batch_np)
    if torch_run is not None:
        runs["torch"] = torch_run
    times = interleaved_times(runs, repeats, warmup=2, block=2)
    for label, ts in times.items():
        row["ms"][label], row["spread"][label] = summarize(ts, scale=1e3)
    emit(row)
    log(f"[bench] {name}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in row["ms"].items()))
