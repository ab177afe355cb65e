"""The one training engine: the step, the epoch and a compiled run of epochs (the
run, :func:`make_run`, lives in :mod:`jtricks.train._run`).

Every way jtricks trains calls these three functions, and nothing else
contains a training loop:

* :func:`train_step` — one optimizer step: gradients of the loss, ``tx.update``
  (given ``value=loss``, so plateau schedules work), apply.
* :func:`make_epoch` — one epoch as a pure function: ``lax.scan`` of
  ``train_step`` over the shuffled mini-batches.
* :func:`make_run` — many epochs as one traced program: ``lax.while_loop`` over
  epochs, validation after each, early stopping, per-epoch curves.

:func:`init_state` builds the first state (seed, split, ``model.init``,
``tx.init``) as one compiled program.

Parameters stay a tree: the loss always sees the tree, and ``fit`` / ``jtricks
train`` never ravel them. A flat layout (:func:`jtricks.optim.ravel`) only
pays where the optimizer dominates the step (many small leaves, a cheap
model); in a real training step the model's ``unravel`` slices and the
backward ``concatenate`` make the step slower to compile (about 3x at 258
leaves, issue 16). Deep models get few leaves another way:
:func:`jtricks.nn.stack` keeps ``depth`` identical blocks as one stacked leaf
per parameter and applies them with ``lax.scan``.

Their clients: :func:`jtricks.train.fit` (a Python loop over the jitted epoch,
with progress, history and checkpoints), :func:`jtricks.sweep.train` (the run
under ``jax.vmap`` over hyperparameters), :mod:`jtricks.parallel` (the step
under ``pmap`` / ``shard_map`` / ``jit`` + sharding), the demo and the CLI.

One loss signature everywhere::

    loss_fn(params, model_state, batch, key) -> (loss, (new_model_state, metrics))

and one evaluation signature (per-example metrics, averaged by
:func:`jtricks.train.evaluate`)::

    eval_fn(params, model_state, batch) -> {name: (batch,) array}
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._xla import RUN_ONCE
from jtricks._numeric import global_norm, safe_increment
from jtricks._validate import check_callable, check_int, check_shape, show
from jtricks.data._batching import _num_examples
from jtricks.nn import data_parallel
from jtricks.optim import apply_updates
from jtricks.optim._base import call_update

from ._state import TrainState, as_key
from ._steps import check_tx

# loss_fn(params, model_state, batch, key) -> (loss, (new_model_state, metrics))
LossFn = Callable[[Any, Any, Any, jax.Array], tuple[jax.Array, tuple[Any, dict]]]


def _accumulate(grad_fn, params, model_state, batch, step_key, k):
    """Mean loss, metrics and gradients over ``k`` strided micro-batches, one at a time.

    Micro-batch ``j`` holds the examples ``j, j + k, j + 2k, ...`` of the
    (local) batch and draws from ``fold_in(step_key, j)``; the model state
    threads through them. Strided, micro-batch ``j`` of a per-device step is
    the same set of global examples, in the same order, as on one device, so
    the step does not depend on the device count. The sums stay local: a
    per-device step averages them over the devices once, after the loop.
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    if size % k:
        raise ValueError(f"micro_batches={k} does not divide the batch of {size} examples")
    micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape(size // k, k, *x.shape[1:]), 0, 1),
                         batch)

    def body(carry, xs):
        model_state, total = carry
        j, part = xs
        (loss, (model_state, metrics)), grads = grad_fn(params, model_state, part,
                                                        jax.random.fold_in(step_key, j))
        total = jax.tree.map(jnp.add, total, (loss, metrics, grads))
        return (model_state, total), None

    (loss, (_, metrics)), _ = jax.eval_shape(grad_fn, params, model_state,
                                             jax.tree.map(lambda x: x[0], micro), step_key)
    # jnp.zeros_like keeps the parameters' layout (a model-sharded gradient sum).
    zeros = (jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (loss, metrics)),
             jax.tree.map(jnp.zeros_like, params))
    zeros = (*zeros[0], zeros[1])
    (model_state, total), _ = jax.lax.scan(body, (model_state, zeros),
                                           (jnp.arange(k, dtype=jnp.uint32), micro))
    loss, metrics, grads = jax.tree.map(lambda t: t / k, total)
    return loss, model_state, metrics, grads


