"""Building blocks: scaling, momentum, normalising and weight decay (the adaptive
rescalings — Adagrad, RMSProp, Adadelta, Adam — are in :mod:`._adaptive`).

Each unit is a ``NamedTuple`` state and a factory returning a
:class:`GradientTransformation`. The per-leaf maths of a unit is one fused
function applied in a single pass over the leaves; it runs in the leaf's dtype
promoted to at least float32, and the updates come back in the dtype of the
gradients. Hyperparameters may be Python numbers, JAX arrays or tracers (and a
schedule where noted), so they can be ``jit`` arguments or ``vmap``-ed.

State dtypes are named as in optax, after the buffer they set (``mu_dtype``,
``nu_dtype``, ``accumulator_dtype``; default: the params' dtype; squared-gradient
averages of half-precision params are float32, see :mod:`._adaptive`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._numeric import compute_dtype, global_norm, safe_increment, zero_count
from .. import _validate as v
from ._base import EmptyState, GradientTransformation, identity
from ._checks import transformation
from ._common import as_dtype, map_leaves, map_tree, zeros_like

ScalarOrSchedule = optax.ScalarOrSchedule
"""A number, array or schedule ``step -> value``: optax's own alias (tools that read
annotations, such as optax's tests, see the same type)."""


def _empty_init(params):
    del params
    return EmptyState()


def _scale_leaves(updates, factor):
    """``updates * factor`` leaf by leaf, computed in >= f32, in the updates' dtype."""

    def leaf(g):
        cdt = compute_dtype(g.dtype)
        return (g.astype(cdt) * as_dtype(factor, cdt)).astype(g.dtype)

    return map_tree(leaf, updates)


# ----------------------------------------------------------------------------- scaling


def scale(step_size: jax.typing.ArrayLike) -> GradientTransformation:
    """Multiplies the updates by ``step_size`` (optax's name for the factor).

    Args:
      step_size: a number, array or tracer (any sign).

    Returns:
      A stateless ``GradientTransformation``.

    Raises:
      TypeError: if ``step_size`` is not numeric.
      ValueError: if ``step_size`` is NaN.

    Example:
      >>> tx = scale(-0.1)   # plain gradient descent with step 0.1
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]
      Array([-0.1,  0.2], dtype=float32)
    """
    v.check_number("step_size", step_size)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return _scale_leaves(updates, step_size), state

    return transformation("scale", _empty_init, update_fn)


class ScaleByScheduleState(NamedTuple):
    """The step count fed to a schedule (int32, saturating)."""

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count


