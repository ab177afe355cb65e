"""Benchmark: vmapped sweeps against sequential runs, and data-parallel scaling.

Two measurements on the embedded digits data (1797 8x8 images):

1. Sweep throughput, in configurations x optimizer steps per second, of
   ``jtricks.sweep.train`` (K configurations as one vmapped, jitted program)
   against K sequential runs, each compiled for its own hyperparameters (what a
   script with Python-number hyperparameters does), K sequential runs sharing
   one compilation (hyperparameters passed as arrays), and a hand-written
   optax + ``vmap`` sweep of the same model (``optax_vmap_sweep``). Early
   stopping is off so that every configuration does the same work; the
   compiled variants are interleaved, median (min, max) of ``--repeats``, with
   wall and process CPU time (steadier on a shared machine).
2. Data-parallel scaling of one training step (MLP with batch norm and dropout,
   fixed global batch) over 1, 2, 4, 8 devices, for the ``jit`` + mesh form and
   the ``pmap`` form. On CPU the devices are forced (``jax_num_cpu_devices``)
   and share the machine's cores, so this measures overhead, not speed-up.
   Also: ``jit`` on an Explicit mesh, ``jit`` on a (data, model) mesh with the
   parameters and optimizer state split over ``model`` (FSDP), and
   ``shard_map`` with 4 micro-batches per step.
3. (``--part members``, not in ``all``) Sweep member-steps per second for K =
   1, 8, 32 members split over the devices' ``member`` axis, with early
   stopping, half the members at learning rate 0 (they stop after 2 epochs): only
   the epochs each member ran count. Lockstep (``rounds=epochs``: a stopped
   member is frozen but computed until the last one stops) against rounds of
   one epoch (stopped members dropped between rounds), interleaved.
   (``--part sweepkeys``) one key for all members against one key each, with
   dropout 0.5 and without, interleaved.
4. (``--part keys``, not in ``all``) What the per-example dropout-key rule
   costs: a training step with dropout (MLP 64-512-512-10 and the cnn, rate
   0.5) on the largest device count, ``pmap_step``'s body with the rule
   against the same ``pmap`` of ``train_step`` with one key per device (``fold_in(step_key,
   device)``, one draw for the shard), and on one device the rule against one
   draw for the whole batch; the variants interleaved, median of ``--repeats``.

Usage::

    PYTHONPATH=. python scripts/bench_scale.py                  # parts 1 and 2
    PYTHONPATH=. python scripts/bench_scale.py --part sweep --configs 16
    PYTHONPATH=. python scripts/bench_scale.py --part keys --devices 8
    PYTHONPATH=. python scripts/bench_scale.py --part members --devices 8 --epochs 10
    PYTHONPATH=. python scripts/bench_scale.py --part sweepkeys --devices 1 --configs 8
    PYTHONPATH=. python scripts/bench_scale.py --json out.json

Times are wall-clock seconds with ``block_until_ready``; compile times are the
first call minus a warm call.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "sweep", "parallel", "keys", "members",
                                       "sweepkeys"),
                   default="all")
    p.add_argument("--configs", type=int, default=8, help="sweep size K (default 8)")
    p.add_argument("--epochs", type=int, default=10, help="sweep epochs (default 10)")
    p.add_argument("--batch-size", type=int, default=64, help="sweep batch size (default 64)")
    p.add_argument("--devices", default="1,2,4,8", help="device counts (default 1,2,4,8)")
    p.add_argument("--global-batch", type=int, default=512, help="data-parallel batch (default 512)")
    p.add_argument("--steps", type=int, default=30, help="timed data-parallel steps (default 30)")
    p.add_argument("--keys-batch", type=int, default=256, help="dropout-key batch (default 256)")
    p.add_argument("--repeats", type=int, default=7, help="dropout-key repeats (default 7)")
    p.add_argument("--members", type=lambda v: [int(k) for k in v.split(",")],
                   default=[1, 8, 32], help="--part members: sweep sizes (default 1,8,32)")
    p.add_argument("--no-recompiles", action="store_true",
                   help="skip the sweep row that compiles once per configuration")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    return p.parse_args(argv)


def _timed(fn, *args):
    import jax

    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def _digits():
    import jax
    import numpy as np

    import jtricks.data as jd

    x, y = jd.load_digits()
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    train, val = jd.split(jax.random.PRNGKey(0), len(y), (0.8, 0.2), stratify=y)
    scaler = jd.minmax_scale(x[train], feature_range=(-1, 1))
    return (np.asarray(scaler(x[train])), y[train], np.asarray(scaler(x[val])), y[val])


def _hparams(k: int):
    """K configurations cycling through a grid of the four swept hyperparameters."""
    import numpy as np

    grid = list(
        itertools.product([1e-3, 3e-3, 1e-2], [0.0, 1e-4, 1e-2], [0.0, 0.2, 0.5], [0.5, 1.0, 2.0])
    )
    rows = [grid[(i * 37) % len(grid)] for i in range(k)]
    names = ("learning_rate", "weight_decay", "dropout", "init_scale")
    return {n: np.asarray([r[i] for r in rows], np.float32) for i, n in enumerate(names)}


def build(h):
    """The swept member: an MLP and AdamW, built from (possibly traced) hyperparameters."""
    import jtricks

    # init_scale multiplies the He-normal standard deviation, as in `jtricks sweep`.
    kernel_init = jtricks.init.variance_scaling(2.0 * h["init_scale"] ** 2, "fan_in", "normal")
    model = jtricks.nn.mlp([128, 10], dropout=h["dropout"], kernel_init=kernel_init)
    return model, jtricks.optim.adamw(h["learning_rate"], weight_decay=h["weight_decay"])


def _interleaved(variants: dict, repeats: int) -> dict:
    """``{name: {"wall": [...], "cpu": [...]}}``: each variant (a thunk, already compiled)
    timed ``repeats`` times, interleaved, every other round in reverse order. CPU time is
    the process's (all threads): steadier than wall time on a shared machine."""
    import jax

    times: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in variants}
    for r in range(repeats):
        for name in list(variants)[:: 1 if r % 2 == 0 else -1]:
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(variants[name]())
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(time.process_time() - cpu)
    return times


