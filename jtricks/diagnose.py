"""Diagnostics for vanishing and exploding gradients.

- ``gradient_health``: global and per-layer gradient norms, non-finite counts and
  exploding / vanishing flags, cheap enough to log every step under ``jit``.
- ``activation_health`` (``dead_fraction``, ``saturated_fraction``): dead ReLUs and
  tanh / sigmoid units on the flat part of their curve.
- ``signal_propagation``: how the spread of activations (forward) and gradients
  (backward) evolves through a deep plain network for a given initializer and
  activation — N(0, 1) weights explode or vanish, Glorot / He keep it steady.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jtricks._numeric import global_norm as _global_norm
from jtricks._numeric import upcast
from jtricks._validate import (
    check_array,
    check_callable,
    check_choice,
    check_dtype,
    check_int,
    check_positive,
    check_unit_interval,
    concrete_value,
    show,
)

__all__ = [
    "ActivationHealth",
    "GradientHealth",
    "SignalPropagation",
    "activation_health",
    "dead_fraction",
    "gradient_health",
    "saturated_fraction",
    "signal_propagation",
]

#: Default thresholds of ``gradient_health`` on the global gradient norm.
EXPLODING_NORM = 1e3
VANISHING_NORM = 1e-7


class GradientHealth(NamedTuple):
    """The result of ``gradient_health`` (a pytree; log it or ``jnp.where`` on it).

    Attributes:
      global_norm: the L2 norm over every leaf (non-finite if any entry is).
      layer_norms: the L2 norm of each leaf, a pytree like the gradients.
      nonfinite: int32, the number of NaN / inf entries.
      exploding: bool, ``nonfinite > 0`` or ``global_norm > explode_threshold``.
      vanishing: bool, a finite ``global_norm < vanish_threshold``.
      vanishing_layers: int32, the number of leaves with a norm below
        ``vanish_threshold`` (e.g. the early layers of a deep sigmoid network).
    """

    global_norm: jax.Array
    layer_norms: Any
    nonfinite: jax.Array
    exploding: jax.Array
    vanishing: jax.Array
    vanishing_layers: jax.Array


def gradient_health(
    grads: Any,
    *,
    explode_threshold: float | ArrayLike = EXPLODING_NORM,
    vanish_threshold: float | ArrayLike = VANISHING_NORM,
) -> GradientHealth:
    """Norms, non-finite counts and exploding / vanishing flags of a gradient pytree.

    The thresholds are on absolute L2 norms, so they depend on the model and the
    loss scale; the defaults (explode above ``1e3``, vanish below ``1e-7``) suit a
    mean loss of order 1 with float32 parameters: a global norm of 1e3 makes an
    SGD step with learning rate 0.1 move the weights by 100, and below 1e-7 the
    updates fall under float32 resolution of weights of order 1. Compare the
    per-layer norms to see where a signal dies. Works under ``jit``.

    Args:
      grads: a pytree of gradient arrays.
      explode_threshold: global norm above which ``exploding`` is set (> 0).
      vanish_threshold: norm below which ``vanishing`` / ``vanishing_layers`` count (> 0).

    Returns:
      A ``GradientHealth``.

    Raises:
      ValueError: for non-positive thresholds.

    Example:
      >>> grads = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([1e-9])}
      >>> health = gradient_health(grads)
      >>> health.global_norm, health.exploding, health.vanishing_layers
      (Array(5., dtype=float32), Array(False, dtype=bool), Array(1, dtype=int32))
      >>> gradient_health({"w": jnp.array([jnp.nan, 1.0])}).exploding   # non-finite
      Array(True, dtype=bool)
    """
    check_positive("explode_threshold", explode_threshold)
    check_positive("vanish_threshold", vanish_threshold)
    vanish, explode = concrete_value(vanish_threshold), concrete_value(explode_threshold)
    if vanish is not None and explode is not None and vanish >= explode:
        raise ValueError(f"vanish_threshold={show(vanish_threshold)} must be below "
                         f"explode_threshold={show(explode_threshold)}")
    return _gradient_health(grads, explode_threshold, vanish_threshold)


@jax.jit
def _gradient_health(grads, explode_threshold, vanish_threshold) -> GradientHealth:
    global_norm = _global_norm(grads)
    layer_norms = jax.tree.map(lambda g: jnp.sqrt(jnp.sum(jnp.square(upcast(g)))), grads)
    nonfinite = sum(
        (jnp.sum(~jnp.isfinite(g), dtype=jnp.int32) for g in jax.tree.leaves(grads)
         if jnp.issubdtype(jnp.asarray(g).dtype, jnp.inexact)),
        jnp.zeros((), jnp.int32),
    )
    exploding = (nonfinite > 0) | ~jnp.isfinite(global_norm) | (global_norm > explode_threshold)
    vanishing = jnp.isfinite(global_norm) & (global_norm < vanish_threshold)
    vanishing_layers = sum(
        ((n < vanish_threshold).astype(jnp.int32) for n in jax.tree.leaves(layer_norms)),
        jnp.zeros((), jnp.int32),
    )
    return GradientHealth(global_norm, layer_norms, nonfinite, exploding, vanishing, vanishing_layers)


def dead_fraction(activations: ArrayLike) -> jax.Array:
    """Fraction of units (last axis) that are never positive over the batch.

    For ReLU outputs (or pre-activations) a unit that is ``<= 0`` for every example
    passes no gradient at all: a dead ReLU.

    Args:
      activations: ``(..., units)``; every leading axis counts as examples.

    Returns:
      float32 scalar in ``[0, 1]``.

    Example:
      >>> x = jnp.array([[1.0, -1.0], [2.0, 1.0]])
      >>> w = jnp.array([[1.0, -1.0, 0.5], [0.0, -1.0, 0.5]])
      >>> jax.nn.relu(x @ w)                             # unit 1 never fires
      Array([[1. , 0. , 0. ],
             [2. , 0. , 1.5]], dtype=float32)
      >>> dead_fraction(jax.nn.relu(x @ w))
      Array(0.33333334, dtype=float32)
    """
    return _dead_fraction(check_array("activations", activations, min_ndim=1) <= 0)


@jax.jit
def _dead_fraction(flat: jax.Array) -> jax.Array:
    """Fraction of units (last axis) flat for every example."""
    return jnp.mean(jnp.all(flat.reshape(-1, flat.shape[-1]), axis=0), dtype=jnp.float32)


_FLAT = {
    # distance of the output from the asymptotes
    "tanh": lambda y: 1.0 - jnp.abs(y),
    "sigmoid": lambda y: jnp.minimum(y, 1.0 - y),
}


def saturated_fraction(activations: ArrayLike, activation: str = "tanh", margin: float = 0.01) -> jax.Array:
    """Fraction of tanh / sigmoid outputs on the flat part of the curve.

    An output is saturated when it lies within ``margin`` of an asymptote:
    ``|y| > 1 - margin`` for tanh (derivative ``1 - y**2 < 2 margin``, under 2% of
    its maximum 1 by default), ``y < margin`` or ``y > 1 - margin`` for sigmoid
    (derivative ``y (1 - y) < margin``, under 4% of its maximum 0.25).

    Args:
      activations: the activation outputs (after tanh / sigmoid).
      activation: ``"tanh"`` or ``"sigmoid"``.
      margin: distance from the asymptote, in ``(0, 1)``.

    Returns:
      float32 scalar in ``[0, 1]``.

    Example:
      >>> x = jnp.array([[0.1, 5.0], [-4.0, 0.2]])
      >>> saturated_fraction(jnp.tanh(x), "tanh")        # 5 and -4 are in the flat region
      Array(0.5, dtype=float32)
    """
    check_choice("activation", activation, tuple(_FLAT))
    check_unit_interval("margin", margin)
    return _saturated(activations, activation, margin)


@functools.partial(jax.jit, static_argnums=1)
def _saturated(activations, activation: str, margin) -> jax.Array:
    distance = _FLAT[activation](upcast(activations))
    return jnp.mean(distance < margin, dtype=jnp.float32)


class ActivationHealth(NamedTuple):
    """Per-layer activation statistics (pytrees like the input).

    Attributes:
      dead_fraction: fraction of units inactive for the whole batch (ReLU: never
        positive; tanh / sigmoid: saturated for every example).
      saturated_fraction: fraction of entries in the flat region (ReLU: ``<= 0``;
        tanh / sigmoid: within ``margin`` of an asymptote).
    """

    dead_fraction: Any
    saturated_fraction: Any


def activation_health(activations: Any, activation: str = "relu", margin: float = 0.01) -> ActivationHealth:
    """Dead and saturated fractions of every layer's activations.

    Args:
      activations: a pytree of activation outputs ``(batch, ..., units)``, e.g. one
        entry per hidden layer.
      activation: ``"relu"``, ``"tanh"`` or ``"sigmoid"``.
      margin: saturation margin for tanh / sigmoid (see ``saturated_fraction``).

    Returns:
      An ``ActivationHealth`` of float32 scalars, one per layer.

    Example:
      >>> h1 = jnp.array([[1.0, 0.0], [2.0, 0.0]])           # unit 1 dead
      >>> h2 = jnp.array([[1.0, 3.0], [0.0, 2.0]])
      >>> health = activation_health({"h1": h1, "h2": h2}, "relu")
      >>> health.dead_fraction
      {'h1': Array(0.5, dtype=float32), 'h2': Array(0., dtype=float32)}
      >>> health.saturated_fraction["h2"]
      Array(0.25, dtype=float32)
    """
    check_choice("activation", activation, ("relu", *_FLAT))
    check_unit_interval("margin", margin)
    return _activation_health(activations, activation, margin)


@functools.partial(jax.jit, static_argnums=1)
def _activation_health(activations, activation: str, margin) -> ActivationHealth:
    def flat(a):
        a = upcast(a)
        return a <= 0 if activation == "relu" else _FLAT[activation](a) < margin

    return ActivationHealth(
        jax.tree.map(lambda a: _dead_fraction(flat(a)), activations),
        jax.tree.map(lambda a: jnp.mean(flat(a), dtype=jnp.float32), activations),
    )


class SignalPropagation(NamedTuple):
    """Per-layer spreads through a deep plain network (arrays of length ``depth``).

    Attributes:
      preactivation_std: std of ``z_l = h_{l-1} @ W_l`` at each layer.
      activation_std: std of ``h_l = activation(z_l)`` (the forward signal).
      gradient_std: std of ``dL/dh_l`` for a random N(0, 1) output gradient (the
        backward signal; layer 0 is the first, i.e. the deepest point of backprop).
    """

    preactivation_std: jax.Array
    activation_std: jax.Array
    gradient_std: jax.Array


def signal_propagation(
    initializer: Callable[..., jax.Array],
    activation: Callable[[jax.Array], jax.Array],
    depth: int,
    width: int,
    *,
    batch_size: int = 256,
    key: jax.Array | None = None,
    dtype=jnp.float32,
) -> SignalPropagation:
    """Measures how activations and gradients spread through ``depth`` layers.

    Builds a plain network of ``depth`` square ``width x width`` layers without
    biases, weights drawn from ``initializer``, feeds a batch of N(0, 1) inputs and
    backpropagates an N(0, 1) gradient from the output. Ratios far from 1 between
    the first and last layer reveal exploding or vanishing signals: with N(0, 1)
    weights the spread is multiplied by about ``sqrt(width)`` per linear layer
    (``sqrt(width / 2)`` with ReLU) until it overflows, and tanh saturates so its
    backward signal explodes; Glorot keeps it for linear layers (with tanh it
    shrinks slowly, to about a quarter over 20 layers of width 256), He for ReLU.

    Args:
      initializer: ``init(key, shape, dtype)``, e.g. ``jtricks.init.he_normal()`` or
        ``jax.nn.initializers.normal(1.0)``.
      activation: e.g. ``jax.nn.relu`` or ``jnp.tanh``.
      depth: number of layers (>= 1).
      width: units per layer (>= 1).
      batch_size: number of random inputs.
      key: PRNG key for weights, inputs and output gradient (default ``PRNGKey(0)``).
      dtype: dtype of weights and activations (overflow shows as inf / NaN).

    Returns:
      A ``SignalPropagation`` of float32 arrays of shape ``(depth,)``.

    References:
      X. Glorot, Y. Bengio, "Understanding the difficulty of training deep
      feedforward neural networks", AISTATS,
      https://proceedings.mlr.press/v9/glorot10a.html, 2010.
      K. He, X. Zhang, S. Ren, J. Sun, "Delving Deep into Rectifiers",
      https://arxiv.org/abs/1502.01852, 2015.

    Example:
      >>> sp = signal_propagation(jtricks.init.he_normal(), jax.nn.relu, 20, 256)
      >>> sp.activation_std[-1] / sp.activation_std[0]   # He keeps ReLU signals: about 1
      Array(0.79..., dtype=float32)
      >>> sp = signal_propagation(jtricks.init.normal(1.0), jax.nn.relu, 5, 256)
      >>> sp.activation_std[-1] / sp.activation_std[0] > 1e4   # N(0, 1): explodes
      Array(True, dtype=bool)
    """
    depth = check_int("depth", depth, lo=1)
    width = check_int("width", width, lo=1)
    batch_size = check_int("batch_size", batch_size, lo=2)
    check_callable("initializer", initializer)
    check_callable("activation", activation)
    key = jax.random.PRNGKey(0) if key is None else key
    dtype = check_dtype("dtype", dtype, allow_none=False)
    k_w, k_x, k_g = jax.random.split(key, 3)
    # Eager calls: the initializer's random draws compile once per shape and are
    # reused by every initializer, whereas a jit over the initializer would
    # recompile the PRNG for each new initializer object.
    weights = jnp.stack([initializer(k, (width, width), dtype) for k in jax.random.split(k_w, depth)])
    x = jax.random.normal(k_x, (batch_size, width), dtype)
    g = jax.random.normal(k_g, (batch_size, width), dtype)
    return _propagate(weights, x, g, activation)


@functools.partial(jax.jit, static_argnums=3)
def _propagate(weights, x, g, activation):
    """Forward through the stacked square layers, backward from the output gradient ``g``."""

    def forward(perturbations):
        def layer(h, inputs):
            w, p = inputs
            z = h @ w
            h = activation(z) + p  # p = 0: its gradient is dL/dh
            return h, (z, h)

        return jax.lax.scan(layer, x, (weights, perturbations))

    _, vjp, (zs, hs) = jax.vjp(forward, jnp.zeros(weights.shape[:1] + x.shape, x.dtype), has_aux=True)
    (grads,) = vjp(g)

    def stds(a):
        return jnp.std(upcast(a), axis=(1, 2))

    return SignalPropagation(stds(zs), stds(hs), stds(grads))


# Every NamedTuple here serializes with jax.export (jtricks/_export.py).
from jtricks._export import register_namedtuples as _register_namedtuples  # noqa: E402

_register_namedtuples(__name__)
