"""Model averaging: exponential moving average (EMA), stochastic weight averaging
(SWA) of parameters, and ensemble prediction of independently trained models."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jtricks._numeric import safe_increment, upcast, zero_count
from jtricks._validate import check_callable, check_int, check_unit_interval


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _average_leaf(p: Any) -> jax.Array:
    """A leaf of the average: floating leaves in at least float32 (bf16 / f16 params
    lose too much), other leaves (integer counters, flags) as they are."""
    return upcast(p) if _is_float(p) else jnp.asarray(p)


class AveragingState(NamedTuple):
    """State of ``ema`` / ``swa``.

    Attributes:
      count: int32, the number of ``update`` calls (saturates at ``2**31 - 1``).
      average: the averaged parameters, same structure as the params, floating
        leaves in at least float32 (cast back with ``params_like``).
    """

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count
    average: Any


class Averaging(NamedTuple):
    """A pair of pure functions ``init(params) -> state`` and ``update(params, state)
    -> state``.

    ``update`` takes the new value first and the state second, in the argument
    order of a ``GradientTransformation``'s ``update(updates, state, params)``;
    unlike one it returns only the new state (there are no updates to return).
    """

    init: Callable[[Any], AveragingState]
    update: Callable[[Any, AveragingState], AveragingState]


def _check_order(params: Any) -> None:
    if isinstance(params, AveragingState):
        raise TypeError("averaging update(params, state) got an AveragingState as params: "
                        "the params come first, then the state (the order of "
                        "GradientTransformation.update)")


def _init(params: Any) -> AveragingState:
    return AveragingState(zero_count(), jax.tree.map(_average_leaf, params))


def params_like(average: Any, params: Any) -> Any:
    """Casts averaged parameters back to the dtypes of ``params``.

    Args:
      average: the averaged parameters (``state.average``).
      params: parameters with the wanted dtypes.

    Returns:
      ``average`` with every leaf cast to the dtype of the matching leaf of ``params``.

    Example:
      >>> params = {"w": jnp.ones(2, jnp.bfloat16)}
      >>> average = ema(0.9).init(params).average      # kept in float32
      >>> params_like(average, params)["w"].dtype
      dtype(bfloat16)
    """
    return jax.tree.map(lambda a, p: jnp.asarray(a).astype(jnp.asarray(p).dtype), average, params)


def ema(decay: float | ArrayLike = 0.999) -> Averaging:
    """Exponential moving average of the parameters (Polyak-style averaging).

    ``init(params)`` starts the average at the parameters themselves (so no bias
    correction is needed); every ``update(params, state)`` computes
    ``average <- decay * average + (1 - decay) * params``. Evaluate with
    ``state.average``, train with the raw parameters.

    Args:
      decay: in ``[0, 1]``; may be an array or tracer. ``0`` tracks the parameters,
        ``1`` freezes the initial ones. Typical: 0.99 - 0.9999.

    Returns:
      An ``Averaging`` with ``init`` and ``update``.

    Raises:
      ValueError: if a concrete ``decay`` is outside ``[0, 1]``.

    References:
      B. T. Polyak, A. B. Juditsky, "Acceleration of Stochastic Approximation by
      Averaging", SIAM J. Control Optim., https://doi.org/10.1137/0330046, 1992.

    Example:
      >>> averager = ema(0.5)
      >>> avg = averager.init({"w": jnp.array(0.0)})
      >>> for w in (1.0, 1.0):                          # after every step
      ...     avg = averager.update({"w": jnp.array(w)}, avg)
      >>> float(avg.average["w"])                    # 0 -> 0.5 -> 0.75
      0.75
    """
    check_unit_interval("decay", decay, closed_right=True)

    def update(params: Any, state: AveragingState) -> AveragingState:
        _check_order(params)
        average = jax.tree.map(
            lambda a, p: a + (1 - decay) * (upcast(p).astype(a.dtype) - a)
            if _is_float(a) else jnp.asarray(p),
            state.average, params,
        )
        return AveragingState(safe_increment(state.count), average)

    return Averaging(_init, update)


def swa(start: int = 0, every: int = 1) -> Averaging:
    """Stochastic weight averaging: the equal-weight mean of the parameters at chosen steps.

    ``update(params, state)`` is called after every step; the ``t``-th call (``t = 1,
    2, ...``) takes a snapshot when ``t >= start`` and ``(t - start) % every == 0``, and
    the average is the running mean of the snapshots (computed incrementally as
    ``average + (p - average) / k``). So ``swa(start=s, every=c)`` averages the
    iterates at steps ``s, s + c, s + 2c, ...``: Izmailov et al.'s SWA with cycle
    length ``c`` started at step ``s``, or PyTorch's ``swa_utils`` recipe (an
    ``update_parameters`` at the end of every epoch from ``swa_start`` on) with
    ``every`` = steps per epoch and ``start`` = the last step of the first averaged
    epoch. ``swa()`` averages every update. Before the first snapshot the average is
    the ``init`` parameters. Use a constant or cyclic learning rate while averaging;
    with batch norm, recompute its statistics for the averaged weights.

    Args:
      start: the first step (update call) that may be averaged; ``0`` counts like
        ``every`` (snapshots at ``every, 2·every, ...``). An int >= 0.
      every: steps between snapshots, an int >= 1.

    Returns:
      An ``Averaging`` with ``init`` and ``update``; ``state.count`` counts the
      ``update`` calls (steps), not the snapshots.

    Raises:
      ValueError: if ``start`` is negative or ``every`` is below 1 (or either is not
        an integer).

    References:
      P. Izmailov, D. Podoprikhin, T. Garipov, D. Vetrov, A. G. Wilson, "Averaging
      Weights Leads to Wider Optima and Better Generalization", UAI,
      https://arxiv.org/abs/1803.05407, 2018.

    Example:
      >>> averager = swa()
      >>> avg = averager.init({"w": jnp.array(0.0)})
      >>> for w in (1.0, 2.0, 6.0):                     # every update is a snapshot
      ...     avg = averager.update({"w": jnp.array(w)}, avg)
      >>> float(avg.average["w"])                    # (1 + 2 + 6) / 3
      3.0
      >>> late = swa(start=4, every=2)                  # steps 4, 6, 8, ...
      >>> avg = late.init({"w": jnp.array(0.0)})
      >>> for step in range(1, 8):                      # the weights are 1, 2, ..., 7
      ...     avg = late.update({"w": jnp.array(float(step))}, avg)
      >>> float(avg.average["w"])                    # (4 + 6) / 2
      5.0
    """
    start = check_int("start", start, lo=0)
    every = check_int("every", every, lo=1)
    first = start if start > 0 else every  # the first step that is a snapshot

    def snapshots(step: jax.Array) -> jax.Array:
        """How many of the steps ``1 .. step`` were snapshots (0 before ``first``)."""
        return jnp.where(step >= first, (step - first) // every + 1, 0)

    def update(params: Any, state: AveragingState) -> AveragingState:
        _check_order(params)
        step = safe_increment(state.count)
        take = (step >= first) & ((step - first) % every == 0)
        k = jnp.maximum(snapshots(step), 1)
        average = jax.tree.map(
            lambda a, p: jnp.where(take, a + (upcast(p).astype(a.dtype) - a)
                                   / k.astype(a.dtype), a)
            if _is_float(a) else jnp.where(take, jnp.asarray(p), a),
            state.average, params,
        )
        return AveragingState(step, average)

    return Averaging(_init, update)


def ensemble_predict(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    stacked_params: Any,
    x: ArrayLike,
) -> jax.Array:
    """Averaged class probabilities of several models, computed with one ``vmap``.

    ``mean_m softmax(apply_fn(params_m, x))``: the lesson's model averaging (train
    several models independently, average their predictions).

    Args:
      apply_fn: ``apply_fn(params, x) -> logits`` for one model.
      stacked_params: the models' parameters stacked on a leading axis, e.g.
        ``jax.tree.map(lambda *p: jnp.stack(p), *params_list)`` or the result of a
        ``vmap``-ed initialisation / training.
      x: the inputs, shared by every model.

    Returns:
      float32 (or wider) probabilities of shape ``logits.shape``.

    Example:
      >>> model = jtricks.nn.mlp([16, 3])
      >>> keys = jax.random.split(jax.random.key(0), 5)
      >>> params = jax.vmap(lambda k: model.init(k, (4,))[0])(keys)   # 5 members
      >>> x_test = jnp.ones((7, 4))
      >>> probs = ensemble_predict(lambda p, x: model.apply(p, {}, x, training=False)[0],
      ...                          params, x_test)
      >>> probs.shape, bool(jnp.allclose(probs.sum(-1), 1.0))
      ((7, 3), True)
    """
    check_callable("apply_fn", apply_fn)

    def probs(params):
        logits = jnp.asarray(apply_fn(params, cast(jax.Array, x)))
        return jax.nn.softmax(upcast(logits), axis=-1)

    return jnp.mean(jax.vmap(probs)(stacked_params), axis=0)
