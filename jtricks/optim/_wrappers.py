"""Wrappers around transformations: masking, skipping non-finite steps,
gradient accumulation and reduce-on-plateau."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.core
import jax.numpy as jnp

from .._numeric import all_finite, compute_dtype, safe_increment, zero_count
from .. import _validate as v
from ._base import GradientTransformation
from ._checks import check_mask, static_mask, transformation
from ._common import call_update, map_tree, zeros_like


def _check_count(name: str, value: Any, lo: int) -> Any:
    """An integer count: a Python or NumPy integer or a 0-d integer array (checked
    exactly, returned as an ``int``), or a tracer (returned as is)."""
    if isinstance(value, jax.core.Tracer):
        return value
    return v.check_int(name, value, lo=lo)


def _check_transform(name: str, tx: Any) -> None:
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(f"{name} must be a gradient transformation with init and update, "
                        f"got {type(tx).__name__}: {tx!r}")


# ----------------------------------------------------------------------------- masked


class MaskedNode(NamedTuple):
    """Stands in for a leaf that a mask leaves out (a pytree node with no leaves)."""


class MaskedState(NamedTuple):
    """The inner state, built for the selected leaves only."""

    inner_state: Any


def _is_params_placeholder(params) -> bool:
    """Whether ``init`` is being called by ``optax.tree_utils.tree_map_params``, which
    passes a placeholder for the params tree to find where the state holds copies of it
    (optax's ``masked`` detects it the same way)."""
    return type(params).__name__ == "_ParamsPlaceholder"


def masked(
    inner: GradientTransformation, mask: Any, *, mask_compatible_extra_args: bool = False
) -> GradientTransformation:
    """Applies ``inner`` to the leaves where ``mask`` is True; the others pass through.

    As ``optax.masked``: the state works with ``optax.tree_utils.tree_map_params``
    (pass ``is_leaf=lambda v: isinstance(v, MaskedNode)`` to map extra trees of the
    params' structure over it).

    Args:
      inner: the inner transformation (jtricks or optax).
      mask: a pytree of bools with the params' structure (or a prefix of it),
        or a function ``params -> such a pytree``. It must be static: Python bools
        or boolean scalars (``jnp.asarray(x.ndim > 1)`` is fine under ``jit``), not
        values computed from the parameters' values.
      mask_compatible_extra_args: whether to mask the ``extra_args`` of ``update``
        that have the updates' tree structure too (optax's option).

    Returns:
      A ``GradientTransformation`` with state :class:`MaskedState`.

    Raises:
      TypeError: if ``inner`` is not a gradient transformation, or a mask leaf is
        not a boolean scalar.
      ValueError: if the mask's tree structure is not a prefix of the params'.

    Example:
      >>> import jtricks.optim as jo
      >>> decay_matrices = jo.masked(jo.add_decayed_weights(0.1),
      ...                            lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
      >>> params = {"w": jnp.ones((1, 2)), "b": jnp.ones(2)}
      >>> grads = jax.tree.map(jnp.zeros_like, params)
      >>> updates, _ = decay_matrices.update(grads, decay_matrices.init(params), params)
      >>> updates["w"], updates["b"]                     # the bias is left alone
      (Array([[0.1, 0.1]], dtype=float32), Array([0., 0.], dtype=float32))
    """
    _check_transform("inner", inner)
    check_mask("mask", mask)
    tx = inner

    def select(tree, mask_tree):
        return jax.tree.map(lambda m, x: x if m else MaskedNode(), mask_tree, tree)

    def init_fn(params):
        if _is_params_placeholder(params):
            return MaskedState(tx.init(params))
        return MaskedState(tx.init(select(params, static_mask("mask", mask, params))))

    def update_fn(updates, state, params=None, **extra_args):
        mask_tree = static_mask("mask", mask, updates)
        inner_params = None if params is None else select(params, mask_tree)
        if mask_compatible_extra_args:
            structure = jax.tree.structure(updates)
            extra_args = {k: select(x, mask_tree) if jax.tree.structure(x) == structure else x
                          for k, x in extra_args.items()}
        new, inner_state = call_update(
            tx, select(updates, mask_tree), state.inner_state, inner_params, extra_args)
        merged = jax.tree.map(lambda m, n, o: n if m else o, mask_tree, new, updates)
        return merged, MaskedState(inner_state)

    return transformation("masked", init_fn, update_fn, (MaskedState,), float_params=False)


# ----------------------------------------------------------------------------- apply_if_finite


class ApplyIfFiniteState(NamedTuple):
    """Bookkeeping of non-finite steps.

    Attributes:
      notfinite_count: consecutive non-finite steps so far (int32).
      last_finite: whether the last updates were all finite.
      total_notfinite: non-finite steps in total (int32, saturating).
      inner_state: the wrapped transformation's state.
    """

    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    inner_state: Any


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int
) -> GradientTransformation:
    """Skips steps whose updates contain NaN or Inf (zero updates, inner state kept).

    After more than ``max_consecutive_errors`` non-finite steps in a row the
    updates are applied anyway (as ``optax.apply_if_finite``), so that a
    diverged run shows up instead of stalling silently.

    Args:
      inner: the inner transformation.
      max_consecutive_errors: how many non-finite steps in a row to skip, ``>= 0``
        (an int, or an integer array / tracer).

    Returns:
      A ``GradientTransformation`` with state :class:`ApplyIfFiniteState`.

    Raises:
      TypeError / ValueError: for a bad ``inner`` or ``max_consecutive_errors``.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.apply_if_finite(jo.sgd(1.0), max_consecutive_errors=5)
      >>> state = tx.init(jnp.zeros(2))
      >>> updates, state = tx.update(jnp.array([1.0, jnp.nan]), state)
      >>> updates                                        # the step is skipped
      Array([0., 0.], dtype=float32)
      >>> int(state.notfinite_count), bool(state.last_finite)
      (1, False)
      >>> tx.update(jnp.array([1.0, 2.0]), state)[0]
      Array([-1., -2.], dtype=float32)
    """
    _check_transform("inner", inner)
    tx = inner
    max_consecutive_errors = _check_count("max_consecutive_errors", max_consecutive_errors, 0)

    def init_fn(params):
        return ApplyIfFiniteState(zero_count(), jnp.array(True), zero_count(), tx.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        finite = all_finite(updates)
        bad_run = jnp.where(finite, 0, safe_increment(state.notfinite_count)).astype(jnp.int32)

        def apply(_):
            return call_update(tx, updates, state.inner_state, params, extra_args)

        def skip(_):
            shapes = jax.eval_shape(apply, None)[0]
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), state.inner_state

        new_updates, inner = jax.lax.cond(
            jnp.logical_or(finite, bad_run > max_consecutive_errors), apply, skip, None)
        total = jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite))
        return new_updates, ApplyIfFiniteState(bad_run, finite, total, inner)

    return transformation("apply_if_finite", init_fn, update_fn, (ApplyIfFiniteState,))