def train_step(state: TrainState, batch: Any, *, loss_fn: LossFn, tx,
               axis_name: str | None = None, micro_batches: int = 1) -> tuple[TrainState, dict]:
    """One optimizer step: gradients of ``loss_fn``, ``tx.update``, apply.

    The optimizer receives the step's loss as ``value=`` (optax's extra-argument
    protocol), so ``jtricks.optim.reduce_on_plateau`` and
    ``optax.contrib.reduce_on_plateau`` work inside any loop built on this step.

    Args:
      state: the current :class:`TrainState`.
      batch: whatever ``loss_fn`` takes (e.g. ``(x, y)``).
      loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss,
        (new_model_state, metrics))`` with ``metrics`` a dict of scalars.
      tx: a gradient transformation (jtricks or optax).
      axis_name: inside ``pmap`` / ``shard_map``, the data axis the batch is
        split over: gradients, loss and metrics are averaged over it with
        ``lax.pmean``, and the loss is traced inside
        :func:`jtricks.nn.data_parallel` over it, so a loss written as on one
        device (e.g. :func:`classifier_loss`) gets the global batch's
        statistics from batch norm and draws example ``i``'s dropout masks
        from ``fold_in(step_key, global index of i)``: every device gets the
        same step key, and the result does not depend on the device count.
      micro_batches: split the batch into this many strided micro-batches
        (``j, j + k, ...``; micro-batch ``j`` draws from ``fold_in(step_key,
        j)``) run one after the other, and step once on the mean of their
        gradients: the memory of one micro-batch, the update of the whole
        batch. With ``axis_name`` the sums stay on each device and are
        averaged over the devices once per step, not once per micro-batch.

    Returns:
      ``(new_state, metrics)``; ``metrics`` holds the loss function's metrics,
      ``loss`` and ``grad_norm`` (the global norm of the gradient before ``tx``).

    Example:
      >>> from jtricks.train import TrainState, classifier_eval, classifier_loss
      >>> model = jtricks.nn.mlp([8, 3])
      >>> params, model_state = model.init(jax.random.key(0), (4,))
      >>> tx = jtricks.optim.sgd(0.1)
      >>> state = TrainState.create(params=params, tx=tx, key=jax.random.key(1),
      ...                           model_state=model_state)
      >>> batch = (jnp.ones((5, 4)), jnp.array([0, 1, 2, 0, 1]))
      >>> state, metrics = train_step(state, batch, loss_fn=classifier_loss(model), tx=tx)
      >>> int(state.step), sorted(metrics)
      (1, ['accuracy', 'grad_norm', 'loss'])
    """
    micro_batches = check_int("micro_batches", micro_batches, lo=1)
    key, step_key = jax.random.split(state.key)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    with data_parallel(axis_name) if axis_name is not None else contextlib.nullcontext():
        if micro_batches == 1:
            (loss, (model_state, metrics)), grads = grad_fn(state.params, state.model_state,
                                                            batch, step_key)
        else:
            loss, model_state, metrics, grads = _accumulate(
                grad_fn, state.params, state.model_state, batch, step_key, micro_batches)
    metrics = dict(metrics, loss=loss)
    if axis_name is not None:  # once per optimizer step, whatever micro_batches is
        grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    metrics["grad_norm"] = global_norm(grads)
    updates, opt_state = call_update(tx, grads, state.opt_state, state.params,
                                     {"value": metrics["loss"]})
    params = apply_updates(state.params, updates)
    return TrainState(safe_increment(state.step), params, model_state, opt_state, key), metrics


def epoch_order(key, n: int, batch_size: int):
    """The example indices of one epoch's batches, ``(n // bs, bs)`` with ``bs =
    min(batch_size, n)``: the first ``n // bs * bs`` entries of
    ``jax.random.permutation(key, n)``, row ``s`` feeding step ``s``.

    Example:
      >>> epoch_order(jax.random.key(0), 10, 4).shape
      (2, 4)
    """
    bs = min(batch_size, n)
    steps = n // bs
    return jax.random.permutation(key, n)[: steps * bs].reshape(steps, bs)


