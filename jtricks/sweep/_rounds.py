"""A sweep run in rounds: members that stopped stop costing compute.

Every member runs the engine's epoch (:func:`jtricks.train.run_parts`, the
pieces of :func:`jtricks.train.make_run`), ``vmap``-ed over the members inside
a loop of ``rounds`` epochs whose trip count is the same for all (so nothing
the members share is batched by the loop: with one key for all, the data order
and the dropout bits are drawn once per step for every member). A member
freezes at its own stop (``jnp.where``), exactly as under ``make_run``'s
``while_loop``. Between rounds the host reads which members still run, and
when they fit in half the members computed, gathers them into a bucket of
``n * 2**j`` members (``n`` the devices of the ``member`` axis), so a sweep
compiles at most ``log2(K / n) + 1`` round programs.

The running key: a member that has not stopped has run as many epochs as the
round counter, so its training key is the one key chain every live member
shares (one per member with per-member keys); a member's own key in its
state is where its chain stopped.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jtricks._xla import LEVEL_1, RUN_ONCE
from jtricks import train as _train
from jtricks.parallel import _mesh
from jtricks.train._run import run_parts
from jtricks.train._programs import compile_while

from ._member import MemberResult, initial_state, member_of


class Program(NamedTuple):
    """The compiled pieces of a sweep on a given mesh (or one device)."""

    start: Callable  # (hparams, init_keys, train_keys, data, val, data_keys) -> carry
    round: Callable  # (hparams, carry, run_key, first, count, data, val, data_keys)
    gather: Callable  # (tree, index) -> tree[index]
    scatter: Callable  # (tree, index, part) -> tree.at[index].set(part)
    devices: int  # the size of the member axis (buckets are multiples of it)


def _on_data(build, sharding):
    """``build`` whose members' losses split their batch as ``sharding`` says."""

    def split_build(hparams):
        member = member_of(build, hparams)
        loss_fn = member.loss_fn
        assert loss_fn is not None  # member_of fills it in

        def split_loss(params, model_state, batch, key):
            return loss_fn(params, model_state,
                           jax.lax.with_sharding_constraint(batch, sharding), key)

        return member._replace(loss_fn=split_loss)

    return split_build


def _parts(build, hparams, epochs, batch_size, patience):
    member = member_of(build, hparams)
    parts = run_parts(loss_fn=cast(Callable, member.loss_fn), tx=member.tx,
                             batch_size=batch_size, epochs=epochs, eval_fn=member.eval_fn,
                             averager=member.averager,
                             early_stopping=_train.early_stopping(
                                 epochs if patience is None else patience))
    return member, parts


def _advance(epoch, running, carry, run_key, first, count, train_data, val_data, data_key):
    """``count`` epochs from global epoch ``first``; returns ``(carry, run_key, running)``."""

    def body(i, loop):
        carry, key = loop
        live = running(carry)
        new = epoch(carry._replace(state=carry.state._replace(key=key)), train_data, val_data,
                    jax.random.fold_in(data_key, first + i + 1))
        key = new.state.key
        carry = jax.tree.map(lambda a, b: jnp.where(live, a, b), new, carry)
        return carry, key

    carry, run_key = jax.lax.fori_loop(0, count, body, (carry, run_key))
    return carry, run_key, running(carry)


def _member_start(build, epochs, batch_size, patience, hparams, init_key, train_key,
                  train_data, val_data, data_key):
    member, (start, _, _) = _parts(build, hparams, epochs, batch_size, patience)
    return start(initial_state(member, init_key, train_key, train_data), train_data, val_data,
                 data_key)


def _member_round(build, epochs, batch_size, patience, hparams, carry, run_key, first, count,
                  train_data, val_data, data_key):
    _, (_, epoch, running) = _parts(build, hparams, epochs, batch_size, patience)
    return _advance(epoch, running, carry, run_key, first, count, train_data, val_data,
                    data_key)


