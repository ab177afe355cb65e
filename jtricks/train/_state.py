"""The training state and the one training step every loop builds on."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jtricks.optim import apply_updates

# loss_fn(params, model_state, batch, key) -> (loss, (new_model_state, metrics))
LossFn = Callable[[Any, Any, Any, jax.Array], tuple[jax.Array, tuple[Any, dict]]]

_INT32_MAX = jnp.iinfo(jnp.int32).max


class TrainState(NamedTuple):
    """Everything that changes during training, as one pytree.

    The optimizer itself (a ``GradientTransformation``) is not part of the
    state: it is a pair of functions that step builders close over, so the
    state stays a plain pytree that ``jit``, ``vmap``, ``pmap`` and checkpoints
    accept.

    Attributes:
      step: int32 scalar, the number of optimizer steps taken (saturates at
        ``2**31 - 1`` instead of overflowing).
      params: the model parameters.
      model_state: non-trained model state, e.g. batch-norm running statistics
        (``None`` or ``{}`` when the model has none).
      opt_state: the optimizer state, ``tx.init(params)``.
      key: a raw ``uint32[2]`` PRNG key, split once per step for dropout.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    key: jax.Array

    @classmethod
    def create(cls, *, params, tx, key, model_state=None) -> "TrainState":
        """Builds the initial state.

        Args:
          params: the initial parameters.
          tx: the gradient transformation; ``tx.init(params)`` gives ``opt_state``.
          key: a PRNG key (raw ``uint32[2]`` or an int seed).
          model_state: optional non-trained state (batch-norm statistics).

        Returns:
          A ``TrainState`` at step 0.
        """
        if isinstance(key, int):
            key = jax.random.PRNGKey(key)
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state={} if model_state is None else model_state,
            opt_state=tx.init(params),
            key=jnp.asarray(key),
        )


def train_step(
    state: TrainState,
    batch: Any,
    *,
    loss_fn: LossFn,
    tx,
    axis_name: str | None = None,
    per_device_keys: bool = True,
) -> tuple[TrainState, dict]:
    """One optimizer step: gradients of ``loss_fn``, ``tx.update``, apply.

    Args:
      state: the current ``TrainState``.
      batch: whatever ``loss_fn`` takes (e.g. ``(x, y)``).
      loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (new_model_state,
        metrics))`` with ``metrics`` a dict of scalars.
      tx: a gradient transformation.
      axis_name: inside ``pmap`` / ``shard_map``, the mapped axis: gradients,
        loss and metrics are averaged over it with ``lax.pmean``.
      per_device_keys: with ``axis_name``, whether every device folds its index
        into the step key, so that each draws its own dropout masks. ``False``
        gives all devices the same step key, for losses that derive one key per
        example from its global index (the result is then independent of the
        number of devices, see :mod:`jtricks.parallel`).

    Returns:
      ``(new_state, metrics)`` with ``metrics["loss"]`` set.
    """
    key, step_key = jax.random.split(state.key)
    if axis_name is not None and per_device_keys:
        step_key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (model_state, metrics)), grads = grad_fn(
        state.params, state.model_state, batch, step_key
    )
    metrics = dict(metrics, loss=loss)
    if axis_name is not None:
        grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = apply_updates(state.params, updates)
    step = jnp.where(state.step < _INT32_MAX, state.step + 1, state.step)
    new_state = TrainState(step, params, model_state, opt_state, key)
    return new_state, metrics