def _report(times: dict, work: int, unit: str, base: str) -> dict:
    """Prints median, min and max seconds and ``unit``/s per variant, and each median's
    ratio of throughput to ``base``'s (wall and CPU time); returns the figures."""
    import statistics

    out = {}
    print(f"{'':44s} {'median s':>9s} {'min':>7s} {'max':>7s} {unit + '/s':>15s} "
          f"{'vs ' + base[:12]:>16s} {'(cpu time)':>10s}")
    med = {n: {c: statistics.median(t[c]) for c in ("wall", "cpu")} for n, t in times.items()}
    for name, t in times.items():
        ratio = med[base]["wall"] / med[name]["wall"]
        ratio_cpu = med[base]["cpu"] / med[name]["cpu"]
        print(f"{name:44s} {med[name]['wall']:9.3f} {min(t['wall']):7.3f} {max(t['wall']):7.3f} "
              f"{work / med[name]['wall']:15.0f} {ratio:15.2f}x {ratio_cpu:9.2f}x")
        out[name] = {"median_s": med[name]["wall"], "min_s": min(t["wall"]),
                     "max_s": max(t["wall"]), "median_cpu_s": med[name]["cpu"],
                     f"{unit}_per_s": work / med[name]["wall"],
                     "throughput_vs_" + base: ratio, "cpu_throughput_vs_" + base: ratio_cpu}
    return out