def init_state(model, tx, key: Any, input_shape) -> tuple[TrainState, jax.Array]:
    """The initial :class:`TrainState` of ``model`` and ``tx``, and the data key: one program.

    ``key`` is split in three, ``init_key, train_key, data_key`` (the
    convention of ``jtricks train`` and :func:`jtricks.sweep.train`):
    ``model.init(init_key, input_shape)`` gives the parameters and model state,
    ``train_key`` becomes ``state.key`` (dropout), ``data_key`` orders the
    data (``fit(data_key=...)``). Seeding, splitting, initialising every layer
    and ``tx.init`` run as one compiled program (cached per model, optimizer
    and input shape) instead of a dozen small ones compiled op by op. The
    parameters are those of ``model.init`` under ``jit`` (as in a sweep); run
    eagerly, a layer's ``normal * scale`` is not fused and may differ in the
    last bit.

    Args:
      model: a :class:`jtricks.nn.Model` (anything with ``init(key, input_shape)``).
      tx: a gradient transformation (jtricks or optax).
      key: a PRNG key (raw or typed) or an int seed (a raw key, as
        ``jax.random.PRNGKey(seed)``).
      input_shape: the shape of one example (no batch axis).

    Returns:
      ``(state, data_key)``.

    Example:
      >>> model = jtricks.nn.mlp([8, 3])
      >>> state, data_key = init_state(model, jtricks.optim.adam(1e-2), 0, (4,))
      >>> init_key, train_key, _ = jax.random.split(jax.random.PRNGKey(0), 3)
      >>> params, _ = jax.jit(model.init, static_argnums=1)(init_key, (4,))
      >>> bool((state.params["dense_0"]["kernel"] == params["dense_0"]["kernel"]).all())
      True
      >>> bool((state.key == train_key).all()), int(state.step)
      (True, 0)
    """
    program, key = _init_call(model, tx, key, input_shape)
    return program(key)


def init_shapes(model, tx, key: Any, input_shape) -> tuple[TrainState, jax.ShapeDtypeStruct]:
    """What :func:`init_state` returns, as shapes (``jax.eval_shape``): nothing is
    computed or compiled, so ``fit``'s programs can compile from them while
    ``init_state`` runs (:func:`jtricks.train._programs.compile_programs`).

    Example:
      >>> state, data_key = init_shapes(jtricks.nn.mlp([8, 3]), jtricks.optim.adam(1e-2), 0,
      ...                               (4,))
      >>> state.params["dense_0"]["kernel"].shape, data_key.shape
      ((4, 8), (2,))
    """
    program, key = _init_call(model, tx, key, input_shape)
    return jax.eval_shape(program, key)


def _init_call(model, tx, key, input_shape):
    """:func:`init_state`'s program and its argument, the arguments checked."""
    check_tx(tx)
    if not callable(getattr(model, "init", None)):
        raise TypeError(f"model={show(model)} must have an init(key, input_shape) method "
                        f"(e.g. jtricks.nn.mlp(...)), got {type(model).__name__}")
    shape = check_shape("input_shape", input_shape)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < 2**31:
        key = np.int32(key)  # seeded inside the program: PRNGKey(seed) compiles nothing
    else:
        key = as_key(key)
    try:
        program = _init_program(model, tx, shape)
    except TypeError:  # an unhashable model or optimizer: compiled for this call only
        program = jax.jit(functools.partial(_init, model, tx, shape), compiler_options=RUN_ONCE)
    return program, key


def _init(model, tx, shape, key):
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0:
        key = jax.random.PRNGKey(key)
    init_key, train_key, data_key = jax.random.split(key, 3)
    params, model_state = model.init(init_key, shape)
    return TrainState.create(params=params, tx=tx, key=train_key,
                             model_state=model_state), data_key


@functools.lru_cache(maxsize=16)
def _init_program(model, tx, shape):
    # Runs once per run: compiled with RUN_ONCE's options (seconds less, same numbers).
    return jax.jit(functools.partial(_init, model, tx, shape), compiler_options=RUN_ONCE)


