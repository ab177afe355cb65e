"""Adaptive per-coordinate rescaling: Adagrad, RMSProp, Adadelta and Adam (AMSGrad, NAdam).

Each unit is a ``NamedTuple`` state and a factory returning a
:class:`GradientTransformation`, written like the building blocks of
:mod:`._transforms`: one fused per-leaf function applied in a single pass over
the leaves, in the leaf's dtype promoted to at least float32. Squared gradients are
squared magnitudes ``|g|**2 = g * conj(g)`` (real for complex parameters, as in optax).
State dtypes are named as in optax (``mu_dtype``, ``nu_dtype``, ``accumulator_dtype``;
default: the params' dtype), except that sums and averages of squared gradients of
half-precision (float16 / bfloat16) parameters are kept in float32 by default
(:func:`square_dtype`).

With ``eps = 0`` (and ``eps_root = 0``) the division by the root of a zero
second moment is guarded: where that moment is zero (a zero gradient so far) the
update is zero, never ``0/0 = NaN``. Adadelta alone needs ``eps > 0``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .._numeric import abs_sq, compute_dtype, safe_increment, zero_count
from .. import _validate as v
from ._base import GradientTransformation
from ._checks import transformation
from ._common import as_dtype, full_like, map_leaves, zeros_like

_HALF = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def square_dtype(param: Any, override=None) -> jnp.dtype:
    """The dtype of a sum or average of squared gradients for ``param``.

    ``override`` when given, else the parameter's dtype, except float32 for
    float16 / bfloat16 parameters: a float16 square overflows for gradients
    above about 256 (``(1 - b2) g^2 > 65504`` for ``g`` of about 8e3 in Adam, and
    then the parameter never moves again), and a bfloat16 moving average with
    ``b2 = 0.999`` cannot decay (a relative change of 1e-3 rounds away in its
    8-bit significand). optax and PyTorch keep the params' dtype (PyTorch's mixed
    precision keeps float32 master weights instead).

    Example:
      >>> square_dtype(jnp.zeros(2, jnp.bfloat16)), square_dtype(jnp.zeros(2, jnp.float32))
      (dtype('float32'), dtype('float32'))
      >>> square_dtype(jnp.zeros(2, jnp.float16), override=jnp.float16)
      dtype('float16')
    """
    if override is not None:
        return jnp.dtype(override)
    dtype = jnp.result_type(param)
    return jnp.dtype(jnp.float32) if dtype in _HALF else dtype


def _may_be_zero(*values) -> bool:
    """Whether every value may be 0 (in float32): then a ``0/0`` must be guarded."""
    for value in values:
        concrete = v.concrete_value(value)
        if concrete is not None and float(concrete) >= np.finfo(np.float32).tiny:
            return False
    return True


class ScaleByAdagradState(NamedTuple):
    """The running sum of squared gradients."""

    sum_of_squares: Any


def scale_by_adagrad(
    initial_accumulator_value: jax.typing.ArrayLike = 0.1, eps: jax.typing.ArrayLike = 1e-7
) -> GradientTransformation:
    r"""Adagrad's rescaling :math:`g / \sqrt{s + \epsilon}` with :math:`s \mathrel{+}= g^2`.

    Where the sum is zero the update is zero (no ``0/0``).

    Args:
      initial_accumulator_value: starting value of ``s``, ``>= 0``.
      eps: added inside the square root, ``>= 0``.

    Returns:
      A ``GradientTransformation`` with state :class:`ScaleByAdagradState`.

    Raises:
      ValueError: for a negative ``initial_accumulator_value`` or ``eps``.

    References:
      Duchi, Hazan, Singer, "Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization", https://jmlr.org/papers/v12/duchi11a.html, 2011.

    Example:
      >>> tx = scale_by_adagrad(0.1, 1e-7)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]   # g / sqrt(0.1 + g**2)
      Array([ 0.9534625, -0.9877296], dtype=float32)
    """
    v.check_non_negative("initial_accumulator_value", initial_accumulator_value)
    v.check_non_negative("eps", eps)

    def init_fn(params):
        return ScaleByAdagradState(jax.tree.map(
            lambda p: full_like(p, initial_accumulator_value, square_dtype(p)), params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def leaf(g, s):
            cdt = compute_dtype(jnp.result_type(g, s))
            g32 = jnp.asarray(g).astype(cdt)
            s_new = abs_sq(g32) + s.astype(cdt)
            inv = jnp.where(s_new.real > 0, jax.lax.rsqrt(s_new + as_dtype(eps, cdt)), 0.0)
            return (inv * g32).astype(jnp.result_type(g)), s_new.astype(s.dtype)

        updates, sums = map_leaves(leaf, 2, updates, state.sum_of_squares)
        return updates, ScaleByAdagradState(sums)

    return transformation("scale_by_adagrad", init_fn, update_fn, (ScaleByAdagradState,),
                          like=lambda s: s.sum_of_squares)


class ScaleByRmsState(NamedTuple):
    """The exponential moving average of squared gradients."""

    nu: Any


class ScaleByCenteredRmsState(NamedTuple):
    """Moving averages of the gradients (``mu``) and their squares (``nu``)."""

    mu: Any
    nu: Any


class ScaleByRmsWithCountState(NamedTuple):
    """``scale_by_rms(bias_correction=True)``'s state: the step count and ``nu``."""

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count
    nu: Any


