"""Table 3: time to a target validation accuracy from a cold start, each run a fresh process.

The parent saves the digits split once (``jtricks.data.load_split("digits", seed=0)``, scaled to
[-1, 1]) to an ``.npz`` file; every contestant starts as a new Python process, imports its
framework, loads that file, builds the model, trains epoch by epoch and checks the validation
accuracy after every epoch, so imports, compilation and the first epochs are all in the time:

* ``flax``: flax.linen + optax, a jitted step called in a Python loop over shuffled batches;
* ``torch``: the PyTorch loop (``model.train()``, ``zero_grad``, ``backward``, ``step``);
* ``fit``: ``jtricks.train.fit`` with a callback that stops at the target;
* ``cli``: the ``jtricks train`` command (it loads and splits the digits itself): its
  ``history.jsonl`` is watched and the run stopped when a row reaches the target;
* ``cli_warm``: the same command with its persistent compilation cache (``jtricks train``'s
  default) filled by one untimed run of it before: a second run of one configuration, as users
  run it again. Reported, not a cold start.

The time is from starting the process to the end of the epoch that reached the target (the
worker reports the wall clock; the parent subtracts its start). Every process but
``cli_warm``'s runs with ``JTRICKS_COMPILE_CACHE=off`` and no JAX cache directory: compiled
cold. The recipe is that of
``jtricks train``'s defaults: Adam(1e-3), batch 32, dropout 0.1, He-normal kernels; MLP 256-128;
CNN ``jtricks.nn.cnn`` (conv 16, conv 32, dense 64). This module imports only the standard
library at the top, so a worker pays only for its own framework.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks._worker_io import TAG, emit, log, worker_env

LIBS = ("flax", "torch", "fit", "cli", "cli_warm")
BATCH, LR = 32, 1e-3


def _load(path):
    import numpy as np

    d = np.load(path)
    return d["xtr"], d["ytr"], d["xva"], d["yva"]


def _done(epoch: int, acc: float, target: float, out: dict) -> bool:
    out.update(epoch=epoch, val_accuracy=acc)
    if acc >= target:
        out["reached_wall"] = time.time()
        return True
    return False


def _flax(model_name, path, target, max_epochs, out):
    import jax
    import numpy as np
    import optax

    from benchmarks import _jax_models as jm

    xtr, ytr, xva, yva = _load(path)
    model = jm.flax_mlp((256, 128, 10)) if model_name == "mlp" else jm.flax_cnn()
    key = jax.random.key(0)
    params, stats = jm.flax_init(model, xtr[:1], key)
    tx = optax.adam(LR)
    step = jax.jit(jm.flax_train_step(model, tx), donate_argnums=0)
    accuracy = jax.jit(jm.flax_accuracy(model))
    state = (params, stats, tx.init(params), key)
    rng = np.random.default_rng(0)
    for epoch in range(1, max_epochs + 1):
        order = rng.permutation(len(ytr))
        for i in range(len(ytr) // BATCH):
            idx = order[i * BATCH:(i + 1) * BATCH]
            state, _ = step(state, (xtr[idx], ytr[idx]))
        if _done(epoch, float(accuracy(state[0], state[1], xva, yva)), target, out):
            return


def _torch(model_name, path, target, max_epochs, out):
    import torch

    from benchmarks import _torch_models as tm

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    xtr, ytr, xva, yva = _load(path)
    if model_name == "mlp":
        model = tm.mlp((256, 128, 10))
        xtr, xva = torch.from_numpy(xtr), torch.from_numpy(xva)
    else:
        model = tm.cnn()
        xtr, xva = tm.nchw(torch, xtr), tm.nchw(torch, xva)
    ytr, yva = torch.from_numpy(ytr).long(), torch.from_numpy(yva).long()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for epoch in range(1, max_epochs + 1):
        tm.train_epoch(model, opt, xtr, ytr, BATCH)
        if _done(epoch, tm.accuracy(model, xva, yva), target, out):
            return


def _fit(model_name, path, target, max_epochs, out):
    import jax

    import jtricks
    import jtricks.train as jt

    xtr, ytr, xva, yva = _load(path)
    model = (jtricks.nn.mlp((256, 128, 10), dropout=0.1) if model_name == "mlp"
             else jtricks.nn.cnn(10, dropout=0.1))
    tx = jtricks.optim.adam(LR)
    params, model_state = model.init(jax.random.key(0), xtr.shape[1:])
    state = jt.TrainState.create(params=params, tx=tx, key=1, model_state=model_state)

    def stop(epoch, row, state):
        return _done(epoch, float(row["val_accuracy"]), target, out)

    jt.fit(state, (xtr, ytr), loss_fn=jt.classifier_loss(model), tx=tx, epochs=max_epochs,
           batch_size=BATCH, val_data=(xva, yva), eval_fn=jt.classifier_eval(model),
           callbacks=[stop], progress=False)


def cold_env(cache: str | None = None) -> dict:
    """The workers' environment: the checkout importable, every compilation cache off (or
    ``jtricks train``'s in the folder ``cache``)."""
    env = worker_env({"JTRICKS_COMPILE_CACHE": cache or "off"})
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def _cli_run(model_name, target, max_epochs, timeout, cache: str | None = None) -> dict:
    """``jtricks train`` in a fresh process, stopped when its history first reaches ``target``
    (its compilation cache in the folder ``cache``, or off)."""
    with tempfile.TemporaryDirectory() as out_dir:
        history = os.path.join(out_dir, "history.jsonl")
        cmd = [sys.executable, "-m", "jtricks", "train", "--model", model_name, "--quiet",
               "--epochs", str(max_epochs), "--out", out_dir]
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=cold_env(cache))
        row: dict = dict(epoch=0, val_accuracy=None)
        seen = 0
        while time.time() - t0 < timeout:
            finished = proc.poll() is not None
            lines = open(history).read().splitlines() if os.path.exists(history) else []
            for line in lines[seen:]:
                r = json.loads(line)
                row.update(epoch=int(r["epoch"]), val_accuracy=float(r["val_accuracy"]))
                if row["val_accuracy"] >= target:
                    row["seconds"] = time.time() - t0
                    break
            seen = len(lines)
            if "seconds" in row or finished:
                break
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return row


