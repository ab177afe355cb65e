"""Early stopping as a pure state machine (jit- and vmap-able)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jtricks._validate import check_choice, check_non_negative

_INT32_MAX = jnp.iinfo(jnp.int32).max


class EarlyStoppingState(NamedTuple):
    """The early-stopping state, a pytree.

    Attributes:
      epoch: int32, the number of values seen so far (the next value's epoch).
      best_value: the best monitored value so far (float32; +inf / -inf initially).
      best_params: the parameters passed with the best value (the initial ones
        until the first improvement).
      best_epoch: int32, the 0-based epoch of the best value (-1 before any).
      wait: int32, epochs since the last improvement.
      stop: bool, whether training should stop; once set it stays set and the
        state no longer changes.
    """

    epoch: jax.Array
    best_value: jax.Array
    best_params: Any
    best_epoch: jax.Array
    wait: jax.Array
    stop: jax.Array


class EarlyStopping(NamedTuple):
    """A pair of pure functions, like a ``GradientTransformation``."""

    init: Callable[[Any], EarlyStoppingState]
    update: Callable[[ArrayLike, EarlyStoppingState, Any], EarlyStoppingState]
    mode: str = "min"


def _inc(counter: jax.Array) -> jax.Array:
    return jnp.where(counter < _INT32_MAX, counter + 1, counter)


def early_stopping(patience: int | ArrayLike, min_delta: float | ArrayLike = 0.0,
                   mode: str = "min") -> EarlyStopping:
    """Stops training when the validation metric has not improved for ``patience`` epochs.

    Call ``update`` once per epoch with the validation value (epochs numbered 0, 1,
    ...). A value improves when it is better than the best so far by more than
    ``min_delta`` (``value < best - min_delta`` for ``mode="min"``, ``value > best +
    min_delta`` for ``"max"``); NaN never improves. The state remembers the best
    value, its parameters and its epoch. ``stop`` becomes True at the update of
    epoch ``best_epoch + patience``, i.e. after ``patience`` epochs in a row without
    improvement (``patience=0``: at the first epoch that does not improve); after
    that the state is frozen. Training then restores ``state.best_params``.

    Everything is ``jnp.where``, so the machine works under ``jit`` and ``vmap``: a
    sweep of models stops each member at its own best epoch (keep stepping the
    batch; stopped members simply stop changing). ``patience`` and ``min_delta``
    may be arrays or tracers.

    Args:
      patience: epochs without improvement before stopping (>= 0).
      min_delta: the smallest change that counts as an improvement (>= 0).
      mode: ``"min"`` (loss, error) or ``"max"`` (accuracy).

    Returns:
      An ``EarlyStopping`` with ``init(params) -> state`` and ``update(state, value,
      params) -> state``.

    Raises:
      ValueError: if ``mode`` is not "min" or "max", or ``patience`` / ``min_delta``
        are negative.

    References:
      L. Prechelt, "Early Stopping — But When?", Neural Networks: Tricks of the
      Trade, https://doi.org/10.1007/3-540-49430-8_3, 1998.

    Example:
      >>> stopper = early_stopping(patience=5)
      >>> es = stopper.init(state.params)
      >>> for epoch in range(100):
      ...     state = train_one_epoch(state)
      ...     es = stopper.update(es, validation_loss(state.params), state.params)
      ...     if es.stop:
      ...         break
      >>> params = es.best_params
    """
    check_choice("mode", mode, ("min", "max"))
    check_non_negative("patience", patience)
    check_non_negative("min_delta", min_delta)
    sign = 1.0 if mode == "min" else -1.0

    def init(params: Any) -> EarlyStoppingState:
        return EarlyStoppingState(
            epoch=jnp.zeros((), jnp.int32),
            best_value=jnp.asarray(sign * jnp.inf, jnp.float32),
            best_params=jax.tree.map(jnp.asarray, params),
            best_epoch=jnp.full((), -1, jnp.int32),
            wait=jnp.zeros((), jnp.int32),
            stop=jnp.zeros((), jnp.bool_),
        )

    def update(value: ArrayLike, state: EarlyStoppingState, params: Any) -> EarlyStoppingState:
        value = jnp.asarray(value, jnp.float32)
        active = ~state.stop
        better = sign * value < sign * state.best_value - min_delta
        improved = active & better
        wait = jnp.where(improved, 0, jnp.where(active, _inc(state.wait), state.wait))
        stop = state.stop | (active & ~improved & (wait >= patience))
        best_params = jax.tree.map(
            lambda new, old: jnp.where(improved, jnp.asarray(new, old.dtype), old),
            params, state.best_params,
        )
        return EarlyStoppingState(
            epoch=jnp.where(active, _inc(state.epoch), state.epoch),
            best_value=jnp.where(improved, value, state.best_value),
            best_params=best_params,
            best_epoch=jnp.where(improved, state.epoch, state.best_epoch),
            wait=wait,
            stop=stop,
        )

    return EarlyStopping(init, update, mode)
