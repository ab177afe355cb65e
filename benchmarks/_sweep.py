"""Table 4: a sweep of K learning rates (Adam) x the digits MLP, fixed epochs, in one process.

Whole jobs, compilation included (``jax.clear_caches()`` before each, so every repeat compiles
again), timed in turn round after round, in wall seconds and in the process's CPU seconds
(``whole_cpu_s``: on a loaded machine, the cost that does not depend on the other users):

* ``sweep``: ``jtricks.sweep.train`` (one vmapped program for the K members);
* ``flax_seq``: K sequential flax + optax runs as a user writes them (a jitted step closed over
  ``optax.adam(lr)``, one compile per run, a Python loop over shuffled batches);
* ``torch_seq``: K sequential PyTorch runs.

Then member-steps per second once compiled (each job run once untimed first):

* ``sweep``: the same ``jtricks.sweep.train`` call again (its program is cached), one key
  shared by all members (common random numbers: one initialisation, one data order, one set
  of dropout masks);
* ``sweep_keys``: ``jtricks.sweep.train`` with a key per member (each member its own
  initialisation, data order and masks);
* ``shared``: K sequential runs sharing one compile: a jitted ``jtricks.train.make_epoch`` whose
  learning rate is an argument;
* ``optax_vmap``: a hand-written sweep, ``jax.vmap`` over the learning rate of a whole flax +
  optax training run (``lax.scan`` over epochs and batches), jitted, one key for all members;
* ``optax_vmap_val``: the same, with the outputs ``jtricks.sweep.train`` gives every epoch
  (the training loss, accuracy and gradient norm averaged over the epoch's steps, the
  validation loss and accuracy, the best parameters kept): the like-for-like comparison
  of ``sweep``;
* ``optax_vmap_val_keys``: the same with a key per member (``vmap`` over the keys too), the
  like-for-like comparison of ``sweep_keys``.

A member's own key changes the work on a CPU: its own data order makes the first layer K
small products instead of one (``sweep_keys`` against ``sweep`` is what per-member
randomness costs). These are measured at K = 8, 16 and 32 (``steps_per_s_by_k``).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _jax_models as jm
from benchmarks._measure import log

BATCH = 32


def _data():
    from jtricks.data import load_split

    data = load_split("digits", seed=0)
    return data.train, data.val


def _lrs(k: int):
    return np.geomspace(1e-4, 1e-2, k).astype(np.float32)


def _keys(k: int, per_member: bool):
    """One key for all ``k`` members, or a key each."""
    key = jax.random.key(0)
    return jax.random.split(key, k) if per_member else key


def _jtricks_sweep(features, lrs, train, val, epochs, per_member: bool = False):
    import jtricks
    from jtricks.sweep import train as sweep_train

    def build(h):  # a new function each call: jtricks.sweep caches its program per build
        return jtricks.nn.mlp(features, dropout=0.1), jtricks.optim.adam(h["lr"])

    key = _keys(len(lrs), per_member)

    def run():
        result = sweep_train(build, {"lr": jnp.asarray(lrs)}, train, val, key=key,
                             epochs=epochs, batch_size=BATCH)
        jax.block_until_ready(result)

    return run


def _flax_seq(features, lrs, train, val, epochs):
    import optax

    model = jm.flax_mlp(features)
    (xtr, ytr), (xva, yva) = (tuple(np.asarray(a) for a in d) for d in (train, val))

    def run():
        for i, lr in enumerate(lrs):
            key = jax.random.key(i)
            params, stats = jm.flax_init(model, xtr[:1], key)
            tx = optax.adam(float(lr))
            step = jax.jit(jm.flax_train_step(model, tx), donate_argnums=0)
            state, rng = (params, stats, tx.init(params), key), np.random.default_rng(i)
            for _ in range(epochs):
                order = rng.permutation(len(ytr))
                for b in range(len(ytr) // BATCH):
                    idx = order[b * BATCH:(b + 1) * BATCH]
                    state, _ = step(state, (xtr[idx], ytr[idx]))
            float(jax.jit(jm.flax_accuracy(model))(state[0], state[1], xva, yva))

    return run


def _torch_seq(features, lrs, train, val, epochs):
    from benchmarks import _torch_models as tm

    torch = tm.torch_or_none()
    if torch is None:
        return None
    (xtr, ytr), (xva, yva) = (tuple(np.asarray(a) for a in d) for d in (train, val))
    xtr, xva = torch.from_numpy(xtr.astype(np.float32)), torch.from_numpy(xva.astype(np.float32))
    ytr, yva = torch.from_numpy(ytr).long(), torch.from_numpy(yva).long()

    def run():
        for i, lr in enumerate(lrs):
            torch.manual_seed(i)
            model = tm.mlp(features)
            opt = torch.optim.Adam(model.parameters(), lr=float(lr))
            for _ in range(epochs):
                tm.train_epoch(model, opt, xtr, ytr, BATCH)
            tm.accuracy(model, xva, yva)

    return run


def _shared(features, lrs, train, epochs):
    """K sequential runs of one compiled epoch whose learning rate is an argument."""
    import jtricks
    import jtricks.train as jt

    model = jtricks.nn.mlp(features, dropout=0.1)
    loss_fn = jt.classifier_loss(model)

    @jax.jit
    def epoch(state, lr, data, key):
        tx = jtricks.optim.adam(lr)
        return jt.make_epoch(loss_fn=loss_fn, tx=tx, batch_size=BATCH)(state, data, key)[0]

    data = tuple(jnp.asarray(a) for a in train)
    shape = data[0].shape[1:]

    def run():
        for i, lr in enumerate(lrs):
            params, model_state = model.init(jax.random.key(i), shape)
            tx = jtricks.optim.adam(lr)
            state = jt.TrainState.create(params=params, tx=tx, key=i, model_state=model_state)
            for e in range(epochs):
                state = epoch(state, jnp.float32(lr), data, jax.random.key(e))
            jax.block_until_ready(state)

    return run


def _optax_vmap(features, lrs, train, epochs, val=None, per_member: bool = False):
    """The hand-written sweep: ``vmap`` over the learning rate of a whole flax + optax run
    (and over the members' keys with ``per_member``; else one key for all).

    With ``val``, each member also gives what ``jtricks.sweep.train`` gives every epoch:
    its training loss, accuracy and gradient norm averaged over the epoch's steps, its
    validation loss and accuracy (dropout off) and, when the validation loss improves, a
    copy of its parameters as the best so far (returned with the best loss)."""
    import optax

    model = jm.flax_mlp(features)
    x, y = (jnp.asarray(a) for a in train)
    steps = len(y) // BATCH
    loss_fn = jm.flax_loss(model)

    def scores(logits, labels):
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, jnp.mean(jnp.argmax(logits, -1) == labels)

    def loss_and_accuracy(params, batch, key):  # a training step's, dropout on
        xb, yb = batch
        return scores(model.apply({"params": params}, xb, training=True,
                                  rngs={"dropout": key}), yb)

    def validate(params):
        xv, yv = val
        return scores(model.apply({"params": params}, xv, training=False), yv)

    def train_one(lr, key):
        params, stats = jm.flax_init(model, x[:1], key)
        tx = optax.adam(lr)

        def step(carry, idx):
            params, opt_state, key = carry
            key, sub = jax.random.split(key)
            batch = (x[idx], y[idx])
            if val is None:
                grads, _ = jax.grad(loss_fn, has_aux=True)(params, stats, batch, sub)
                metrics = None
            else:  # the step's loss, accuracy and gradient norm, as jtricks records them
                (loss, accuracy), grads = jax.value_and_grad(
                    loss_and_accuracy, has_aux=True)(params, batch, sub)
                metrics = (loss, accuracy, optax.global_norm(grads))
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, key), metrics

        def epoch(carry, key):
            order = jax.random.permutation(key, len(y))[: steps * BATCH].reshape(steps, BATCH)
            carry, metrics = jax.lax.scan(step, carry, order)
            return carry, jax.tree.map(jnp.mean, metrics)

        def epoch_validated(carry, key):
            run, best, best_loss = carry
            run, train_means = epoch(run, key)
            loss, accuracy = validate(run[0])
            better = loss < best_loss
            best = jax.tree.map(lambda new, old: jnp.where(better, new, old), run[0], best)
            return (run, best, jnp.minimum(loss, best_loss)), (loss, accuracy, train_means)

        carry = (params, tx.init(params), key)
        keys = jax.random.split(key, epochs)
        if val is None:
            return jax.lax.scan(epoch, carry, keys)[0][0]
        (_, best, best_loss), curves = jax.lax.scan(
            epoch_validated, (carry, params, jnp.float32(jnp.inf)), keys)
        return best, best_loss, curves

    sweep = jax.jit(jax.vmap(train_one, in_axes=(0, 0 if per_member else None)))
    keys = _keys(len(lrs), per_member)

    def run():
        jax.block_until_ready(sweep(jnp.asarray(lrs), keys))

    return run


def _timed(run) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def _timed_cpu(run) -> tuple[float, float]:
    """``run()``'s wall seconds and this process's CPU seconds (every thread)."""
    c0, t0 = time.process_time(), time.perf_counter()
    run()
    return time.perf_counter() - t0, time.process_time() - c0


def _steady(k: int, epochs: int, features, repeats: int, train, val) -> dict:
    """Member-steps per second once compiled, ``{contestant: [per repeat]}``, at ``k``."""
    lrs = _lrs(k)
    member_steps = k * epochs * (len(train[1]) // BATCH)
    val = tuple(jnp.asarray(a) for a in val)
    compiled = {"sweep": _jtricks_sweep(features, lrs, train, val, epochs),
                "sweep_keys": _jtricks_sweep(features, lrs, train, val, epochs, per_member=True),
                "shared": _shared(features, lrs, train, epochs),
                "optax_vmap_val": _optax_vmap(features, lrs, train, epochs, val),
                "optax_vmap_val_keys": _optax_vmap(features, lrs, train, epochs, val,
                                                   per_member=True),
                "optax_vmap": _optax_vmap(features, lrs, train, epochs)}
    for run in compiled.values():
        run()  # compiles (and the sweep's program is cached from here on)
    steady: dict = {name: [] for name in compiled}
    for _ in range(repeats):
        for name, run in compiled.items():
            steady[name].append(member_steps / _timed(run))
    log(f"[bench] sweep K={k} member-steps/s: "
        + ", ".join(f"{n} {statistics.median(v):.0f}" for n, v in steady.items()))
    return steady


def sweep_table(k: int, epochs: int, features, repeats: int, ks=(8, 32),
                steady_repeats: int | None = None) -> dict:
    """The figures of table 4: whole-job seconds (compile included) at ``k``, ``repeats``
    rounds, and member-steps per second at ``k`` and each of ``ks``, ``steady_repeats``
    rounds (default ``repeats``)."""
    train, val = _data()
    lrs = _lrs(k)
    member_steps = k * epochs * (len(train[1]) // BATCH)
    jobs = {"sweep": _jtricks_sweep(features, lrs, train, val, epochs),
            "flax_seq": _flax_seq(features, lrs, train, val, epochs)}
    torch_job = _torch_seq(features, lrs, train, val, epochs)
    if torch_job is not None:
        jobs["torch_seq"] = torch_job
    whole: dict = {name: [] for name in jobs}
    cpu: dict = {name: [] for name in jobs}
    for r in range(repeats):
        for name, run in jobs.items():
            jax.clear_caches()
            wall, cpu_s = _timed_cpu(run)
            whole[name].append(wall)
            cpu[name].append(cpu_s)
            log(f"[bench] sweep K={k}, round {r + 1}: {name} {wall:.1f} s ({cpu_s:.1f} CPU-s)")
    by_k = {str(kk): _steady(kk, epochs, features, steady_repeats or repeats, train, val)
            for kk in sorted({k, *ks})}
    return dict(k=k, epochs=epochs, features=list(features), member_steps=member_steps,
                batch=BATCH, whole_s=whole, whole_cpu_s=cpu, steps_per_s=by_k[str(k)],
                steps_per_s_by_k=by_k, rounds=repeats, steady_rounds=steady_repeats or repeats)