def cold_run(lib: str, model_name: str, data_path: str, target: float, max_epochs: int,
             timeout: float) -> dict:
    """One cold run of ``lib``: ``{"seconds" (absent if the target was not reached), "epoch",
    "val_accuracy"}``. ``cli_warm`` keeps its cache beside ``data_path``, filled by an untimed
    run the first time."""
    if lib == "cli":
        return _cli_run(model_name, target, max_epochs, timeout)
    if lib == "cli_warm":
        cache = os.path.join(os.path.dirname(data_path), f"xla-cache-{model_name}")
        if not os.path.isdir(cache):
            os.makedirs(cache)
            _cli_run(model_name, target, max_epochs, timeout, cache)  # fills it, untimed
        return _cli_run(model_name, target, max_epochs, timeout, cache)
    cmd = [sys.executable, "-m", "benchmarks._cold", lib, model_name, data_path, str(target),
           str(max_epochs)]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, env=cold_env(), timeout=timeout)
    records = [json.loads(line[len(TAG):]) for line in done.stdout.splitlines()
               if line.startswith(TAG)]
    if not records:
        raise RuntimeError(f"cold-start worker {lib} {model_name} failed:\n{done.stderr[-2000:]}")
    row = records[-1]
    if "reached_wall" in row:
        row["seconds"] = row.pop("reached_wall") - t0
    return row


def save_digits(path: str) -> None:
    """The split every worker trains on: digits, seed 0, scaled to [-1, 1]."""
    import numpy as np

    from jtricks.data import load_split

    data = load_split("digits", seed=0)
    (xtr, ytr), (xva, yva) = data.train, data.val
    np.savez(path, xtr=np.asarray(xtr, np.float32), ytr=np.asarray(ytr, np.int32),
             xva=np.asarray(xva, np.float32), yva=np.asarray(yva, np.int32))


def _main(argv) -> int:
    lib, model_name, path, target, max_epochs = argv
    out: dict = {}
    {"flax": _flax, "torch": _torch, "fit": _fit}[lib](model_name, path, float(target),
                                                       int(max_epochs), out)
    emit(out)
    log(f"[bench] cold {lib} {model_name}: epoch {out['epoch']}, val {out['val_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
