"""Normalisation layers as pure functions with explicit parameters and state.

Every statistic is computed in at least float32 (float64 inputs stay float64),
in one pass over the input with the shifted-data algorithm: with ``k`` one
sample of ``x`` (the first along the reduced axes, gradient stopped),
``mean = k + E[x - k]`` and ``var = E[(x - k)**2] - E[x - k]**2``. This is
exactly ``mean((x - mean)**2)`` in real arithmetic, as fast as flax's
``E[x**2] - E[x]**2`` (one read of ``x`` for both statistics instead of the
two-pass variance's two), and, unlike it, free of cancellation when the mean
is large against the spread, because ``k`` lies within a few standard
deviations of the mean. The variance is clamped at 0, so a constant input
gives ``var = 0`` and, with ``eps > 0``, no NaN. Outputs keep the input's
dtype.

The stateful layer, :func:`batch_norm`, takes and returns its running
statistics as a :class:`BatchNormState` ``(mean, var)`` NamedTuple; the others
only have parameters (``init_*`` returns the params dict). Normalisations with a learned affine map use ``scale`` (ones) and
``bias`` (zeros) of shape ``(num_features,)`` acting on the last axis; the
batch axis is the first one and NHWC is the image layout, as in flax.

dtype arguments follow flax's names: ``param_dtype`` is the dtype of the
parameters (every ``init_*``); outputs are in the input's dtype (flax's
``dtype``), statistics in at least float32; the running statistics of batch
norm, a state, have their own ``stats_dtype``.

``eps`` defaults to ``1e-5`` everywhere (PyTorch's default and flax's for
``BatchNorm``; flax uses ``1e-6`` for the other normalisations, so pass
``eps=1e-6`` to reproduce those exactly).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jtricks._numeric import compute_dtype, upcast
from jtricks._validate import (
    check_bool,
    check_dtype,
    check_int,
    check_positive,
    check_unit_interval,
)
from jtricks.nn._context import data_axis


def _moments(x, axes, axis_name=None):
    """Mean and (biased) variance over ``axes`` in >= float32, optionally across devices.

    One pass with the shifted-data algorithm (see the module docstring); with
    ``axis_name`` the shift is averaged over the devices first, so that every
    device uses the same one.
    """
    x = upcast(x)
    axes = tuple(a % x.ndim for a in axes)
    first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))
    shift = lax.stop_gradient(x[first])  # a sample of x, kept dims; var does not depend on it
    if axis_name is not None:
        shift = lax.pmean(shift, axis_name)
    d = x - shift
    # square before mean: the order of these two traced ops fixes the order in
    # which the backward pass adds x's cotangents; mean first leaves a chain
    # that XLA:CPU duplicates into every later block (compile time quadratic
    # in depth in a deep residual net). Same forward numbers either way.
    sq = jnp.square(d)
    m1, m2 = jnp.mean(d, axes), jnp.mean(sq, axes)
    if axis_name is not None:
        m1, m2 = lax.pmean((m1, m2), axis_name)
    mean = jnp.squeeze(shift, axes) + m1
    var = jnp.maximum(m2 - jnp.square(m1), 0.0)
    return mean, var


def _normalize(x, mean, var, eps, scale, bias, axes):
    """``(x - mean) * (rsqrt(var + eps) * scale) + bias`` in >= float32, cast back.

    flax's order of operations: the factor ``rsqrt(var + eps) * scale`` is
    formed on the statistics' shape first (per feature in batch norm), so the
    input meets one multiply, and the backward pass gets the gradients of
    ``scale`` and of the statistics from one product with ``x - mean``. Scaling
    ``(x - mean) * rsqrt(var + eps)`` by ``scale`` afterwards materialised that
    normalised tensor in the backward pass: a ResNet's gradient cost 1.3x flax's
    (issue 16).
    """
    work = compute_dtype(x.dtype)
    mean, var = jnp.expand_dims(mean, axes), jnp.expand_dims(var, axes)
    mul = lax.rsqrt(var + jnp.asarray(eps, work))
    if scale is not None:
        mul = mul * scale.astype(work)
    y = (x.astype(work) - mean) * mul
    if bias is not None:
        y = y + bias.astype(work)
    return y.astype(x.dtype)


def _affine_params(num_features, param_dtype, *, bias=True):
    num_features = check_int("num_features", num_features, lo=1)
    param_dtype = check_dtype("param_dtype", param_dtype, allow_none=False)
    params = {"scale": jnp.ones((num_features,), param_dtype)}
    if bias:
        params["bias"] = jnp.zeros((num_features,), param_dtype)
    return params


def _check_features(name, params, x):
    if x.ndim < 1:
        raise ValueError(f"{name}: input of shape {x.shape} has no feature axis")
    for k in ("scale", "bias"):
        p = params.get(k) if params is not None else None
        if p is not None and p.shape != (x.shape[-1],):
            raise ValueError(
                f"{name}: params[{k!r}] has shape {p.shape} but the input has "
                f"{x.shape[-1]} features (last axis of shape {x.shape})"
            )


# --------------------------------------------------------------------- batch norm


class BatchNormState(NamedTuple):
    """The running statistics of :func:`batch_norm`, a pytree.

    Attributes:
      mean: the running mean of each feature, shape ``(num_features,)``.
      var: the running (biased) variance of each feature, shape ``(num_features,)``.
    """

    mean: jax.Array
    var: jax.Array


def init_batch_norm(num_features: int, param_dtype=jnp.float32, *, stats_dtype=jnp.float32):
    """Parameters and state of :func:`batch_norm`.

    Args:
      num_features: size of the last (feature) axis.
      param_dtype: dtype of ``scale`` and ``bias`` (flax's name).
      stats_dtype: dtype of the running statistics (default float32).

    Returns:
      ``(params, state)``: ``params = {"scale": ones, "bias": zeros}`` and
      ``state = BatchNormState(mean=zeros, var=ones)``, each of shape
      ``(num_features,)``.

    Example:
      >>> params, state = init_batch_norm(16)
      >>> params["scale"].shape, state.var[:3]
      ((16,), Array([1., 1., 1.], dtype=float32))
    """
    params = _affine_params(num_features, param_dtype)
    stats_dtype = check_dtype("stats_dtype", stats_dtype, allow_none=False)
    state = BatchNormState(
        mean=jnp.zeros((num_features,), stats_dtype),
        var=jnp.ones((num_features,), stats_dtype),
    )
    return params, state


def batch_norm(
    params: dict,
    state: BatchNormState,
    x: jax.Array,
    *,
    training: bool,
    momentum=0.9,
    eps=1e-5,
    axis_name: str | None = None,
):
    """Batch normalisation over every axis but the last (features).

    In training the batch statistics are used: ``mean`` and the biased variance
    ``var = mean((x - mean)**2)`` over all axes except the last (and over the
    devices of ``axis_name``), and ``y = (x - mean) / sqrt(var + eps) * scale +
    bias``. The running statistics are updated as in flax's ``BatchNorm``::

        running = momentum * running + (1 - momentum) * batch

    (flax also uses the biased batch variance for the running variance; PyTorch
    uses the unbiased one and calls ``1 - momentum`` its momentum). In
    evaluation the running statistics are used and the state is returned
    unchanged.

    Args:
      params: ``{"scale", "bias"}`` from :func:`init_batch_norm`.
      state: the running statistics, a :class:`BatchNormState`.
      x: input ``(..., num_features)``, e.g. ``(batch, features)`` or NHWC.
      training: use (and update with) the batch statistics.
      momentum: decay of the running statistics, in ``[0, 1)``.
      eps: added to the variance, ``> 0``.
      axis_name: inside ``pmap`` / ``shard_map``, the mapped axis whose devices
        share statistics (``lax.pmean``), so that the result equals batch norm
        on the whole global batch (for equal per-device batches). ``None``
        takes the data axis of the enclosing
        :func:`jtricks.nn.data_parallel` (which the per-device steps of
        :mod:`jtricks.parallel` open), and is local outside one.

    Returns:
      ``(y, new_state)`` with ``y`` in ``x``'s dtype and ``new_state`` a
      :class:`BatchNormState` in the state's dtype.

    Raises:
      TypeError: if ``state`` is not a :class:`BatchNormState`.
      ValueError: if the state or params do not match the input's features, or
        ``momentum`` / ``eps`` is out of range.

    References:
      Ioffe, Szegedy. "Batch Normalization: Accelerating Deep Network Training by
      Reducing Internal Covariate Shift". https://arxiv.org/abs/1502.03167, 2015.

    Example:
      >>> params, state = init_batch_norm(3)
      >>> x = jnp.arange(12.0).reshape(4, 3)
      >>> y, state = batch_norm(params, state, x, training=True)
      >>> y.mean(axis=0), y.std(axis=0)     # normalised per feature
      (Array([0., 0., 0.], dtype=float32), Array([0.99999946, 0.99999946, 0.99999946], dtype=float32))
      >>> state.mean                       # running mean: 0.9 * 0 + 0.1 * batch mean
      Array([0.4500001 , 0.55000013, 0.65000015], dtype=float32)
    """
    check_bool("training", training)
    check_unit_interval("momentum", momentum)
    check_positive("eps", eps)
    x = jnp.asarray(x)
    _check_features("batch_norm", params, x)
    if not isinstance(state, BatchNormState):
        raise TypeError(
            f"batch_norm: state must be a BatchNormState(mean, var), got "
            f"{type(state).__name__}; build it with init_batch_norm({x.shape[-1]}) (a flax "
            "batch_stats dict d converts as BatchNormState(d['mean'], d['var']))"
        )
    for k, v in zip(BatchNormState._fields, state):
        if jnp.shape(v) != (x.shape[-1],):
            raise ValueError(
                f"batch_norm: state.{k} has shape {jnp.shape(v)} but the input has "
                f"{x.shape[-1]} features (last axis of shape {x.shape}); build the state "
                f"with init_batch_norm({x.shape[-1]})"
            )
    axes = tuple(range(x.ndim - 1))
    if not training:
        y = _normalize(x, state.mean, state.var, eps, params.get("scale"), params.get("bias"), axes)
        return y, state
    mean, var = _moments(x, axes, data_axis() if axis_name is None else axis_name)
    y = _normalize(x, mean, var, eps, params.get("scale"), params.get("bias"), axes)
    m = jnp.asarray(momentum, mean.dtype)
    new_state = BatchNormState(
        mean=(m * state.mean + (1 - m) * mean).astype(state.mean.dtype),
        var=(m * state.var + (1 - m) * var).astype(state.var.dtype),
    )
    return y, new_state


# ------------------------------------------------------------- stateless norms


def init_layer_norm(num_features: int, param_dtype=jnp.float32) -> dict:
    """Parameters of :func:`layer_norm`: ``{"scale": ones, "bias": zeros}``."""
    return _affine_params(num_features, param_dtype)


def layer_norm(params: dict | None, x: jax.Array, *, eps=1e-5) -> jax.Array:
    """Layer normalisation over the last axis, per example.

    ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with the mean and biased
    variance of each example's features (equal to flax ``LayerNorm`` with
    ``epsilon=eps``). ``params=None`` skips the affine map.

    References:
      Ba, Kiros, Hinton. "Layer Normalization". https://arxiv.org/abs/1607.06450, 2016.

    Example:
      >>> y = layer_norm(init_layer_norm(3), jnp.arange(6.0).reshape(2, 3))
      >>> y
      Array([[-1.2247356,  0.       ,  1.2247356],
             [-1.2247356,  0.       ,  1.2247356]], dtype=float32)
    """
    check_positive("eps", eps)
    x = jnp.asarray(x)
    _check_features("layer_norm", params, x)
    params = params or {}
    mean, var = _moments(x, (-1,))
    return _normalize(x, mean, var, eps, params.get("scale"), params.get("bias"), (-1,))


def init_group_norm(num_features: int, param_dtype=jnp.float32) -> dict:
    """Parameters of :func:`group_norm`: ``{"scale": ones, "bias": zeros}``."""
    return _affine_params(num_features, param_dtype)


def group_norm(params: dict | None, x: jax.Array, num_groups: int, *, eps=1e-5) -> jax.Array:
    """Group normalisation: statistics per example over each group of channels.

    The channels (last axis) are split into ``num_groups`` consecutive groups;
    mean and biased variance are taken per example (first axis) over all
    other axes and the channels of a group (equal to flax ``GroupNorm``).
    ``num_groups = 1`` normalises each example as a whole; ``num_groups =
    channels`` is :func:`instance_norm`.

    Args:
      params: ``{"scale", "bias"}`` over the channels, or ``None``.
      x: input ``(batch, ..., channels)``, e.g. NHWC.
      num_groups: number of groups; must divide the number of channels.
      eps: added to the variance.

    Raises:
      ValueError: if ``num_groups`` does not divide the channels, or ``x`` has
        fewer than two axes.

    References:
      Wu, He. "Group Normalization". https://arxiv.org/abs/1803.08494, 2018.

    Example:
      >>> x = jnp.ones((2, 4, 4, 8))
      >>> y = group_norm(init_group_norm(8), x, num_groups=4)
      >>> y.shape
      (2, 4, 4, 8)
    """
    check_positive("eps", eps)
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"group_norm: input of shape {x.shape} needs (batch, ..., channels)")
    num_groups = check_int("num_groups", num_groups, lo=1)
    channels = x.shape[-1]
    if channels % num_groups:
        raise ValueError(
            f"num_groups={num_groups} must divide the number of channels {channels}"
        )
    _check_features("group_norm", params, x)
    params = params or {}
    grouped = x.reshape(x.shape[:-1] + (num_groups, channels // num_groups))
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)  # all but batch and group axes
    mean, var = _moments(grouped, axes)
    y = _normalize(grouped, mean, var, eps, None, None, axes).reshape(x.shape)
    return _affine(y, params)


def _affine(y, params):
    if not params:
        return y
    work = compute_dtype(y.dtype)
    out = y.astype(work)
    if params.get("scale") is not None:
        out = out * params["scale"].astype(work)
    if params.get("bias") is not None:
        out = out + params["bias"].astype(work)
    return out.astype(y.dtype)


def init_instance_norm(num_features: int, param_dtype=jnp.float32) -> dict:
    """Parameters of :func:`instance_norm`: ``{"scale": ones, "bias": zeros}``."""
    return _affine_params(num_features, param_dtype)


def instance_norm(params: dict | None, x: jax.Array, *, eps=1e-5) -> jax.Array:
    """Instance normalisation: statistics per example and channel over the spatial axes.

    For NHWC input the mean and biased variance are taken over H and W (every
    axis but the first and the last), equal to flax ``InstanceNorm``.

    References:
      Ulyanov, Vedaldi, Lempitsky. "Instance Normalization: The Missing Ingredient
      for Fast Stylization". https://arxiv.org/abs/1607.08022, 2016.

    Example:
      >>> y = instance_norm(init_instance_norm(3), jnp.ones((2, 4, 4, 3)))
      >>> y.shape
      (2, 4, 4, 3)
    """
    check_positive("eps", eps)
    x = jnp.asarray(x)
    if x.ndim < 3:
        raise ValueError(
            f"instance_norm: input of shape {x.shape} needs (batch, spatial..., channels)"
        )
    _check_features("instance_norm", params, x)
    params = params or {}
    axes = tuple(range(1, x.ndim - 1))
    mean, var = _moments(x, axes)
    return _normalize(x, mean, var, eps, params.get("scale"), params.get("bias"), axes)


def init_rms_norm(num_features: int, param_dtype=jnp.float32) -> dict:
    """Parameters of :func:`rms_norm`: ``{"scale": ones}``."""
    return _affine_params(num_features, param_dtype, bias=False)


def rms_norm(params: dict | None, x: jax.Array, *, eps=1e-5) -> jax.Array:
    """Root-mean-square normalisation over the last axis (no centring).

    ``y = x / sqrt(mean(x**2) + eps) * scale`` (flax ``RMSNorm`` with
    ``epsilon=eps``).

    References:
      Zhang, Sennrich. "Root Mean Square Layer Normalization".
      https://arxiv.org/abs/1910.07467, 2019.

    Example:
      >>> y = rms_norm(init_rms_norm(3), jnp.arange(6.0).reshape(2, 3))
      >>> y
      Array([[0.       , 0.7745943, 1.5491886],
             [0.7348467, 0.9797956, 1.2247444]], dtype=float32)
    """
    check_positive("eps", eps)
    x = jnp.asarray(x)
    _check_features("rms_norm", params, x)
    params = params or {}
    work = compute_dtype(x.dtype)
    ms = jnp.mean(jnp.square(x.astype(work)), -1, keepdims=True)
    y = x.astype(work) * lax.rsqrt(ms + jnp.asarray(eps, work))
    if params.get("scale") is not None:
        y = y * params["scale"].astype(work)
    return y.astype(x.dtype)


def init_weight_norm(kernel: jax.Array) -> dict:
    """Weight-norm parameters that reproduce ``kernel`` (up to ``eps``).

    Returns:
      ``{"direction": kernel, "scale": g}`` with ``g`` the norm of each output
      column (over every axis but the last), shape ``(out,)``.

    Example:
      >>> w = jnp.ones((3, 2))
      >>> jnp.allclose(weight_norm(init_weight_norm(w)), w)
      Array(True, dtype=bool)
    """
    kernel = jnp.asarray(kernel)
    if kernel.ndim < 2:
        raise ValueError(f"init_weight_norm: kernel of shape {kernel.shape} needs (..., in, out)")
    work = compute_dtype(kernel.dtype)
    axes = tuple(range(kernel.ndim - 1))
    g = jnp.sqrt(jnp.sum(jnp.square(kernel.astype(work)), axes))
    return {"direction": kernel, "scale": g.astype(kernel.dtype)}


def weight_norm(params: dict, *, eps=1e-12) -> jax.Array:
    """The kernel of a weight-normalised layer: ``w = scale * v / ||v||``.

    ``||v||`` is the Euclidean norm of each output column of ``v =
    params["direction"]`` (over every axis but the last), so the length of each
    column is learned by ``scale`` and its direction by ``v``. Computed as
    ``v * scale / sqrt(sum(v**2) + eps)``: a zero column gives zeros, not NaN.

    Use the result as the ``kernel`` of :func:`dense` or :func:`conv2d`.

    References:
      Salimans, Kingma. "Weight Normalization: A Simple Reparameterization to
      Accelerate Training of Deep Neural Networks". https://arxiv.org/abs/1602.07868, 2016.

    Example:
      >>> p = init_weight_norm(jnp.ones((3, 2)))
      >>> weight_norm(p).shape
      (3, 2)
    """
    check_positive("eps", eps)
    v = jnp.asarray(params["direction"])
    if params["scale"].shape != (v.shape[-1],):
        raise ValueError(
            f"weight_norm: scale of shape {params['scale'].shape} does not match the "
            f"direction's {v.shape[-1]} output columns"
        )
    work = compute_dtype(v.dtype)
    axes = tuple(range(v.ndim - 1))
    sq = jnp.sum(jnp.square(v.astype(work)), axes, keepdims=True)
    w = v.astype(work) * (params["scale"].astype(work) * lax.rsqrt(sq + jnp.asarray(eps, work)))
    return w.astype(v.dtype)
