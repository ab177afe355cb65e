"""Early stopping as a pure state machine (jit- and vmap-able) with the meaning of
``keras.callbacks.EarlyStopping``.

The rules are Keras 3's (``keras/src/callbacks/early_stopping.py`` and
``monitor_callback.py``,
https://github.com/keras-team/keras/blob/master/keras/src/callbacks/early_stopping.py),
transcribed one to one; ``tests/test_early_stopping.py`` runs the real Keras
callback on the same values and checks every field after every epoch.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jtricks._numeric import safe_increment, zero_count
from jtricks._validate import (
    check_choice,
    check_non_negative,
    check_number,
    concrete_value,
    show,
)


class EarlyStoppingState(NamedTuple):
    """The early-stopping state, a pytree.

    Attributes:
      epoch: int32, the number of values seen so far (the next value's 0-based
        epoch); it stops counting once ``stop`` is set.
      best_value: float32, the best monitored value so far (Keras' ``best``);
        ``+inf`` (``mode="min"``) or ``-inf`` (``"max"``) before the first
        monitored epoch. A NaN first value becomes the best, as in Keras.
      best_params: the parameters passed with the best value (Keras' restored
        ``best_weights``); before the first monitored epoch, the latest
        parameters passed (the ones given to ``init`` before any update).
      best_epoch: int32, the 0-based epoch of the best value; -1 before the first
        monitored epoch.
      wait: int32, Keras' ``wait``: monitored epochs since the last epoch that
        improved on the best value *and* the baseline (saturating).
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
    """A pair of pure functions ``init(params) -> state`` and ``update(value, state,
    params) -> state``, and the ``mode`` they were built with (``"min"`` or
    ``"max"``), which :func:`jtricks.train.fit` checks against the column it
    monitors.

    ``update`` takes the new value first, then the state, then the params: the
    argument order of a ``GradientTransformation``'s ``update(updates, state,
    params)``. Unlike one it returns only the new state (there are no updates).
    """

    init: Callable[[Any], EarlyStoppingState]
    update: Callable[[ArrayLike, EarlyStoppingState, Any], EarlyStoppingState]
    mode: str = "min"


def _check_epochs(name: str, value) -> None:
    """A count of epochs: ``>= 0`` and whole (``2.5`` is refused, not rounded); may be traced."""
    check_non_negative(name, value)
    concrete = concrete_value(value)
    if concrete is not None and concrete != round(float(concrete)):
        raise ValueError(f"{name}={show(value)} must be a whole number of epochs")


def early_stopping(
    patience: int | ArrayLike = 0,
    min_delta: float | ArrayLike = 0.0,
    mode: str = "min",
    baseline: float | ArrayLike | None = None,
    *,
    start_from_epoch: int | ArrayLike = 0,
) -> EarlyStopping:
    """Stops training when the monitored value has stopped improving (Keras' rules).

    Call ``update(value, state, params)`` once per epoch (epochs numbered 0, 1,
    ...) with the validation value and the parameters that produced it. Each
    epoch ``e >= start_from_epoch`` is *monitored*, exactly as
    ``keras.callbacks.EarlyStopping(monitor=..., min_delta, patience, mode,
    baseline, restore_best_weights=True, start_from_epoch)`` does at the end of
    epoch ``e``:

    1. ``wait += 1``.
    2. The value *improves* on a reference ``r`` when ``value + min_delta < r``
       (``mode="min"``) or ``value - min_delta > r`` (``"max"``); the first
       monitored value always improves (Keras starts with ``best = None``), and
       a NaN never improves on a number (nor anything on a NaN best).
    3. If it improves on the best value: it becomes the best (value, epoch and
       params), and ``wait`` is reset to 0 only if ``baseline`` is ``None`` or
       the value also improves on ``baseline``. Training never stops at an
       improving epoch.
    4. Otherwise, if ``wait >= patience`` (and ``e > 0``), ``stop`` is set; the
       state is then frozen and training should restore ``state.best_params``.

    So without a baseline (or when the best value beats it) training with
    ``patience=p`` stops at epoch ``best_epoch + p`` if no epoch in between
    improves (``p = 0``: at the first non-improving epoch); with a ``baseline``
    that is never beaten
    ``wait`` is never reset, so training stops at the first non-improving epoch
    from epoch ``start_from_epoch + p - 1`` on, and the best params are the best
    of those epochs (Keras: "if no epoch improves on baseline, training will run
    for ``patience`` epochs and restore weights from the best epoch in that
    set"). Epochs before ``start_from_epoch`` only count: ``best_params`` follows
    the params passed, nothing else changes.

    Everything is ``jnp.where``, so the machine works under ``jit`` and ``vmap``: a
    sweep of models stops each member at its own best epoch (keep stepping the
    batch; stopped members simply stop changing). ``patience``, ``min_delta``,
    ``baseline`` and ``start_from_epoch`` may be arrays or tracers. Values and
    comparisons are float32.

    Args:
      patience: monitored epochs without improvement before stopping (>= 0);
        Keras' default 0.
      min_delta: the smallest change that counts as an improvement (>= 0).
      mode: ``"min"`` (loss, error) or ``"max"`` (accuracy). Keras' ``"auto"``
        needs a metric name and is not offered.
      baseline: ``None`` or a value the monitored quantity must improve on to
        reset ``wait`` (not NaN).
      start_from_epoch: epochs to wait before monitoring starts (>= 0),
        keyword-only.

    Returns:
      An ``EarlyStopping`` with ``init(params) -> state`` and ``update(value,
      state, params) -> state``.

    Raises:
      ValueError: if ``mode`` is not "min" or "max", ``patience`` /
        ``min_delta`` / ``start_from_epoch`` are negative or NaN, or ``baseline``
        is NaN.
      TypeError: if a numeric argument is not a number.

    References:
      L. Prechelt, "Early Stopping — But When?", Neural Networks: Tricks of the
      Trade, https://doi.org/10.1007/3-540-49430-8_3, 1998.
      ``keras.callbacks.EarlyStopping``,
      https://keras.io/api/callbacks/early_stopping/.

    Example:
      >>> stopper = early_stopping(patience=2)
      >>> es = stopper.init({"w": jnp.zeros(())})
      >>> for epoch, val_loss in enumerate([0.9, 0.5, 0.6, 0.55, 0.4]):
      ...     es = stopper.update(val_loss, es, {"w": jnp.float32(epoch)})
      ...     if es.stop:
      ...         break
      >>> epoch, int(es.best_epoch), float(es.best_params["w"])
      (3, 1, 1.0)
    """
    check_choice("mode", mode, ("min", "max"))
    _check_epochs("patience", patience)
    check_non_negative("min_delta", min_delta)
    check_number("baseline", baseline, allow_none=True)
    _check_epochs("start_from_epoch", start_from_epoch)
    minimize = mode == "min"

    def improves(value: jax.Array, reference: jax.Array) -> jax.Array:
        # Keras: monitor_op(value - min_delta, reference) with min_delta negated for "min".
        delta = jnp.asarray(min_delta, jnp.float32)
        if minimize:
            return value + delta < reference
        return value - delta > reference

    def init(params: Any) -> EarlyStoppingState:
        return EarlyStoppingState(
            epoch=zero_count(),
            best_value=jnp.asarray(jnp.inf if minimize else -jnp.inf, jnp.float32),
            best_params=jax.tree.map(jnp.asarray, params),
            best_epoch=jnp.full((), -1, jnp.int32),
            wait=zero_count(),
            stop=jnp.zeros((), jnp.bool_),
        )

    def update(value: ArrayLike, state: EarlyStoppingState, params: Any) -> EarlyStoppingState:
        if isinstance(value, EarlyStoppingState):
            raise TypeError("early_stopping update(value, state, params) got an "
                            "EarlyStoppingState as value: the monitored value comes first, "
                            "then the state (the order of GradientTransformation.update)")
        value = jnp.asarray(value, jnp.float32)
        epoch = state.epoch
        active = ~state.stop
        monitored = active & (epoch >= start_from_epoch)
        no_best = state.best_epoch < 0
        improved = monitored & (no_best | improves(value, state.best_value))
        beats_baseline = (jnp.asarray(True) if baseline is None
                          else improves(value, jnp.asarray(baseline, jnp.float32)))
        wait = jnp.where(monitored, safe_increment(state.wait), state.wait)
        wait = jnp.where(improved & beats_baseline, 0, wait).astype(state.wait.dtype)
        stop = state.stop | (monitored & ~improved & (wait >= patience) & (epoch > 0))
        keep_params = improved | (active & no_best)
        best_params = jax.tree.map(
            lambda new, old: jnp.where(keep_params, jnp.asarray(new, old.dtype), old),
            params, state.best_params,
        )
        return EarlyStoppingState(
            epoch=jnp.where(active, safe_increment(epoch), epoch),
            best_value=jnp.where(improved, value, state.best_value),
            best_params=best_params,
            best_epoch=jnp.where(improved, epoch, state.best_epoch),
            wait=wait,
            stop=stop,
        )

    return EarlyStopping(init, update, mode)
