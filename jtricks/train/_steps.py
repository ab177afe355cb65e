"""What the engine is given: a classifier's loss and evaluation, and evaluation itself.

* :func:`classifier_loss` turns a model (``init`` / ``apply``) into the
  ``loss_fn(params, model_state, batch, key)`` that every part of the engine
  (:mod:`jtricks.train._engine`) takes;
* :func:`classifier_eval` gives its per-example evaluation metrics, and
  :func:`evaluate` averages any such metrics over a dataset in fixed-size
  batches; :func:`predict` gives the outputs.

All of them are pure and may be called under ``jit`` and ``vmap`` (a sweep over
learning rates or dropout rates trains every configuration in one program).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jtricks._validate import check_callable, check_int, check_number, show
from jtricks.data._batching import _num_examples
from jtricks.losses import cross_entropy


def check_tx(tx) -> None:
    """Refuses a ``tx`` that is not a gradient transformation (``init`` and ``update``)."""
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"tx={show(tx)} must be a gradient transformation with init and "
                        f"update, got {type(tx).__name__}")


def _describe(tree, limit: int = 160) -> str:
    text = str(jax.tree.structure(tree)).removeprefix("PyTreeDef(").removesuffix(")")
    return text if len(text) <= limit else text[:limit] + "..."


def check_opt_state(tx, state) -> None:
    """Refuses a ``state`` whose ``opt_state`` was not made by ``tx.init(state.params)``.

    Compares the structure, shapes and dtypes of ``jax.eval_shape(tx.init,
    state.params)`` with ``state.opt_state`` (nothing is computed). Two
    optimizers with identical states (e.g. ``sgd`` with two learning rates)
    cannot be told apart.

    Raises:
      TypeError: naming both structures.
    """
    check_tx(tx)
    expected = jax.eval_shape(tx.init, state.params)
    got = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)),
                       state.opt_state)
    tree_expected: Any = jax.tree.structure(expected)
    same = tree_expected == jax.tree.structure(got) and all(
        (e.shape, e.dtype) == (g.shape, g.dtype)
        for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)))
    if not same:
        raise TypeError(
            f"tx did not make state.opt_state: tx.init(params) gives {_describe(expected)} "
            f"but state.opt_state is {_describe(state.opt_state)}; build the state with "
            "TrainState.create(params=..., tx=tx, ...) using the same tx")


def _per_example_cross_entropy(logits, labels):
    """Per-example softmax cross-entropy in float32 (for evaluation)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def classifier_loss(model, *, class_weights=None, augment: Callable | None = None):
    """Builds the training loss of a classifier: mean (class-weighted) cross-entropy.

    Args:
      model: a ``jtricks.nn.Model`` (``init`` / ``apply``) or anything with an
        ``apply(params, state, x, *, training, key)`` returning ``(logits, new_state)``.
      class_weights: optional ``(num_classes,)`` weights; the loss is
        ``sum_i w[y_i] l_i / sum_i w[y_i]``, so rare classes can count more.
      augment: optional ``augment(key, x) -> x`` applied to the batch of inputs
        during training, e.g. ``jax.vmap(one)(jtricks.nn.example_keys(key,
        len(x)), x)`` with ``one(key, image)`` a ``jtricks.data.random_shift``:
        per-example keys from the global index keep it independent of the
        device count, as dropout is.

    Returns:
      ``loss_fn(params, model_state, (x, y), key) -> (loss, (new_model_state,
      {"accuracy": ...}))``, the form :func:`jtricks.train.train_step` takes.

    Example:
      >>> loss_fn = classifier_loss(jtricks.nn.mlp([128, 10]))
    """
    _check_model(model)
    check_number("class_weights", class_weights, lo=0, scalar=False, allow_none=True)
    check_callable("augment", augment, allow_none=True)

    def loss_fn(params, model_state, batch, key):
        x, y = batch
        aug_key, model_key = jax.random.split(key)
        if augment is not None:
            x = augment(aug_key, x)
        logits, new_state = model.apply(params, model_state, x, training=True, key=model_key)
        loss = cross_entropy(logits, y, class_weights=class_weights)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
        return loss, (new_state, {"accuracy": accuracy})

    return loss_fn


