"""Explicit regularisation terms to add to a loss: L1, L2 and gradient penalties.

Weight decay can also live in the optimizer (``jtricks.optim.add_decayed_weights``,
``add_l1_decay``); these penalties are the loss-side equivalents, with matching
gradients: ``grad(c * l2_penalty)(w) == c * w`` and ``grad(c * l1_penalty)(w) ==
c * sign(w)``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jtricks._numeric import ordered_sum, upcast
from jtricks._validate import check_array, check_callable, check_number, static_mask

__all__ = ["gradient_penalty", "l1_penalty", "l2_penalty"]


def _masked_leaves(params: Any, mask: Any) -> list:
    """The floating-point leaves of ``params`` where ``mask`` is ``True``."""
    if mask is not None:
        mask = static_mask("mask", mask, params)
        params = jax.tree.map(lambda m, p: p if m else None, mask, params)
    return [check_array(f"params{jax.tree_util.keystr(path)}", leaf, kind="float")
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)]


def _sum(leaves, fn) -> jax.Array:
    # a float32 zero first (an empty tree gives 0.0), then the leaves' sums in order, added
    # by a loop past 64 leaves (a chain of adds compiles in super-quadratic time)
    return ordered_sum([jnp.zeros((), jnp.float32)] + [jnp.sum(fn(upcast(leaf))) for leaf in leaves])


def l1_penalty(params: Any, mask: Any = None) -> jax.Array:
    """``sum |w|`` over every (masked) parameter: favours sparse weights.

    Args:
      params: a pytree of arrays.
      mask: optional pytree of bools whose structure is a prefix of ``params``'
        (one bool per leaf or per subtree, as in ``optax.masked``), or a callable
        returning one; ``True`` where the penalty applies, e.g. weights but not
        biases.

    Returns:
      A scalar (float32, or float64 for float64 params).

    Example:
      >>> params = {"w": jnp.array([[1.0, -2.0]]), "b": jnp.array([3.0])}
      >>> l1_penalty(params)
      Array(6., dtype=float32)
      >>> l1_penalty(params, mask={"w": True, "b": False})   # weights only
      Array(3., dtype=float32)
    """
    return _sum(_masked_leaves(params, mask), lambda x: x * jnp.sign(x))  # gradient sign(w), 0 at 0


def l2_penalty(params: Any, mask: Any = None) -> jax.Array:
    """``0.5 * sum w**2`` over every (masked) parameter: favours small weights.

    The factor 1/2 makes ``grad(c * l2_penalty)(w) == c * w``, the update of
    ``add_decayed_weights(c)`` (classic L2 weight decay with SGD).

    Args:
      params: a pytree of arrays.
      mask: as in ``l1_penalty``.

    Returns:
      A scalar.

    Example:
      >>> params = {"w": jnp.array([[1.0, -2.0]]), "b": jnp.array([3.0])}
      >>> l2_penalty(params, mask=lambda p: {k: k != "b" for k in p})   # not the bias
      Array(2.5, dtype=float32)
    """
    return 0.5 * _sum(_masked_leaves(params, mask), jnp.square)


def gradient_penalty(
    fn: Callable[[jax.Array], jax.Array],
    x: ArrayLike,
    target: ArrayLike = 0.0,
) -> jax.Array:
    """Mean over examples of ``(||d fn(x_i) / d x_i|| - target)**2``.

    Pushes the norm of the input gradient toward ``target``: ``target=0`` is the
    smoothness penalty of double backpropagation (Drucker & LeCun; it equals the
    mean squared gradient norm), ``target=1`` the WGAN-GP penalty (Gulrajani et al.).
    The gradient of ``sum(fn(x))`` with respect to ``x`` is taken, which is the
    per-example input gradient when examples do not interact (no batch norm in
    training mode). The norm is safe at zero (no NaN gradient).

    Args:
      fn: maps the batch ``x`` of shape ``(n, ...)`` to per-example scalars ``(n,)``
        (e.g. the per-example loss, or one logit), with the parameters closed over.
        Not the mean loss: that would scale every input gradient by ``1/n``.
      x: the input batch.
      target: the desired gradient norm (may be traced).

    Returns:
      A scalar penalty, differentiable with respect to the parameters in ``fn``.

    References:
      H. Drucker, Y. LeCun, "Improving generalization performance using double
      backpropagation", IEEE Trans. Neural Networks,
      https://doi.org/10.1109/72.165600, 1992.
      I. Gulrajani, F. Ahmed, M. Arjovsky, V. Dumoulin, A. Courville, "Improved
      Training of Wasserstein GANs", https://arxiv.org/abs/1704.00028, 2017.

    Example:
      >>> w = jnp.array([[1.0, -1.0], [2.0, 0.5]])
      >>> x, y = jnp.array([[1.0, 0.0], [0.5, 0.5]]), jnp.array([0, 1])
      >>> def per_example_loss(x):
      ...     return optax.softmax_cross_entropy_with_integer_labels(x @ w, y)
      >>> penalty = gradient_penalty(per_example_loss, x)
      >>> penalty
      Array(2.31..., dtype=float32)
      >>> loss = per_example_loss(x).mean() + 0.1 * penalty
    """
    check_callable("fn", fn)
    x = check_array("x", x, kind="float", min_ndim=1)
    check_number("target", target)
    grads = jax.grad(lambda inp: jnp.sum(fn(inp)))(x)
    g = upcast(grads.reshape(grads.shape[0], -1))
    sq = jnp.sum(jnp.square(g), axis=-1)
    positive = sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    return jnp.mean(jnp.square(norm - target))