def make_epoch(*, loss_fn: LossFn, tx, batch_size: int, averager=None,
               axis_name: str | None = None, record: Callable | None = None):
    """Builds one epoch of training as a pure function of the state.

    The data are shuffled with ``key`` (derive it from the seed and the
    1-based epoch number, ``jax.random.fold_in(data_key, epoch)``, as
    :func:`jtricks.train.fit` does: a resumed run then sees exactly the same
    batches), cut into ``n // batch_size`` full batches (the remainder is left
    out of this epoch; another order picks other examples) and fed to
    :func:`train_step` by ``lax.scan``.

    Args:
      loss_fn: ``loss_fn(params, model_state, batch, key)``.
      tx: a gradient transformation (jtricks or optax).
      batch_size: examples per step (a Python int); a dataset smaller than it
        is one batch.
      averager: optional parameter averaging (``jtricks.train.ema(decay)`` /
        ``swa()``), updated after every step.
      axis_name: passed to :func:`train_step` for per-device code.
      record: optional ``record(state) -> {name: scalar}``, extra per-step
        metrics computed from the state after each step (``fit`` records the
        learning rate with it).

    Returns:
      ``epoch(state, data, key, avg_state=None) -> (state, avg_state, metrics)``
      (``key=None``: ``data`` holds the epoch's batches already cut, every leaf
      of shape ``(steps, batch_size, ...)``, e.g. gathered with
      :func:`epoch_order` by each process, see :func:`jtricks.train.fit`),
      where ``metrics`` holds one value per step (``loss``, ``grad_norm``, the
      loss function's own metrics and ``record``'s).

    Example:
      >>> from jtricks.train import TrainState, classifier_eval, classifier_loss
      >>> model = jtricks.nn.mlp([8, 3])
      >>> params, model_state = model.init(jax.random.key(0), (4,))
      >>> tx = jtricks.optim.adam(1e-2)
      >>> state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
      >>> epoch = jax.jit(make_epoch(loss_fn=classifier_loss(model), tx=tx, batch_size=4))
      >>> x, y = jnp.ones((10, 4)), jnp.zeros(10, jnp.int32)
      >>> state, _, metrics = epoch(state, (x, y), jax.random.fold_in(jax.random.key(2), 1))
      >>> int(state.step), metrics["loss"].shape
      (2, (2,))
    """
    batch_size = check_int("batch_size", batch_size, lo=1)
    check_callable("loss_fn", loss_fn)
    check_tx(tx)
    run = epoch_of_order(loss_fn=loss_fn, tx=tx, averager=averager, axis_name=axis_name,
                         record=record)

    def epoch(state: TrainState, data: Any, key, avg_state=None):
        data = jax.tree.map(jnp.asarray, data)
        order = None if key is None else epoch_order(
            key, _num_examples(data, "train_data", allow_empty=False), batch_size)
        return run(state, data, order, avg_state)

    return epoch


def epoch_of_order(*, loss_fn: LossFn, tx, averager=None, axis_name: str | None = None,
                   record: Callable | None = None):
    """:func:`make_epoch`'s epoch given its batches' indices instead of a key.

    Returns ``epoch(state, data, order, avg_state=None) -> (state, avg_state,
    metrics)``: step ``s`` trains on the rows ``order[s]`` of ``data`` (``order``
    of shape ``(steps, batch)``, e.g. :func:`epoch_order`), or, with ``order``
    ``None``, on ``data``'s ``s``-th batch (already cut). :func:`jtricks.train.fit`
    computes the order in a small program of its own, which compiles beside the
    epoch instead of inside it.
    """
    def epoch(state: TrainState, data: Any, order, avg_state=None):
        data = jax.tree.map(jnp.asarray, data)

        def pick(xs):  # a step's batch: cut already, or the rows of data at xs
            return xs if order is None else jax.tree.map(lambda a: a[xs], data)

        def body(carry, xs):
            state, avg_state = carry
            batch = pick(xs)
            state, metrics = train_step(state, batch, loss_fn=loss_fn, tx=tx,
                                        axis_name=axis_name)
            if averager is not None:
                avg_state = averager.update(state.params, avg_state)
            if record is not None:
                metrics = {**metrics, **record(state)}
            return (state, avg_state), metrics

        (state, avg_state), metrics = jax.lax.scan(
            body, (state, avg_state), data if order is None else order)
        return state, avg_state, metrics

    return epoch