def classifier_eval(model):
    """Builds the evaluation function of a classifier (no dropout, running statistics).

    Returns:
      ``eval_fn(params, model_state, (x, y)) -> {"loss": (b,), "accuracy": (b,)}``
      with per-example values; :func:`evaluate` averages them.
    """

    def eval_fn(params, model_state, batch):
        x, y = batch
        logits, _ = model.apply(params, model_state, x, training=False)
        losses = _per_example_cross_entropy(logits, y)
        return {"loss": losses, "accuracy": (jnp.argmax(logits, -1) == y).astype(jnp.float32)}

    return eval_fn


def _check_model(model) -> None:
    if not callable(getattr(model, "apply", None)):
        raise TypeError(f"model={show(model)} must be a model with an apply method "
                        f"(e.g. jtricks.nn.mlp(...)), got {type(model).__name__}")


def predict(model, params, model_state, x, *, batch_size: int = 1024) -> jax.Array:
    """The model's outputs on ``x`` in evaluation mode, computed in batches."""
    _check_model(model)
    return _batched(lambda xb: model.apply(params, model_state, xb, training=False)[0],
                    x, batch_size, "x")


def _batched(fn, data, batch_size, name: str = "data"):
    """``fn`` over ``data`` in batches of ``batch_size`` (last batch padded), concatenated."""
    batch_size = check_int("batch_size", batch_size, lo=1)
    n = _num_examples(data, name, allow_empty=False)
    data = jax.tree.map(jnp.asarray, data)
    batch_size = min(batch_size, n)
    num = -(-n // batch_size)
    pad = num * batch_size - n
    padded = jax.tree.map(
        lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) if pad else a, data
    )
    batches = jax.tree.map(lambda a: a.reshape(num, batch_size, *a.shape[1:]), padded)
    out = jax.lax.map(fn, batches)
    return jax.tree.map(lambda a: a.reshape(num * batch_size, *a.shape[2:])[:n], out)


def evaluate(eval_fn, params, model_state, data, *, batch_size: int = 1024) -> dict:
    """Mean of ``eval_fn``'s per-example metrics over the whole of ``data``.

    One compiled program per ``(eval_fn, batch_size)`` and data shape: called
    eagerly (after every epoch of :func:`jtricks.train.fit`, on the test set at
    the end) it reuses that program instead of running (and compiling) its
    operations one by one; inside a traced function it is inlined.

    Args:
      eval_fn: ``eval_fn(params, model_state, batch) -> dict`` of per-example arrays.
      params, model_state: the model's.
      data: a pytree of arrays with the examples on the leading axis, e.g. ``(x, y)``.
      batch_size: how many examples are evaluated at once (memory bound only).

    Returns:
      A dict of scalar means.
    """
    check_callable("eval_fn", eval_fn)
    batch_size = check_int("batch_size", batch_size, lo=1)
    _num_examples(data, "data", allow_empty=False)
    try:
        program = _evaluator(eval_fn, batch_size)
    except TypeError:  # an unhashable callable: compiled for this call only
        program = jax.jit(functools.partial(_evaluate, eval_fn, batch_size=batch_size))
    return program(params, model_state, data)


def _evaluate(eval_fn, params, model_state, data, *, batch_size: int) -> dict:
    per_example = _batched(lambda b: eval_fn(params, model_state, b), data, batch_size)
    return jax.tree.map(lambda a: jnp.mean(a.astype(jnp.float32)), per_example)


@functools.lru_cache(maxsize=32)
def _evaluator(eval_fn, batch_size: int):
    """The jitted :func:`evaluate` of ``eval_fn`` (cached: one per function and batch size)."""
    return jax.jit(functools.partial(_evaluate, eval_fn, batch_size=batch_size))