def optax_vmap_sweep(data, *, epochs: int, batch_size: int, key):
    """The idiomatic reference: an MLP 64-128-10 with dropout and ``optax.adamw``,
    hand-written, the K configurations ``vmap``-ed in one jitted ``lax.scan`` over the
    epochs (shared key and data order, no early stopping), validation loss each epoch.
    Returns the jitted ``sweep(hparams) -> (params, val_losses)``."""
    import jax
    import jax.numpy as jnp
    import optax

    xtr, ytr, xva, yva = (jnp.asarray(a) for a in data)
    xtr, xva = xtr.reshape(len(xtr), -1), xva.reshape(len(xva), -1)
    n, steps = len(ytr), len(ytr) // batch_size

    def init(h, k):
        k1, k2 = jax.random.split(k)
        std1 = h["init_scale"] * jnp.sqrt(2.0 / xtr.shape[1])
        std2 = h["init_scale"] * jnp.sqrt(2.0 / 128)
        return {"w1": std1 * jax.random.normal(k1, (xtr.shape[1], 128)), "b1": jnp.zeros(128),
                "w2": std2 * jax.random.normal(k2, (128, 10)), "b2": jnp.zeros(10)}

    def forward(p, x, rate, k):
        hidden = jax.nn.relu(x @ p["w1"] + p["b1"])
        if k is not None:
            keep = jax.random.bernoulli(k, 1.0 - rate, hidden.shape)
            hidden = jnp.where(keep, hidden / (1.0 - rate), 0.0)
        return hidden @ p["w2"] + p["b2"]

    def loss(p, x, y, rate, k):
        return optax.softmax_cross_entropy_with_integer_labels(forward(p, x, rate, k), y).mean()

    def member(h):
        tx = optax.adamw(h["learning_rate"], weight_decay=h["weight_decay"])
        params = init(h, jax.random.fold_in(key, 0))
        state = tx.init(params)

        def step(carry, batch):
            p, s, k = carry
            k, sub = jax.random.split(k)
            g = jax.grad(loss)(p, *batch, h["dropout"], sub)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s, k), None

        def epoch(carry, e):
            order = jax.random.permutation(jax.random.fold_in(key, e), n)
            idx = order[: steps * batch_size].reshape(steps, batch_size)
            carry, _ = jax.lax.scan(step, carry, (xtr[idx], ytr[idx]))
            return carry, loss(carry[0], xva, yva, 0.0, None)

        carry = (params, state, jax.random.fold_in(key, 1))
        (params, _, _), val = jax.lax.scan(epoch, carry, jnp.arange(1, epochs + 1))
        return params, val

    return jax.jit(jax.vmap(member))