# ----------------------------------------------------------------------------- accumulation


class AccumulateGradientsState(NamedTuple):
    """Gradient-accumulation bookkeeping.

    Attributes:
      mini_step: micro-batches accumulated since the last applied step (int32).
      gradient_step: steps applied so far (int32, saturating).
      acc_grads: the running mean of the micro-batch gradients (>= float32).
      inner_state: the wrapped transformation's state.
    """

    mini_step: jax.Array
    gradient_step: jax.Array
    acc_grads: Any
    inner_state: Any


def accumulate_gradients(
    tx: GradientTransformation,
    every_k: Union[int, Callable[[jax.Array], Any]],
    *,
    skip_nonfinite: bool = False,
) -> GradientTransformation:
    """Applies ``tx`` to the mean of ``every_k`` micro-batch gradients.

    On the first ``k - 1`` calls of every group the updates are zeros and the
    inner state does not move; on the ``k``-th call ``tx`` sees the mean gradient
    of the group — as ``optax.MultiSteps(tx, every_k_schedule, use_grad_mean=True)``,
    with the same numbers. The mean is kept with Welford's update
    ``a += (g - a) / (n + 1)``.

    Args:
      tx: the inner transformation.
      every_k: micro-batches per applied step: an integer ``>= 1``, or a schedule
        ``gradient_step -> k`` (``MultiSteps``' ``every_k_schedule``; ``gradient_step``
        counts the applied steps), to grow the batch during training.
      skip_nonfinite: whether to ignore a micro-batch whose gradients hold a NaN or
        an infinity: zero updates and an unchanged state, as if the call had not
        happened (``MultiSteps``' ``should_skip_update_fn=optax.skip_not_finite``).

    Returns:
      A ``GradientTransformation`` with state :class:`AccumulateGradientsState`.

    Raises:
      ValueError: for an integer ``every_k < 1``. TypeError: for an ``every_k``
        that is neither an integer nor callable.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.accumulate_gradients(jo.sgd(1.0), every_k=2)   # 2x larger batches
      >>> params = jnp.zeros(2)
      >>> state = tx.init(params)
      >>> updates, state = tx.update(jnp.array([1.0, 2.0]), state)
      >>> updates                                        # nothing applied yet
      Array([0., 0.], dtype=float32)
      >>> updates, state = tx.update(jnp.array([3.0, 0.0]), state)
      >>> updates                                        # -lr * the mean of the two
      Array([-2., -1.], dtype=float32)
    """
    _check_transform("tx", tx)
    if not callable(every_k):
        every_k = v.check_int("every_k", every_k, lo=1)
    k_of = every_k if callable(every_k) else (lambda step: every_k)

    def init_fn(params):
        acc = jax.tree.map(lambda p: zeros_like(p, compute_dtype(jnp.result_type(p))), params)
        return AccumulateGradientsState(zero_count(), zero_count(), acc, tx.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        n = state.mini_step
        keep = all_finite(updates) if skip_nonfinite else jnp.array(True)
        acc = jax.tree.map(
            lambda g, a: jnp.where(keep, a + (g.astype(a.dtype) - a) / (n + 1).astype(a.dtype), a),
            updates, state.acc_grads)
        emit = jnp.logical_and(keep, n == jnp.asarray(k_of(state.gradient_step)) - 1)

        def apply(_):
            mean = jax.tree.map(lambda a, g: a.astype(g.dtype), acc, updates)
            return call_update(tx, mean, state.inner_state, params, extra_args)

        def wait(_):
            shapes = jax.eval_shape(apply, None)[0]
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), state.inner_state

        new_updates, inner = jax.lax.cond(emit, apply, wait, None)
        new_state = AccumulateGradientsState(
            mini_step=jnp.where(emit, 0, jnp.where(keep, n + 1, n)).astype(jnp.int32),
            gradient_step=jnp.where(emit, safe_increment(state.gradient_step), state.gradient_step),
            acc_grads=jax.tree.map(lambda a: jnp.where(emit, jnp.zeros_like(a), a), acc),
            inner_state=inner,
        )
        return new_updates, new_state

    return transformation("accumulate_gradients", init_fn, update_fn,
                          (AccumulateGradientsState,), like=lambda s: s.acc_grads)


