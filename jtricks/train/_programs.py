"""The compiled programs :func:`jtricks.train.fit` runs every epoch (the epoch, its
batch order, the finiteness check, validation), and compiling them ahead: the epoch on
the calling thread while another thread compiles the small ones (and, for ``jtricks
train``, computes the initial state)."""

from __future__ import annotations

import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import jax
import numpy as np

from jtricks._numeric import all_finite
from jtricks._validate import check_non_negative
from jtricks._xla import LEVEL_1, RUN_ONCE

from ._engine import epoch_of_order, epoch_order
from ._metrics import learning_rate_of
from ._run import epoch_row
from ._state import as_key
from ._steps import _evaluator


@functools.lru_cache(maxsize=16)
def _compiled_epoch(loss_fn, tx, batch_size, averager, learning_rate):
    """One jitted epoch (with its history row) per (loss, optimizer, batch size,
    averager, learning rate): a second ``fit`` with the same pieces (e.g. a resumed
    run) does not compile again.

    It takes the epoch's batch indices (:func:`_order_program`, or ``None`` when
    the data hold the epoch's batches already cut, across processes), so no epoch
    compiles anything of its own. The per-step metrics include ``learning_rate``
    when it can be resolved (:func:`learning_rate_of`); the row's
    ``learning_rate`` is the last step's. Whether the parameters are still finite
    is asked by :data:`_finite`: inside this program, that reduction made it
    compile about 20% longer."""

    def record(state):
        rate = learning_rate_of(state.opt_state, learning_rate, state.step - 1)
        return {} if rate is None else {"learning_rate": rate}

    epoch_fn = epoch_of_order(loss_fn=loss_fn, tx=tx, averager=averager, record=record)

    def epoch_and_row(state, data, order, avg_state):
        state, avg_state, metrics = epoch_fn(state, data, order, avg_state)
        row = epoch_row({k: v for k, v in metrics.items() if k != "learning_rate"})
        if "learning_rate" in metrics:
            row["learning_rate"] = metrics["learning_rate"][-1]
        return state, avg_state, metrics, row

    # XLA's backend level 1 (LEVEL_1's options): 15% less compilation, epochs as fast
    # and the same numbers bit for bit as at the default level (jtricks/_xla.py).
    return jax.jit(epoch_and_row, compiler_options=LEVEL_1)


@functools.lru_cache(maxsize=16)
def _order_program(n: int, batch_size: int):
    """Epoch ``e``'s batch indices, :func:`epoch_order` of ``fold_in(data_key, e)``,
    as one small program (integers only: the same at any optimisation level),
    compiled with ``RUN_ONCE``'s options."""
    def order(data_key, epoch):
        return epoch_order(jax.random.fold_in(data_key, epoch), n, batch_size)

    return jax.jit(order, compiler_options=RUN_ONCE)


# LEVEL_1, not RUN_ONCE: without the fusion emitters, a check over many leaves compiles
# far longer (1024 leaves: 46 CPU-s against 8; 8 leaves: 0.33 against 0.17).
_finite = jax.jit(all_finite, compiler_options=LEVEL_1)


def compile_programs(state, train_data, *, loss_fn, tx, batch_size: int, data_key: Any = 0,
                     val_data: Any = None, eval_fn: Callable | None = None,
                     eval_batch_size: int = 1024, averager: Any = None,
                     learning_rate: Any = None) -> dict:
    """The programs :func:`fit` runs every epoch, each with the arguments of its first
    call, to compile ahead (``fn.lower(*args).compile()``): ``{"epoch", "order",
    "finite", "evaluate"}`` (no ``"evaluate"`` without ``val_data``), each a pair
    ``(jitted function, args)``.

    ``state``, ``data_key`` and the data may be shapes (``jax.eval_shape``'s), so
    they can compile while the state is computed: ``jtricks train`` compiles the
    epoch while :func:`jtricks.train.init_state` runs on another thread. Given the
    same arguments (of one process, not sharded), ``fit`` then compiles nothing
    before its first epoch. ``fit`` itself compiles the small ones beside the epoch.
    """
    def spec(tree):
        return jax.eval_shape(lambda t: jax.tree.map(jax.numpy.asarray, t), tree)

    train = spec(train_data)
    key = data_key if isinstance(data_key, jax.ShapeDtypeStruct) else spec(as_key(data_key))
    n = jax.tree.leaves(train)[0].shape[0]
    order_fn = _order_program(n, batch_size)
    order = jax.eval_shape(order_fn, key, np.uint32(1))
    epoch_fn = _compiled_epoch(loss_fn, tx, batch_size, averager,
                               _rate_for_history(learning_rate))
    avg = jax.eval_shape(averager.init, state.params) if averager is not None else None
    programs = {"epoch": (epoch_fn, (state, train, order, avg)),
                "order": (order_fn, (key, np.uint32(1))),
                "finite": (_finite, (state.params,))}
    if val_data is not None and eval_fn is not None:
        with contextlib.suppress(TypeError):  # an unhashable eval_fn: compiled where called
            programs["evaluate"] = (_evaluator(eval_fn, eval_batch_size),
                                    (state.params, state.model_state, spec(val_data)))
    return programs


def _rate_for_history(learning_rate):
    """``fit(learning_rate=)`` as the epoch program is keyed by: a number as a float."""
    if learning_rate is not None and not callable(learning_rate):
        check_non_negative("learning_rate", learning_rate)
        return float(learning_rate)
    return learning_rate


def compile_now(calls) -> None:
    """Compiles ``calls`` (``[(jitted function, args)]``, e.g. :func:`compile_programs`'
    values) one after another; a later call with arguments of the same shapes runs
    what was compiled. A program that fails to compile here is left alone: it fails
    again, with its own error, where it is called."""
    for fn, args in calls:
        try:
            fn.lower(*args).compile()
        except Exception:  # noqa: BLE001 - reported by the real call
            pass


def compile_while(background: Callable[[], Any], calls) -> Any:
    """Compiles ``calls`` (as :func:`compile_now`) on this thread while a background
    thread runs ``background()``; returns ``background()``'s result.

    Only part of a compilation runs in parallel (the digits MLP's epoch: 0.5 CPU-s of
    tracing and lowering on the calling thread, 0.6 on one compile thread, then
    LLVM's code generation on two threads, 1.4 each), so other work fills the cores
    the serial parts leave idle.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jtricks-compile") as pool:
        pending = pool.submit(background)
        compile_now(calls)
        return pending.result()


def compile_beside(programs: dict, *, first: Callable[[], Any] | None = None,
                   more: Any = ()) -> Any:
    """Compiles ``programs["epoch"]`` (:func:`compile_programs`) on this thread while a
    background thread runs ``first()`` (when given), then compiles the other programs
    and ``more`` (``[(jitted function, args)]``); returns ``first()``'s result
    (:func:`compile_while`: the small programs fill the cores the epoch leaves idle).
    """
    small = [programs[name] for name in ("order", "finite", "evaluate") if name in programs]
    small += list(more)

    def background():
        out = None if first is None else first()
        compile_now(small)
        return out

    return compile_while(background, [programs["epoch"]])