def bench_sweep(args) -> dict:
    """Sweep throughput: the vmapped sweep against sequential runs and optax + vmap."""
    import functools

    import jax

    from jtricks import sweep

    data = _digits()
    hp = _hparams(args.configs)
    k = args.configs
    steps = args.epochs * (len(data[1]) // args.batch_size)
    key = jax.random.PRNGKey(0)
    settings = dict(epochs=args.epochs, batch_size=args.batch_size)

    def vmapped(h):
        return sweep.train(build, h, data[:2], data[2:], key=key, **settings).members

    _, first = _timed(vmapped, hp)

    # Sequential, one compilation per configuration: hyperparameters as Python numbers.
    start = time.perf_counter()
    for i in range(0 if args.no_recompiles else k):
        h = {n: float(v[i]) for n, v in hp.items()}
        jax.block_until_ready(jax.jit(functools.partial(
            sweep.fit_member, build, h, key=key, **settings))(data[:2], data[2:]))
    sequential_compiled = float("nan") if args.no_recompiles else time.perf_counter() - start

    # Sequential, one shared compilation: hyperparameters as array arguments.
    one = jax.jit(lambda h, tr, va: sweep.fit_member(build, h, tr, va, key=key, **settings))
    start = time.perf_counter()
    jax.block_until_ready([one({n: v[i] for n, v in hp.items()}, data[:2], data[2:])
                           for i in range(k)])
    sequential_shared = time.perf_counter() - start
    optax_sweep = optax_vmap_sweep(data, key=key, **settings)
    _, optax_first = _timed(optax_sweep, hp)

    work = k * steps
    print(f"\nSweep: K={k} configurations x {steps} steps (digits, MLP 64-128-10, AdamW, "
          "dropout, no early stopping), one process")
    print(f"{'cold (compilation included)':42s} {'seconds':>9s} {'config-steps/s':>15s}")
    cold = {"vmapped sweep, first call": first, f"sequential, {k} compiles": sequential_compiled,
            "sequential, 1 shared compile": sequential_shared,
            "optax + vmap, first call": optax_first}
    for name, seconds in cold.items():
        print(f"{name:42s} {seconds:9.2f} {work / seconds:15.0f}")
    variants = {
        "sequential, compiled (one shared compile)": lambda: [
            one({n: v[i] for n, v in hp.items()}, data[:2], data[2:]) for i in range(k)],
        "jtricks.sweep.train, compiled": lambda: vmapped(hp),
        "optax + vmap (hand-written), compiled": lambda: optax_sweep(hp),
    }
    print(f"compiled, median of {args.repeats} interleaved repeats:")
    warm = _report(_interleaved(variants, args.repeats), work, "config-steps",
                   "sequential, compiled (one shared compile)")
    return {"configs": k, "steps_per_config": steps, "cold_seconds": cold, "compiled": warm}


def bench_sweep_keys(args) -> dict:
    """The cost of one key per member: a sweep with dropout 0.5, one key shared by all
    members against one key each (no early stopping), and the same pair without dropout
    (a member's own key then only changes its data order and initialisation), all
    interleaved. The per-member overhead with dropout minus the one without is what the
    members' own dropout masks cost."""
    import jax

    from jtricks import sweep

    data = _digits()
    k = args.configs
    hp = dict(_hparams(k), dropout=jax.numpy.full((k,), 0.5))
    key = jax.random.PRNGKey(0)
    keys = jax.random.split(key, k)
    settings = dict(epochs=args.epochs, batch_size=args.batch_size)

    def no_dropout(h):
        return build(dict(h, dropout=0.0))  # a Python 0: the model draws no masks

    def run(builder, member_keys):
        return lambda: sweep.train(builder, hp, data[:2], data[2:], key=member_keys,
                                   **settings).members

    variants = {
        "one key for all members": run(build, key),
        "one key per member": run(build, keys),
        "no dropout, one key for all": run(no_dropout, key),
        "no dropout, one key per member": run(no_dropout, keys),
    }
    for thunk in variants.values():
        jax.block_until_ready(thunk())
    steps = args.epochs * (len(data[1]) // args.batch_size)
    print(f"\nPer-member keys: K={k} x {steps} steps, dropout 0.5 (and none), median of "
          f"{args.repeats} interleaved repeats")
    out = _report(_interleaved(variants, args.repeats), k * steps, "member-steps",
                  "one key for all members")
    # the minimum is the least disturbed repeat: steadier than the median on a loaded machine
    for clock, field in (("wall", "median_s"), ("cpu", "median_cpu_s"), ("min wall", "min_s")):
        drop = out["one key per member"][field] / out["one key for all members"][field] - 1
        none = (out["no dropout, one key per member"][field]
                / out["no dropout, one key for all"][field] - 1)
        print(f"one key per member costs {100 * drop:+.1f}% of a step with dropout, "
              f"{100 * none:+.1f}% without ({clock} time)")
        out[f"per_member_overhead_{clock.replace(' ', '_')}"] = {"dropout": drop,
                                                                  "no_dropout": none}
    return out


def bench_parallel(args, counts) -> dict:
    import jax
    import numpy as np

    import jtricks
    from jtricks import parallel
    from jtricks.train import TrainState

    x, y, _, _ = _digits()
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(y), args.global_batch)
    batch = (x[index], y[index])
    model = jtricks.nn.mlp([256, 256, 10], batch_norm=True, dropout=0.1)
    tx = jtricks.optim.adam(1e-3)
    params, model_state = model.init(jax.random.PRNGKey(0), x.shape[1:])
    state = TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(1), model_state=model_state)

    loss = jtricks.train.classifier_loss(model)  # as on one device, for every form

    results = {}
    print(f"\nData parallel: one step, global batch {args.global_batch}, MLP 64-256-256-10 "
          f"with batch norm and dropout ({jax.default_backend()}, {len(jax.devices())} devices)")
    print(f"{'form':34s} {'devices':>7s} {'compile s':>9s} {'ms/step':>8s} {'examples/s':>11s}")
    forms = {
        "jit + mesh (global batch)": lambda n: (
            parallel.sharded_step(loss, tx, parallel.data_mesh(n)),
            lambda s: parallel.replicate_on_mesh(s, parallel.data_mesh(n)),
            lambda b: parallel.shard_batch(b, parallel.data_mesh(n)),
        ),
        "shard_map": lambda n: (
            parallel.sharded_step(loss, tx, parallel.data_mesh(n), per_device=True),
            lambda s: parallel.replicate_on_mesh(s, parallel.data_mesh(n)),
            lambda b: parallel.shard_batch(b, parallel.data_mesh(n)),
        ),
        "pmap": lambda n: (
            parallel.pmap_step(loss, tx, num_devices=n),
            lambda s: parallel.replicate(s, n),
            lambda b: parallel.split_batch(b, n),
        ),
        "jit + Explicit mesh": lambda n: (
            parallel.sharded_step(loss, tx, jax.make_mesh((n,), ("data",))),
            lambda s: parallel.replicate_on_mesh(s, jax.make_mesh((n,), ("data",))),
            lambda b: parallel.shard_batch(b, jax.make_mesh((n,), ("data",))),
        ),
        "jit, data x model (FSDP, model=2)": lambda n: _model_form(loss, tx, n, model_state),
        "shard_map, 4 micro-batches": lambda n: (
            parallel.sharded_step(loss, tx, parallel.data_mesh(n), per_device=True,
                                  micro_batches=4),
            lambda s: parallel.replicate_on_mesh(s, parallel.data_mesh(n)),
            lambda b: parallel.shard_batch(b, parallel.data_mesh(n)),
        ),
    }
    for form, make in forms.items():
        for n in counts:
            if "model" in form and n % 2:
                continue
            step, put_state, put_batch = make(n)
            s, b = put_state(state), put_batch(batch)
            (s, _), first = _timed(step, s, b)
            (s, _), once = _timed(step, s, b)
            start = time.perf_counter()
            for _ in range(args.steps):
                s, metrics = step(s, b)
            jax.block_until_ready(s)
            per_step = (time.perf_counter() - start) / args.steps
            results[f"{form} x{n}"] = {"devices": n, "compile_s": first - once,
                                      "ms_per_step": 1e3 * per_step,
                                      "examples_per_s": args.global_batch / per_step}
            print(f"{form:34s} {n:7d} {first - once:9.2f} {1e3 * per_step:8.2f} "
                  f"{args.global_batch / per_step:11.0f}")
    return results