class ScaleByCenteredRmsWithCountState(NamedTuple):
    """The centered ``scale_by_rms(bias_correction=True)``'s state: count, ``mu``, ``nu``."""

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count
    mu: Any
    nu: Any


def scale_by_rms(
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    centered: bool = False,
) -> GradientTransformation:
    r"""RMSprop's rescaling by the root of a moving average of squared gradients.

    :math:`\nu \leftarrow \rho\nu + (1-\rho) g^2`; the update is
    :math:`g / \sqrt{\nu + \epsilon}` (``eps_in_sqrt=True``, optax's default)
    or :math:`g / (\sqrt{\nu} + \epsilon)` (PyTorch's). ``centered`` also
    tracks :math:`\mu \leftarrow \rho\mu + (1-\rho) g` and divides by the root
    of the variance estimate :math:`\nu - \mu^2` (clamped at 0). With
    ``bias_correction`` the averages are divided by :math:`1 - \rho^t` first, as
    Adam's (and as optax's ``bias_correction=True``).

    Args:
      decay: :math:`\rho` in ``[0, 1)``.
      eps: ``>= 0``; with ``eps = 0`` a zero (centered) second moment gives a zero
        update, not ``0/0``.
      initial_scale: starting value of :math:`\nu`.
      eps_in_sqrt: where ``eps`` goes, see above.
      bias_correction: whether to debias the averages (optax's option; the state
        then counts the steps).
      centered: (keyword-only, jtricks' addition; ``optax.scale_by_stddev``)
        whether to subtract the squared mean.

    Returns:
      A ``GradientTransformation`` with state :class:`ScaleByRmsState` or
      :class:`ScaleByCenteredRmsState` (with ``bias_correction``:
      :class:`ScaleByRmsWithCountState` or :class:`ScaleByCenteredRmsWithCountState`).

    Raises:
      ValueError: for ``decay`` outside ``[0, 1)`` or a negative ``eps``.

    References:
      Hinton, Srivastava, Swersky, "Neural Networks for Machine Learning, lecture 6e",
      https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf, 2012.
      Graves, "Generating Sequences With Recurrent Neural Networks" (centered),
      https://arxiv.org/abs/1308.0850, 2013.

    Example:
      >>> tx = scale_by_rms(0.9, 1e-8, centered=True)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]
      Array([ 3.3333333, -3.3333333], dtype=float32)
    """
    v.check_bool("bias_correction", bias_correction)
    v.check_unit_interval("decay", decay)
    v.check_non_negative("eps", eps)
    v.check_non_negative("initial_scale", initial_scale)
    v.check_bool("eps_in_sqrt", eps_in_sqrt)
    v.check_bool("centered", centered)
    guard = _may_be_zero(eps)

    def init_fn(params):
        nu = jax.tree.map(lambda p: full_like(p, initial_scale, square_dtype(p)), params)
        mu = jax.tree.map(zeros_like, params)
        if bias_correction:
            return (ScaleByCenteredRmsWithCountState(zero_count(), mu, nu) if centered
                    else ScaleByRmsWithCountState(zero_count(), nu))
        return ScaleByCenteredRmsState(mu, nu) if centered else ScaleByRmsState(nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = safe_increment(state.count) if bias_correction else None
        if bias_correction:  # 1 - decay**t once per step, in >= float32
            assert count is not None
            bdt = compute_dtype(jnp.result_type(*jax.tree.leaves(updates), jnp.float32))
            bc = 1 - as_dtype(decay, bdt) ** count

        def leaf(g, nu_old, mu_old=None):
            cdt = compute_dtype(jnp.result_type(g, nu_old))
            d, e, d1 = as_dtype(decay, cdt), as_dtype(eps, cdt), as_dtype(1 - decay, cdt)
            g32 = jnp.asarray(g).astype(cdt)
            nu = d1 * abs_sq(g32) + d * nu_old.astype(cdt)
            nu_hat = nu / bc.astype(cdt) if bias_correction else nu
            var, mu = nu_hat, None
            if centered:
                assert mu_old is not None  # centered: map_leaves passes state.mu
                mu = d1 * g32 + d * mu_old.astype(cdt)
                mu_hat = mu / bc.astype(cdt) if bias_correction else mu
                var = jnp.maximum(nu_hat - abs_sq(mu_hat), 0.0)  # a variance is never negative
                mu = mu.astype(mu_old.dtype)
            s = jax.lax.rsqrt(var + e) if eps_in_sqrt else 1 / (jnp.sqrt(var) + e)
            if guard:  # eps = 0: no 0/0 where the (centered) second moment is zero
                s = jnp.where(var + e > 0, s, 0.0)
            return (s * g32).astype(jnp.result_type(g)), nu.astype(nu_old.dtype), mu

        if centered:
            updates, nu, mu = map_leaves(leaf, 3, updates, state.nu, state.mu)
            if bias_correction:
                assert count is not None
                return updates, ScaleByCenteredRmsWithCountState(count, mu, nu)
            return updates, ScaleByCenteredRmsState(mu, nu)
        updates, nu, _ = map_leaves(leaf, 3, updates, state.nu)
        if bias_correction:
            assert count is not None
            return updates, ScaleByRmsWithCountState(count, nu)
        return updates, ScaleByRmsState(nu)

    kind: type
    if bias_correction:
        kind = ScaleByCenteredRmsWithCountState if centered else ScaleByRmsWithCountState
    else:
        kind = ScaleByCenteredRmsState if centered else ScaleByRmsState
    return transformation("scale_by_rms", init_fn, update_fn, (kind,), like=lambda s: s.nu)


class ScaleByAdadeltaState(NamedTuple):
    """Moving averages of squared gradients (``e_g``) and squared updates (``e_x``)."""

    e_g: Any
    e_x: Any


def scale_by_adadelta(
    rho: jax.typing.ArrayLike = 0.9, eps: jax.typing.ArrayLike = 1e-6
) -> GradientTransformation:
    r"""Adadelta's rescaling :math:`\sqrt{E[\Delta x^2] + \epsilon} / \sqrt{E[g^2] + \epsilon}`.

    Args:
      rho: decay of both moving averages, in ``[0, 1)``.
      eps: ``> 0``: it is the only source of a first step (with ``eps = 0`` the
        average of squared updates stays 0 and no parameter ever moves).

    Complex gradients use :math:`|g|^2` (and :math:`|\Delta x|^2`) in both averages, as
    every second moment here; optax's ``scale_by_adadelta`` squares them (``g**2``) and
    does not support complex parameters.

    Returns:
      A ``GradientTransformation`` with state :class:`ScaleByAdadeltaState`.

    Raises:
      ValueError: for ``rho`` outside ``[0, 1)`` or ``eps <= 0``.

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method",
      https://arxiv.org/abs/1212.5701, 2012.

    Example:
      >>> tx = scale_by_adadelta(0.9, 1e-6)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]
      Array([ 0.00316226, -0.00316227], dtype=float32)
    """
    v.check_unit_interval("rho", rho)
    v.check_positive("eps", eps)

    def init_fn(params):
        zeros = lambda: jax.tree.map(lambda p: zeros_like(p, square_dtype(p)), params)  # noqa: E731
        return ScaleByAdadeltaState(e_g=zeros(), e_x=zeros())

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args

        def leaf(g, e_g, e_x):
            cdt = compute_dtype(jnp.result_type(g, e_g))
            r, e, r1 = as_dtype(rho, cdt), as_dtype(eps, cdt), as_dtype(1 - rho, cdt)
            g32 = jnp.asarray(g).astype(cdt)
            new_e_g = r1 * abs_sq(g32) + r * e_g.astype(cdt)
            u = (jnp.sqrt(e_x.astype(cdt) + e) / jnp.sqrt(new_e_g + e)) * g32
            new_e_x = r1 * abs_sq(u) + r * e_x.astype(cdt)
            return (u.astype(jnp.result_type(g)), new_e_g.astype(e_g.dtype),
                    new_e_x.astype(e_x.dtype))

        updates, e_g, e_x = map_leaves(leaf, 3, updates, state.e_g, state.e_x)
        return updates, ScaleByAdadeltaState(e_g=e_g, e_x=e_x)

    return transformation("scale_by_adadelta", init_fn, update_fn, (ScaleByAdadeltaState,),
                          like=lambda s: s.e_g)


class ScaleByAdamState(NamedTuple):
    """Adam's step count and first / second moment estimates."""

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count
    mu: Any
    nu: Any


class ScaleByAmsgradState(NamedTuple):
    """AMSGrad's state: Adam's plus the running maximum of the corrected ``nu``."""

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count
    mu: Any
    nu: Any
    nu_max: Any


def scale_by_adam(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Optional[jax.typing.DTypeLike] = None,
    *,
    nesterov: bool = False,
    amsgrad: bool = False,
    nu_dtype: Optional[jax.typing.DTypeLike] = None,
) -> GradientTransformation:
    r"""Adam's rescaling :math:`\hat m / (\sqrt{\hat v + \epsilon_{root}} + \epsilon)`.

    :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`,
    :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`, bias-corrected
    :math:`\hat m = m / (1-\beta_1^t)`, :math:`\hat v = v / (1-\beta_2^t)`.
    With ``nesterov`` the numerator is NAdam's
    :math:`\beta_1 m / (1-\beta_1^{t+1}) + (1-\beta_1) g / (1-\beta_1^t)` (as optax's
    ``nesterov=True``). With ``amsgrad`` the denominator uses the running maximum of
    :math:`\hat v` (as ``optax.scale_by_amsgrad``). ``m``, ``v`` and the update are
    computed together in one pass per leaf.

    The positional arguments are optax's, in optax's order; ``amsgrad`` and
    ``nu_dtype`` are jtricks' keyword-only additions.

    Args:
      b1: decay of the first moment, in ``[0, 1)``.
      b2: decay of the second moment, in ``[0, 1)``.
      eps: added outside the square root, ``>= 0``.
      eps_root: added inside the square root, ``>= 0``. With ``eps = eps_root = 0``
        a zero second moment (no gradient yet on that coordinate) gives a zero
        update, not ``0/0 = NaN`` (optax gives NaN there).
      mu_dtype: dtype of ``m`` (default: the params' dtype).
      nesterov: whether to use NAdam's Nesterov momentum (keyword-only, as in optax).
      amsgrad: whether to use the AMSGrad maximum (keyword-only).
      nu_dtype: dtype of ``v`` (keyword-only). Default: the params' dtype, except
        float32 for float16 / bfloat16 params (:func:`square_dtype`): in float16,
        ``v`` overflows to inf for one gradient of about 8e3 and the parameter
        never moves again. optax (which has no ``nu_dtype``) and PyTorch keep
        ``v`` in the params' dtype; pass ``nu_dtype=jnp.float16`` for that.

    Returns:
      A ``GradientTransformation`` with state :class:`ScaleByAdamState` or
      :class:`ScaleByAmsgradState`.

    Raises:
      ValueError: for ``b1``/``b2`` outside ``[0, 1)`` or a negative ``eps``/``eps_root``.

    References:
      Kingma, Ba, "Adam: A Method for Stochastic Optimization",
      https://arxiv.org/abs/1412.6980, 2014.
      Reddi, Kale, Kumar, "On the Convergence of Adam and Beyond",
      https://openreview.net/forum?id=ryQu7f-RZ, 2018.

    Example:
      >>> tx = scale_by_adam(0.9, 0.999, mu_dtype=jnp.bfloat16)
      >>> g = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(g, tx.init(g))
      >>> updates, state.mu.dtype             # first step: about sign(g)
      (Array([ 0.9999934, -0.9999934], dtype=float32), dtype(bfloat16))
    """
    v.check_unit_interval("b1", b1)
    v.check_unit_interval("b2", b2)
    v.check_non_negative("eps", eps)
    v.check_non_negative("eps_root", eps_root)
    mu_dtype = v.check_dtype("mu_dtype", mu_dtype)
    nu_dtype = v.check_dtype("nu_dtype", nu_dtype)
    v.check_bool("nesterov", nesterov)
    v.check_bool("amsgrad", amsgrad)
    guard = _may_be_zero(eps, eps_root)

    def init_fn(params):
        mu = jax.tree.map(lambda p: zeros_like(p, mu_dtype), params)
        nu = jax.tree.map(lambda p: zeros_like(p, square_dtype(p, nu_dtype)), params)
        if amsgrad:
            return ScaleByAmsgradState(zero_count(), mu, nu, jax.tree.map(zeros_like, nu))
        return ScaleByAdamState(zero_count(), mu, nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = safe_increment(state.count)
        # Bias corrections once per step, in >= float32 (a low-precision b**t rounds to 1).
        bdt = compute_dtype(jnp.result_type(*jax.tree.leaves(updates), jnp.float32))
        bc1 = 1 - as_dtype(b1, bdt) ** count
        bc2 = 1 - as_dtype(b2, bdt) ** count
        # NAdam's look-ahead correction of m (optax: bias_correction(mu, b1, count + 1)).
        bc1_next = 1 - as_dtype(b1, bdt) ** safe_increment(count) if nesterov else None

        def leaf(g, m_old, n_old, n_max_old=None):
            cdt = compute_dtype(jnp.result_type(g, m_old, n_old))
            d1, d2 = as_dtype(b1, cdt), as_dtype(b2, cdt)
            c1, c2 = as_dtype(1 - b1, cdt), as_dtype(1 - b2, cdt)
            g32 = jnp.asarray(g).astype(cdt)
            m = c1 * g32 + d1 * m_old.astype(cdt)
            n = c2 * abs_sq(g32) + d2 * n_old.astype(cdt)
            n_hat, n_max = n / bc2.astype(cdt), None
            if amsgrad:
                assert n_max_old is not None  # amsgrad: map_leaves passes state.nu_max
                n_hat = jnp.maximum(n_max_old.astype(cdt), n_hat)
                n_max = n_hat.astype(n_max_old.dtype)
            denom = jnp.sqrt(n_hat + as_dtype(eps_root, cdt)) + as_dtype(eps, cdt)
            if nesterov:
                assert bc1_next is not None
                m_hat = d1 * (m / bc1_next.astype(cdt)) + c1 * (g32 / bc1.astype(cdt))
            else:
                m_hat = m / bc1.astype(cdt)
            u = m_hat / denom
            if guard:  # eps = eps_root = 0: no 0/0 where the second moment is zero
                u = jnp.where(denom > 0, u, 0.0)
            return u.astype(jnp.result_type(g)), m.astype(m_old.dtype), n.astype(n_old.dtype), n_max

        trees = (state.mu, state.nu) + ((state.nu_max,) if amsgrad else ())
        updates, mu, nu, nu_max = map_leaves(leaf, 4, updates, *trees)
        if amsgrad:
            return updates, ScaleByAmsgradState(count, mu, nu, nu_max)
        return updates, ScaleByAdamState(count, mu, nu)

    return transformation("scale_by_adam", init_fn, update_fn,
                          (ScaleByAmsgradState if amsgrad else ScaleByAdamState,),
                          like=lambda s: s.mu)