@functools.lru_cache(maxsize=32)
def program(build, epochs: int, batch_size: int, patience, key_axis, mesh=None) -> Program:
    """The jitted start, round, gather and scatter of a sweep; on a mesh (Auto axes) the
    members are split over its ``member`` axis and each member's batches over ``data``."""
    axes = _mesh.role_axes(mesh) if mesh is not None else {}
    if mesh is not None and axes.get("data"):
        build = _on_data(build, NamedSharding(mesh, P(axes["data"])))
    static = (build, epochs, batch_size, patience)
    member_axis = axes.get("member")
    start = jax.vmap(functools.partial(_member_start, *static),
                     in_axes=(0, key_axis, key_axis, None, None, key_axis),
                     spmd_axis_name=member_axis)
    round_ = jax.vmap(functools.partial(_member_round, *static),
                      in_axes=(0, 0, key_axis, None, None, None, None, key_axis),
                      out_axes=(0, key_axis, 0), spmd_axis_name=member_axis)

    def gather(tree, index):
        return jax.tree.map(lambda leaf: leaf[index], tree)

    def scatter(tree, index, part):
        return jax.tree.map(lambda leaf, new: leaf.at[index].set(new), tree, part)

    # The training program (``round``) compiles at backend level 1 (LEVEL_1): the run
    # does not slow down and the compile is about a third shorter. Table 4's K = 16
    # digits MLP sweep (dropout 0.1, 5 epochs, batch 32), one process, interleaved, load
    # 5-7 on 2 cores: start and training in one program compiled in 6.4 CPU-s at level 1
    # against 9.0 at the default level and ran in 1.16 s against 1.22 s (medians of 7;
    # the same results bit for bit at K = 16, within 3e-7 of the validation loss at
    # K = 1); most of the difference is the threefry code of the initialisation (2.4
    # CPU-s at the default level, 1.2 at level 1). The compile hardly depends on K (8.0
    # CPU-s at K = 1). With the fusion emitters off as well the compile is 5.1 CPU-s but
    # the run 40% slower: only ``start`` (the initialisation) compiles without them
    # (RUN_ONCE), on another thread while ``round`` compiles (:func:`run`).
    if mesh is None:
        return Program(jax.jit(start, compiler_options=RUN_ONCE),
                       jax.jit(round_, compiler_options=LEVEL_1), jax.jit(gather),
                       jax.jit(scatter, donate_argnums=0), 1)
    split, same = NamedSharding(mesh, P(member_axis)), NamedSharding(mesh, P())
    keys = same if key_axis is None else split
    return Program(
        jax.jit(start, in_shardings=(split, keys, keys, same, same, keys), out_shardings=split,
                compiler_options=RUN_ONCE),
        jax.jit(round_, in_shardings=(split, split, keys, same, same, same, same, keys),
                out_shardings=(split, keys, split), compiler_options=LEVEL_1),
        jax.jit(gather, out_shardings=split),
        jax.jit(scatter, out_shardings=split, donate_argnums=0),
        mesh.shape[member_axis])


def host(flags) -> np.ndarray:
    """A (possibly multi-process) array's values on every host."""
    if getattr(flags, "is_fully_addressable", True):
        return np.asarray(flags)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(flags, tiled=True))


def bucket_size(live: int, devices: int) -> int:
    """The smallest ``devices * 2**j`` holding ``live`` members (``devices`` at least).

    Example:
      >>> bucket_size(5, 1), bucket_size(5, 4), bucket_size(9, 4)
      (8, 8, 16)
    """
    size = devices
    while size < live:
        size *= 2
    return size


def run(prog: Program, hparams, train_data, val_data, key, key_axis, *, epochs: int,
        rounds: int) -> MemberResult:
    """Trains every member, ``rounds`` epochs at a time, dropping the stopped ones."""
    per_member = key_axis == 0
    init_key, train_key, data_key = (jax.vmap(jax.random.split, in_axes=(0, None), out_axes=1)
                                     (key, 3) if per_member else jax.random.split(key, 3))
    k = next(iter(hparams.values())).shape[0]
    if k <= prog.devices:  # nothing to drop: every epoch in one round, no host sync between
        rounds = epochs
    carry = _start_compiling_round(prog, hparams, init_key, train_key, train_data, val_data,
                                   data_key)
    # The K members' loop state, and the working bucket's: (carry, per-member run keys).
    full = (carry, train_key if per_member else None)
    members = np.arange(k)  # the members of the working bucket, in its order
    work, h, data_keys, shared_key = full, hparams, data_key, train_key
    first = 0
    while first < epochs:
        count = min(rounds, epochs - first)
        carry, run_key, running = prog.round(h, work[0], work[1] if per_member else shared_key,
                                             jnp.int32(first), jnp.int32(count), train_data,
                                             val_data, data_keys)
        work = (carry, run_key if per_member else None)
        shared_key = run_key
        first += count
        live = members[host(running)]
        if live.size == 0:  # every member stopped
            break
        size = bucket_size(live.size, prog.devices)
        if first >= epochs or size >= members.size:
            continue
        # Shrink: write the bucket back, gather the live members (and stopped ones to pad).
        full = prog.scatter(full, jnp.asarray(members), work)
        members = np.concatenate([live, np.setdiff1d(np.arange(k), live)[: size - live.size]])
        work, h = prog.gather((full, hparams), jnp.asarray(members))
        if per_member:
            data_keys = prog.gather(data_key, jnp.asarray(members))
    if members.size < k:
        work = prog.scatter(full, jnp.asarray(members), work)
    return result(work[0])


def _start_compiling_round(prog: Program, *args):
    """``prog.start(*args)`` on a background thread while this one compiles the first
    round's program from the start's shapes (the two compile side by side: the start's
    initialisation is threefry code, the round the training); returns the start's carry.
    Across processes the two run one after the other."""
    hparams, _, train_key, train_data, val_data, data_key = args
    if jax.process_count() > 1:
        return prog.start(*args)
    carry = jax.eval_shape(prog.start, *args)
    return compile_while(lambda: prog.start(*args),
                         [(prog.round, (hparams, carry, train_key, jnp.int32(0), jnp.int32(0),
                                        train_data, val_data, data_key))])


def result(carry) -> MemberResult:
    """The members' results from their final loop state."""
    best_params, best_model_state = carry.stop_state.best_params
    return MemberResult(best_params, best_model_state, carry.curves["train_loss"],
                        carry.curves["val_loss"], carry.stop_state.best_value,
                        carry.stop_state.best_epoch, carry.epoch, carry.curves, carry.state,
                        carry.avg_state)