# ----------------------------------------------------------------------------- reduce on plateau


class ReduceOnPlateauState(NamedTuple):
    """Reduce-on-plateau bookkeeping (the fields of optax's ``ReduceLROnPlateauState``).

    Attributes:
      scale: the current multiplier of the updates.
      best_value: the best (lowest) averaged monitored value so far.
      plateau_count: evaluations without improvement (int32).
      cooldown_count: evaluations left in the cooldown (int32).
      count: values accumulated into ``avg_value`` (int32).
      avg_value: the running mean of the monitored values.
    """

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count
    avg_value: jax.Array


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> GradientTransformation:
    """Multiplies the updates by a scale that drops by ``factor`` when the
    monitored value stops improving (as ``optax.contrib.reduce_on_plateau``).

    Call ``update(updates, state, params, value=loss)``. Every
    ``accumulation_size`` calls the mean of the values is compared with the
    best so far; it improves when ``mean < (1 - rtol) * best - atol``. After
    ``patience`` evaluations without improvement the scale is multiplied by
    ``factor`` (not below ``min_scale``) and ``cooldown`` evaluations are ignored.

    Args:
      factor: in ``(0, 1)``.
      patience: evaluations without improvement before reducing, ``>= 1`` (int or array).
      rtol: relative improvement threshold, in ``[0, 1]``.
      atol: absolute improvement threshold, ``>= 0`` (not both zero).
      cooldown: evaluations to wait after a reduction, ``>= 0`` (int or array).
      accumulation_size: values averaged per evaluation, ``>= 1``.
      min_scale: lower bound of the scale, ``>= 0``.

    Returns:
      A ``GradientTransformation`` with state :class:`ReduceOnPlateauState`.

    Raises:
      ValueError / TypeError: for a bad argument.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.chain(jo.sgd(1.0), jo.reduce_on_plateau(factor=0.5, patience=2))
      >>> params = jnp.zeros(1)
      >>> state = tx.init(params)
      >>> for loss in [1.0, 0.5, 0.5, 0.5]:              # no improvement twice in a row
      ...     updates, state = tx.update(jnp.ones(1), state, params, value=jnp.float32(loss))
      >>> float(state[1].scale), updates
      (0.5, Array([-0.5], dtype=float32))
    """
    v.check_number("factor", factor, lo=0, hi=1, lo_open=True, hi_open=True)
    patience = _check_count("patience", patience, 1)
    v.check_unit_interval("rtol", rtol, closed_right=True)
    v.check_non_negative("atol", atol)
    cooldown = _check_count("cooldown", cooldown, 0)
    accumulation_size = v.check_int("accumulation_size", accumulation_size, lo=1)
    v.check_non_negative("min_scale", min_scale)
    r, a = v.concrete_value(rtol), v.concrete_value(atol)
    if r is not None and a is not None and float(r) == 0.0 and float(a) == 0.0:
        raise ValueError(f"rtol={rtol!r} and atol={atol!r}: at least one must be > 0")

    def init_fn(params):
        leaves = jax.tree.leaves(params)
        high = compute_dtype(jnp.result_type(*leaves)) if leaves else jnp.dtype(jnp.float32)
        return ReduceOnPlateauState(
            scale=jnp.ones([], jnp.float32), best_value=jnp.full([], jnp.inf, high),
            plateau_count=zero_count(), cooldown_count=zero_count(), count=zero_count(),
            avg_value=jnp.zeros([], high))

    def evaluate(s: ReduceOnPlateauState) -> ReduceOnPlateauState:
        improved = s.avg_value < (1 - rtol) * s.best_value - atol
        best = jnp.where(improved, s.avg_value, s.best_value)
        plateau = jnp.where(improved, 0, safe_increment(s.plateau_count))
        in_cooldown = s.cooldown_count > 0
        reduce = jnp.logical_and(jnp.logical_not(in_cooldown), plateau == patience)
        scale_ = jnp.where(reduce, s.scale * factor, s.scale)
        scale_ = jnp.where(in_cooldown, s.scale, jnp.maximum(scale_, min_scale))
        plateau = jnp.where(jnp.logical_or(in_cooldown, reduce), 0, plateau)
        cool = jnp.where(in_cooldown, s.cooldown_count - 1, jnp.where(reduce, cooldown, 0))
        return ReduceOnPlateauState(
            scale=scale_.astype(s.scale.dtype), best_value=best.astype(s.best_value.dtype),
            plateau_count=plateau.astype(jnp.int32), cooldown_count=cool.astype(jnp.int32),
            count=zero_count(), avg_value=jnp.zeros_like(s.avg_value))

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise TypeError("reduce_on_plateau.update needs the monitored value: "
                            "update(updates, state, params, value=loss)")
        count = safe_increment(state.count)
        value = jnp.asarray(value).astype(state.avg_value.dtype)
        avg = (state.count * state.avg_value + value) / count
        state = state._replace(avg_value=avg.astype(state.avg_value.dtype), count=count)
        state = jax.lax.cond(count == accumulation_size, evaluate, lambda s: s, state)

        def leaf(g):
            return (g.astype(compute_dtype(g.dtype)) * state.scale).astype(g.dtype)

        return map_tree(leaf, updates), state

    return transformation("reduce_on_plateau", init_fn, update_fn, (ReduceOnPlateauState,))