def _model_form(loss, tx, n, model_state):
    """sharded_step on an (n/2 data, 2 model) mesh, the state built from split parameters."""
    import jax

    from jtricks import parallel
    from jtricks.train import TrainState

    mesh = jax.make_mesh((n // 2, 2), ("data", "model"))

    def put_state(state):
        return TrainState.create(params=parallel.shard_params(state.params, mesh), tx=tx,
                                 key=state.key, model_state=model_state)

    return (parallel.sharded_step(loss, tx, mesh), put_state,
            lambda b: parallel.shard_batch(b, mesh))


def bench_members(args, n) -> dict:
    """Sweep member-steps per second, K = 1, 8, 32, members split over n devices, early
    stopping on (patience 2); half the members have a learning rate that stops them early.
    The member-steps count only the epochs each member ran. Lockstep (one round: a stopped
    member is frozen but computed until the last one stops) against rounds of one epoch
    (stopped members dropped between rounds), interleaved."""
    import jax
    import numpy as np

    from jtricks import sweep

    data = _digits()
    steps_per_epoch = len(data[1]) // args.batch_size
    print(f"\nSweep over devices: member-steps/s (digits MLP 64-128-10, AdamW, "
          f"{args.epochs} epochs max, patience 2, half the members at learning rate 0), "
          f"median of {args.repeats} interleaved repeats")
    results = {}
    for k in args.members:
        d = min(k, n)
        mesh = jax.make_mesh((d,), ("member",)) if d > 1 else None
        hp = _hparams(k)
        # learning rate 0: the validation loss does not change, the member stops after 2 epochs
        hp["learning_rate"] = np.where(np.arange(k) % 2 == 1, 0.0,
                                       hp["learning_rate"]).astype(np.float32)

        def run(rounds, hp=hp, mesh=mesh):
            return sweep.train(build, hp, data[:2], data[2:], key=jax.random.PRNGKey(0),
                               epochs=args.epochs, batch_size=args.batch_size, patience=2,
                               mesh=mesh, rounds=rounds)

        variants = {"lockstep (rounds=epochs)": lambda run=run: run(args.epochs),
                    "default rounds (ceil(epochs / 8))": lambda run=run: run(None),
                    "stopped dropped (rounds=1)": lambda run=run: run(1)}
        compile_s = {name: _timed(f)[1] for name, f in variants.items()}
        result = run(1)
        epochs_run = np.asarray(result.members.epochs_run)
        member_steps = int(epochs_run.sum()) * steps_per_epoch
        print(f"K={k} on {d} device(s): epochs run {sorted(epochs_run.tolist())}; first calls "
              + ", ".join(f"{name} {s:.1f} s" for name, s in compile_s.items()))
        figures = _report(_interleaved(variants, args.repeats), member_steps, "member-steps",
                          "lockstep (rounds=epochs)")
        results[k] = {"devices": d, "epochs_run": epochs_run.tolist(),
                      "member_steps": member_steps, "first_call_s": compile_s, **figures}
    return results


def bench_keys(args, n) -> dict:
    """ms per training step: the per-example key rule against one draw per device / batch."""
    import statistics

    import jax
    import numpy as np

    import jtricks
    from jtricks import parallel
    from jtricks.train import TrainState, classifier_loss, train_step

    x, y, _, _ = _digits()
    index = np.random.default_rng(0).integers(0, len(y), args.keys_batch)
    images = x[index].reshape(-1, 8, 8, 1)
    tx = jtricks.optim.sgd(0.01, momentum=0.9)
    models = {"mlp 512-512": (jtricks.nn.mlp([512, 512, 10], dropout=0.5), x[index]),
              "cnn": (jtricks.nn.cnn(10, dropout=0.5), images)}

    def one_device(loss, per_example):
        def step(state, batch):  # traced inside the context: per_example=False is one draw
            with jtricks.nn.data_parallel(None, per_example=per_example):
                return train_step(state, batch, loss_fn=loss, tx=tx)

        return jax.jit(step), (lambda s: s), (lambda b: b)

    def on_devices(loss, per_example):
        # pmap_step's body (local_step) with or without the rule; one key per device is
        # fold_in(step_key, device index) and one draw per shard, inside the loss.
        def per_device(params, model_state, batch, key):  # the loss leaves the rule
            key = jax.random.fold_in(key, jax.lax.axis_index("data"))
            with jtricks.nn.data_parallel("data", per_example=False):
                return loss(params, model_state, batch, key)

        def body(state, batch):
            return train_step(state, batch, loss_fn=loss if per_example else per_device,
                              tx=tx, axis_name="data")

        step = jax.pmap(body, axis_name="data", devices=jax.local_devices()[:n])
        return step, (lambda s: parallel.replicate(s, n)), (lambda b: parallel.split_batch(b, n))

    print(f"\nDropout-key rule: ms per training step, batch {args.keys_batch}, dropout 0.5, "
          f"median of {args.repeats} interleaved repeats of {args.steps} steps")
    results = {}
    for name, (model, inputs) in models.items():
        loss = classifier_loss(model)
        params, _ = model.init(jax.random.PRNGKey(0), inputs.shape[1:])
        state = TrainState.create(params=params, tx=tx, key=1)
        variants = {
            f"pmap x{n}, per-example keys": on_devices(loss, True),
            f"pmap x{n}, one key per device": on_devices(loss, False),
            "1 device, per-example keys": one_device(loss, True),
            "1 device, one draw per batch": one_device(loss, False),
        }
        placed = {}
        for label, (step, put_state, put_batch) in variants.items():
            s, b = put_state(state), put_batch((inputs, y[index]))
            s, _ = jax.block_until_ready(step(s, b))  # compile and warm up
            placed[label] = [step, s, b]
        times: dict[str, list[float]] = {label: [] for label in variants}
        for r in range(args.repeats):  # interleaved, every other round in reverse order
            for label in list(placed)[:: 1 if r % 2 == 0 else -1]:
                entry = placed[label]
                step, s, b = entry
                start = time.perf_counter()
                for _ in range(args.steps):
                    s, _ = step(s, b)
                jax.block_until_ready(s)
                times[label].append(1e3 * (time.perf_counter() - start) / args.steps)
                entry[1] = s
        medians = {label: statistics.median(t) for label, t in times.items()}
        labels = list(medians)
        for label in labels:
            print(f"  {name:12s} {label:32s} {medians[label]:8.2f} ms  (min {min(times[label]):.2f})")
        for rule, base in ((labels[0], labels[1]), (labels[2], labels[3])):
            print(f"  {name:12s} {rule} / {base}: {medians[rule] / medians[base]:.3f} "
                  f"(min / min {min(times[rule]) / min(times[base]):.3f})")
        results[name] = {"ms_per_step": medians, "all_ms": times}
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    counts = [int(c) for c in args.devices.split(",")]
    import jax

    # Forced CPU devices (ignored by accelerators) must be requested before the backend starts.
    jax.config.update("jax_num_cpu_devices", max(counts))
    backend = jax.default_backend()
    if backend != "cpu":
        counts = [c for c in counts if c <= jax.local_device_count()]
    print(f"jax {jax.__version__}, backend {backend}, {jax.device_count()} devices "
          f"({jax.devices()[0].device_kind}), {os.cpu_count()} CPU cores, {platform.node()}")
    out = {"backend": backend, "device_kind": jax.devices()[0].device_kind,
           "cpu_cores": os.cpu_count()}
    if args.part in ("all", "sweep"):
        out["sweep"] = bench_sweep(args)
    if args.part in ("all", "parallel"):
        out["parallel"] = bench_parallel(args, counts)
    if args.part == "keys":
        out["keys"] = bench_keys(args, max(counts))
    if args.part == "sweepkeys":
        out["sweepkeys"] = bench_sweep_keys(args)
    if args.part == "members":
        out["members"] = bench_members(args, max(counts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
