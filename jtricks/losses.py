"""Losses: cross-entropy with optional class weights, and accuracy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jtricks._numeric import compute_dtype
from jtricks._validate import check_array, check_number, concrete_value, show
from jtricks.data._sampling import check_labels

__all__ = ["accuracy", "cross_entropy"]


def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Mean softmax cross-entropy with integer labels, optionally class-weighted.

    Without weights: ``mean_i [-log softmax(logits_i)[y_i]]`` (equal to the mean of
    ``optax.losses.softmax_cross_entropy_with_integer_labels``). With weights ``w``
    (one per class), the weighted mean ``sum_i w[y_i] l_i / sum_i w[y_i]`` (PyTorch's
    ``CrossEntropyLoss(weight=w)``): it does not depend on the scale of ``w``, and
    with ``w = jtricks.data.class_weights(labels, num_classes)`` it equals the mean
    over classes of each class's mean loss, i.e. the expected loss on a balanced
    resampling. Computed in at least float32 (bf16 / f16 logits give a float32 loss).

    Args:
      logits: ``(..., num_classes)`` unnormalised scores.
      labels: integer class indices of shape ``logits.shape[:-1]``.
      class_weights: optional ``(num_classes,)`` non-negative weights. A batch
        whose labels all have weight 0 has loss 0 and gradient 0 (PyTorch gives
        NaN).

    Returns:
      A scalar loss. Under ``jit``, labels outside ``[0, num_classes)`` give NaN (so
      ``apply_if_finite`` or ``jtricks.diagnose`` notice) instead of a silent 0.

    Raises:
      ValueError: if concrete labels fall outside ``[0, num_classes)``, shapes do
        not match, or concrete ``class_weights`` are negative, not finite or all 0.
      TypeError: if labels are not integers or ``class_weights`` not real numbers.

    Example:
      >>> logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
      >>> labels = jnp.array([0, 1, 1])
      >>> cross_entropy(logits, labels)                  # the third example is wrong
      Array(0.80..., dtype=float32)
      >>> w = jtricks.data.class_weights(labels, 2)      # class 0 is rarer: weighted up
      >>> w
      Array([1.5 , 0.75], dtype=float32)
      >>> cross_entropy(logits, labels, class_weights=w)
      Array(0.626..., dtype=float32)
    """
    logits, labels = _logits_and_labels(logits, labels)
    num_classes = logits.shape[-1]
    check_labels(labels, num_classes)
    if class_weights is not None:
        check_number("class_weights", class_weights, lo=0, scalar=False)
        weights = jnp.asarray(class_weights)
        if weights.shape != (num_classes,):
            raise ValueError(
                f"class_weights has shape {weights.shape}, expected ({num_classes},)"
            )
        concrete = concrete_value(weights)
        if concrete is not None and not concrete.any():
            raise ValueError(f"class_weights={show(class_weights)} are all 0: the weighted "
                             "mean would be 0/0")
        class_weights = weights
    return _cross_entropy(logits, labels, class_weights)


def _logits_and_labels(logits: ArrayLike, labels: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Checks ``(..., num_classes)`` logits and labels of shape ``logits.shape[:-1]``."""
    logits = check_array("logits", logits, min_ndim=1)
    if logits.shape[-1] == 0:
        raise ValueError(f"logits has shape {logits.shape}: no classes on its last axis")
    labels = jnp.asarray(labels)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels have shape {labels.shape}, expected {logits.shape[:-1]} for logits of "
            f"shape {logits.shape} (labels are class indices, not one-hot)"
        )
    return logits, labels


@jax.jit
def _cross_entropy(logits, labels, class_weights):
    num_classes = logits.shape[-1]
    dtype = compute_dtype(logits.dtype)
    log_probs = jax.nn.log_softmax(logits.astype(dtype), axis=-1)
    valid = (labels >= 0) & (labels < num_classes)
    safe = jnp.where(valid, labels, 0)
    nll = -jnp.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]
    nll = jnp.where(valid, nll, jnp.nan)
    if class_weights is None:
        return jnp.mean(nll)
    wi = class_weights.astype(dtype)[safe]
    total = jnp.sum(wi)
    # A batch whose examples all have weight 0 carries nothing to learn: loss 0 and a zero
    # gradient, where PyTorch's 0 / 0 gives NaN and poisons the parameters.
    some = total > 0
    return jnp.where(some, jnp.sum(wi * nll) / jnp.where(some, total, 1), 0).astype(dtype)


def accuracy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """Fraction of examples whose largest logit is the label.

    Args:
      logits: ``(..., num_classes)`` scores.
      labels: integer class indices of shape ``logits.shape[:-1]``.

    Returns:
      A float32 scalar in ``[0, 1]``.

    Example:
      >>> logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
      >>> accuracy(logits, jnp.array([0, 1, 1]))
      Array(0.6666667, dtype=float32)
    """
    logits, labels = _logits_and_labels(logits, labels)
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels, dtype=jnp.float32)