def scale_by_learning_rate(
    learning_rate: Optional[ScalarOrSchedule] = None, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiplies the updates by ``-learning_rate`` (``+`` with ``flip_sign=False``).

    Args:
      learning_rate: a non-negative number, array or tracer, or a schedule
        ``step -> value`` (then the state counts the steps), or ``None`` (the
        default, as in optax) for no scaling.
      flip_sign: whether to multiply by ``-learning_rate`` (descent).

    Returns:
      A ``GradientTransformation``; stateless unless ``learning_rate`` is a schedule.

    Raises:
      ValueError: if a concrete ``learning_rate`` is negative or NaN.

    Example:
      >>> tx = scale_by_learning_rate(1e-3)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]
      Array([-0.001,  0.002], dtype=float32)
    """
    v.check_bool("flip_sign", flip_sign)
    if learning_rate is None:
        return identity()
    v.check_non_negative("learning_rate", learning_rate)
    sign = -1.0 if flip_sign else 1.0
    if not callable(learning_rate):
        return scale(sign * learning_rate)

    def init_fn(params):
        del params
        return ScaleByScheduleState(count=zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        step = sign * learning_rate(state.count)
        return _scale_leaves(updates, step), ScaleByScheduleState(safe_increment(state.count))

    return transformation("scale_by_learning_rate", init_fn, update_fn, (ScaleByScheduleState,))


# ----------------------------------------------------------------------------- momentum


class TraceState(NamedTuple):
    """The momentum buffer (the lesson's velocity)."""

    trace: Any


def trace(
    decay: jax.typing.ArrayLike,
    nesterov: bool = False,
    accumulator_dtype: Optional[jax.typing.DTypeLike] = None,
) -> GradientTransformation:
    r"""Momentum: :math:`t \leftarrow g + \gamma t`; the update is :math:`t`
    (or :math:`g + \gamma t` with Nesterov).

    Args:
      decay: the momentum coefficient :math:`\gamma` in ``[0, 1)`` (required, as in optax).
      nesterov: whether to use Nesterov's look-ahead form.
      accumulator_dtype: dtype of the buffer; defaults to the params' dtype.

    Returns:
      A ``GradientTransformation`` with state :class:`TraceState`.

    Raises:
      ValueError: if a concrete ``decay`` is outside ``[0, 1)``.

    References:
      Polyak, "Some methods of speeding up the convergence of iteration methods",
      https://doi.org/10.1016/0041-5553(64)90137-5, 1964.
      Sutskever, Martens, Dahl, Hinton, "On the importance of initialization and
      momentum in deep learning", https://proceedings.mlr.press/v28/sutskever13.html, 2013.

    Example:
      >>> tx = trace(0.9, nesterov=True)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]   # g + 0.9 * g on the first step
      Array([ 1.9, -3.8], dtype=float32)
    """
    v.check_unit_interval("decay", decay)
    v.check_bool("nesterov", nesterov)
    accumulator_dtype = v.check_dtype("accumulator_dtype", accumulator_dtype)

    def init_fn(params):
        return TraceState(jax.tree.map(lambda p: zeros_like(p, accumulator_dtype), params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def leaf(g, t):
            cdt = compute_dtype(jnp.result_type(g, t))
            d = as_dtype(decay, cdt)
            g32 = g.astype(cdt)
            new_t = g32 + d * t.astype(cdt)
            u = g32 + d * new_t if nesterov else new_t
            return u.astype(g.dtype), new_t.astype(t.dtype)

        updates, new_trace = map_leaves(leaf, 2, updates, state.trace)
        return updates, TraceState(new_trace)

    return transformation("trace", init_fn, update_fn, (TraceState,), like=lambda s: s.trace)


# ----------------------------------------------------------------------------- normalising


def normalize_by_norm(
    scale_factor: jax.typing.ArrayLike = 1.0, eps: jax.typing.ArrayLike = 1e-6
) -> GradientTransformation:
    r"""Divides the updates by their global L2 norm: :math:`s\,g / (\lVert g \rVert + \epsilon)`.

    Followed by ``scale_by_learning_rate(lr)`` this is the lesson's normalised
    step :math:`w \leftarrow w - \eta \nabla / \lVert\nabla\rVert`. A zero
    gradient gives a zero update (never NaN, even with ``eps=0``). Equal to
    ``optax.normalize_by_update_norm``.

    Args:
      scale_factor: multiplies the normalised updates.
      eps: added to the norm, ``>= 0``.

    Returns:
      A stateless ``GradientTransformation``.

    Raises:
      ValueError: for a negative ``eps``.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.chain(jo.normalize_by_norm(eps=0.0), jo.scale_by_learning_rate(0.1))
      >>> grads = {"w": jnp.array([3.0, 4.0])}
      >>> tx.update(grads, tx.init(grads))[0]["w"]       # -0.1 * g / |g|
      Array([-0.06      , -0.08000001], dtype=float32)
    """
    v.check_number("scale_factor", scale_factor)
    v.check_non_negative("eps", eps)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = global_norm(updates)
        denom = (norm + as_dtype(eps, norm.dtype)) / as_dtype(scale_factor, norm.dtype)
        denom = jnp.where(norm > 0, denom, 1.0)  # zero gradient -> zero update

        def leaf(g):
            cdt = compute_dtype(g.dtype)
            return (g.astype(cdt) / denom.astype(cdt)).astype(g.dtype)

        return map_tree(leaf, updates), state

    return transformation("normalize_by_norm", _empty_init, update_fn)


# ----------------------------------------------------------------------------- weight decay


class WeightDecayScheduleState(NamedTuple):
    """The step count fed to a weight-decay schedule."""

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count


def _decay_transform(name: str, coeff, leaf_term: Callable, mask) -> GradientTransformation:
    """``g + coeff * leaf_term(p)``, with ``coeff`` a number, array or schedule."""

    def init_fn(params):
        del params
        return WeightDecayScheduleState(zero_count()) if callable(coeff) else EmptyState()

    zero = v.concrete_value(coeff)
    zero = zero is not None and not np.any(zero)  # a concrete 0: the params are not needed

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            if zero:
                return updates, state
            raise ValueError(f"{name} needs the params: call update(updates, state, params)")
        if callable(coeff):
            c, state = coeff(state.count), WeightDecayScheduleState(safe_increment(state.count))
        else:
            c = coeff
        if updates is None:  # no updates at all (optax accepts it): nothing to decay
            return None, state

        def leaf(g, p):
            cdt = compute_dtype(g.dtype)
            return (g.astype(cdt) + as_dtype(c, cdt) * leaf_term(p.astype(cdt))).astype(g.dtype)

        return map_tree(leaf, updates, params), state

    tx = transformation(name, init_fn, update_fn,
                        (WeightDecayScheduleState,) if callable(coeff) else None)
    if mask is not None:
        from ._wrappers import masked  # local: _wrappers builds on this module's helpers

        return masked(tx, mask)
    return tx


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: Any = None
) -> GradientTransformation:
    r"""L2 weight decay: adds :math:`\lambda w` to the updates (decoupled when
    placed after an adaptive rescaling, as in AdamW).

    Args:
      weight_decay: :math:`\lambda \ge 0`, a number, array or schedule.
      mask: optional pytree of bools (or a function of the params returning
        one) selecting the leaves to decay.

    Returns:
      A ``GradientTransformation`` (it needs ``params`` in ``update``).

    Raises:
      ValueError: for a negative ``weight_decay``; in ``update`` when ``params`` is
        missing (unless ``weight_decay`` is a concrete 0).

    References:
      Loshchilov, Hutter, "Decoupled Weight Decay Regularization",
      https://arxiv.org/abs/1711.05101, 2019.

    Example:
      >>> tx = add_decayed_weights(1e-4, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
      >>> params = {"w": jnp.ones((1, 2)), "b": jnp.ones(2)}
      >>> tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)[0]
      {'b': Array([0., 0.], dtype=float32), 'w': Array([[0.0001, 0.0001]], dtype=float32)}
    """
    v.check_non_negative("weight_decay", weight_decay)
    return _decay_transform("add_decayed_weights", weight_decay, lambda p: p, mask)


def add_l1_decay(l1: ScalarOrSchedule = 0.0, mask: Any = None) -> GradientTransformation:
    r"""L1 decay: adds :math:`\lambda_1 \operatorname{sign}(w)` (the subgradient of
    :math:`\lambda_1 \lVert w \rVert_1`) to the updates.

    Args:
      l1: :math:`\lambda_1 \ge 0`, a number, array or schedule.
      mask: optional pytree of bools (or a function of the params) selecting leaves.

    Returns:
      A ``GradientTransformation`` (it needs ``params`` in ``update``).

    Raises:
      ValueError: for a negative ``l1``; in ``update`` when ``params`` is missing.

    References:
      Tibshirani, "Regression Shrinkage and Selection via the Lasso",
      https://doi.org/10.1111/j.2517-6161.1996.tb02080.x, 1996.

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.chain(jo.add_l1_decay(0.01), jo.sgd(1.0))
      >>> params = {"w": jnp.array([-2.0, 0.0, 3.0])}
      >>> grads = {"w": jnp.zeros(3)}
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> updates["w"]                                   # -lr * l1 * sign(w)
      Array([ 0.01,  0.  , -0.01], dtype=float32)
    """
    v.check_non_negative("l1", l1)
    return _decay_transform("add_l1_decay", l1, jnp.sign, mask)
