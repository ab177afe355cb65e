"""Choosing the learning rate: a range test over ``K`` rates as one ``vmap``-ed program.

Smith's range test (2017, §3.3) trains briefly while the learning rate grows and
reads off where the loss starts to fall and where it stops falling. Here every
rate gets its own short training from the same initial weights and data order:
:func:`lr_range_test` runs ``K`` constant rates (plus the rate 0, which measures
the untrained loss) through :func:`jtricks.sweep.train`, so the whole test is one
compiled program, and changing the rates (not their number) does not compile
again. The loss after the budget, as a function of the rate, falls (too small a
rate learns slowly), reaches a valley, then rises or diverges (too large).

The suggested rate (:func:`suggest_learning_rate`) is the middle of that valley
on the log axis: the rates around the lowest loss whose loss made at least
``1 - tolerance`` of the largest drop from the untrained loss form the valley
``[low, high]`` (Smith's two bounds, read from the loss); the suggestion is
``sqrt(low * high)``, the rate farthest from both the slow start and the
divergence edge. This is not fastai's default rule: fastai's ``lr_find``
suggests the rate of minimum loss divided by 10, or the rate of steepest
descent, from one run whose rate grows during training; with one constant rate
per member, the minimum is the best rate for the budget itself, and a longer
training prefers a somewhat smaller one, which the midpoint of the valley gives.

Example:
  >>> def build(h):
  ...     return jtricks.nn.mlp([16, 3]), jtricks.optim.sgd(h["learning_rate"])
  >>> x = jax.random.normal(jax.random.key(0), (96, 4))
  >>> y = (x[:, 0] > 0).astype(jnp.int32) + (x[:, 1] > 1).astype(jnp.int32)
  >>> result = lr_range_test(build, (x, y), key=jax.random.key(1),
  ...                        learning_rates=np.geomspace(1e-3, 10.0, 9), batch_size=32)
  >>> result.losses.shape
  (9,)
  >>> bool(result.valley[0] <= result.suggestion <= result.valley[1])
  True
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from jax.typing import ArrayLike

import numpy as np

from jtricks import _validate
from jtricks._optional import require


class LRRangeResult(NamedTuple):
    """What :func:`lr_range_test` returns (host NumPy values).

    Attributes:
      learning_rates: ``float64[K]``, the rates tested, increasing.
      losses: ``float64[K]``, the loss on ``val_data`` after the budget at each
        rate (NaN or inf where training diverged).
      initial_loss: the loss of the untrained model (the rate 0).
      suggestion: the suggested rate (:func:`suggest_learning_rate`); NaN when
        no rate lowered the loss.
      valley: ``(low, high)``, the smallest and largest rates of the valley; NaN
        when no rate lowered the loss.
      tolerance: the valley's tolerance (a fraction of the largest drop).
      curves: the per-epoch curves of every rate, ``{name: float32[K, epochs]}``
        (``train_loss``, ``val_loss``, ``val_accuracy``, ``grad_norm``, ...).
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    initial_loss: float
    suggestion: float
    valley: tuple
    tolerance: float
    curves: dict


def suggest_learning_rate(learning_rates: ArrayLike, losses: ArrayLike,
                          initial_loss: float, *, tolerance: float = 0.05):
    """The valley of a range test and the rate in its middle.

    With ``L0 = initial_loss`` and ``L*`` the lowest finite loss, at rate
    ``i*``, the valley is the contiguous run of rates around ``i*`` whose loss is
    at most ``L* + tolerance * (L0 - L*)`` (a diverged, non-finite loss never
    is). The suggestion is the geometric mean of the valley's smallest and
    largest rate.

    Args:
      learning_rates: the rates, strictly increasing and positive.
      losses: the loss after training at each rate.
      initial_loss: the loss before training.
      tolerance: in ``(0, 1)``: how close to the lowest loss (as a fraction of
        the drop ``L0 - L*``) a rate must come to be in the valley.

    Returns:
      ``(suggestion, (low, high))``, all NaN when no rate has a finite loss
      below ``initial_loss``.

    Raises:
      ValueError: for fewer than two rates, rates that are not positive and
        strictly increasing, ``losses`` of another length, or a ``tolerance``
        outside ``(0, 1)``.

    Example:
      >>> suggest_learning_rate([1e-3, 1e-2, 1e-1, 1.0], [2.0, 0.5, 0.45, np.nan], 2.3)
      (0.0316..., (0.01, 0.1))

    References:
      L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", WACV,
      https://arxiv.org/abs/1506.01186, 2017 (§3.3, the range test and its two bounds).
    """
    rates = _check_rates(learning_rates)
    loss = np.asarray(losses, np.float64)
    if loss.shape != rates.shape:
        raise ValueError(f"losses has shape {loss.shape} but learning_rates has {rates.shape}")
    _validate.check_number("tolerance", tolerance, lo=0, hi=1, lo_open=True, hi_open=True)
    finite = np.isfinite(loss)
    if not finite.any() or np.min(loss[finite]) >= initial_loss:
        return float("nan"), (float("nan"), float("nan"))
    best = int(np.argmin(np.where(finite, loss, np.inf)))
    threshold = loss[best] + tolerance * (initial_loss - loss[best])
    inside = finite & (loss <= threshold)
    low = high = best
    while low > 0 and inside[low - 1]:
        low -= 1
    while high < len(rates) - 1 and inside[high + 1]:
        high += 1
    return float(np.sqrt(rates[low] * rates[high])), (float(rates[low]), float(rates[high]))


def lr_range_test(build, train_data: Any, val_data: Any = None, *, key,
                  learning_rates: Sequence[float] | None = None, epochs: int = 1,
                  batch_size: int = 32, tolerance: float = 0.05) -> LRRangeResult:
    """Trains briefly at each of ``K`` learning rates, in one program, and suggests one.

    Every rate trains ``epochs`` epochs from the same initial weights and data
    order (common random numbers: the members differ only by the rate) with
    :func:`jtricks.sweep.train`; member 0 has the rate 0 and measures the
    untrained loss. The loss of each rate is the loss on ``val_data`` after the
    last epoch, in evaluation mode.

    Args:
      build: ``build(hparams) -> Member`` or ``(model, tx)``, as for
        :func:`jtricks.sweep.train`; ``hparams["learning_rate"]`` is the traced
        rate. Pass the same function again (not a new lambda) to reuse the
        compiled program.
      train_data: ``(x, y)``; the budget is ``epochs`` passes over it, so a
        subset gives a shorter test.
      val_data: where the loss is measured (default: ``train_data``, the
        training loss as in Smith's test).
      key: the PRNG key (initialisation, dropout, data order).
      learning_rates: the rates to test, positive and increasing (default
        ``np.geomspace(1e-5, 1.0, 16)``, three per decade).
      epochs: the budget of every rate.
      batch_size: examples per step.
      tolerance: see :func:`suggest_learning_rate`.

    Returns:
      An :class:`LRRangeResult`.

    Raises:
      ValueError: for bad rates or ``tolerance`` (see
        :func:`suggest_learning_rate`) and the bad arguments of
        :func:`jtricks.sweep.train`.

    References:
      L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", WACV,
      https://arxiv.org/abs/1506.01186, 2017 (§3.3).
    """
    from jtricks import sweep  # sweep.py re-exports this module: import it when called

    rates = _check_rates(np.geomspace(1e-5, 1.0, 16) if learning_rates is None
                         else learning_rates)
    _validate.check_number("tolerance", tolerance, lo=0, hi=1, lo_open=True, hi_open=True)
    hparams = {"learning_rate": np.concatenate([[0.0], rates])}
    result = sweep.train(build, hparams, train_data,
                         train_data if val_data is None else val_data,
                         key=key, epochs=epochs, batch_size=batch_size)
    curves = {name: np.asarray(value) for name, value in result.members.curves.items()}
    final = curves["val_loss"][:, -1].astype(np.float64)
    initial = float(final[0])
    suggestion, valley = suggest_learning_rate(rates, final[1:], initial, tolerance=tolerance)
    return LRRangeResult(rates, final[1:], initial, suggestion, valley, float(tolerance),
                         {name: value[1:] for name, value in curves.items()})


def plot_lr_range(result: LRRangeResult, ax=None):
    """Draws a range test: loss against rate (log axes), the valley and the suggestion.

    Args:
      result: an :class:`LRRangeResult`.
      ax: a matplotlib ``Axes`` (default: a new figure's, made without pyplot).

    Returns:
      The ``Axes``.

    Raises:
      ImportError: without matplotlib (the ``demo`` extra).
    """
    if ax is None:
        ax = require("matplotlib.figure", "jtricks.sweep.plot_lr_range").Figure(
            figsize=(6, 4)).subplots()
    rates, losses = result.learning_rates, result.losses
    finite = np.isfinite(losses)
    ax.plot(rates[finite], losses[finite], "o-", label="loss after the budget")
    if (~finite).any():
        ax.plot(rates[~finite], np.full((~finite).sum(), result.initial_loss), "x",
                color="red", label="diverged (not finite)")
    ax.axhline(result.initial_loss, color="gray", linestyle=":", label="untrained loss")
    if np.isfinite(result.suggestion):
        ax.axvspan(*result.valley, color="green", alpha=0.12,
                   label=f"valley (within {result.tolerance:g} of the drop)")
        ax.axvline(result.suggestion, color="green",
                   label=f"suggested rate {result.suggestion:.3g}")
    ax.set_xscale("log")
    if (losses[finite] > 0).all() and result.initial_loss > 0:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def _check_rates(learning_rates) -> np.ndarray:
    rates = np.asarray(learning_rates, np.float64)
    if rates.ndim != 1 or rates.size < 2:
        raise ValueError(f"learning_rates={learning_rates!r} must list at least two rates")
    if not (np.isfinite(rates).all() and (rates > 0).all() and (np.diff(rates) > 0).all()):
        raise ValueError(f"learning_rates={rates.tolist()!r} must be finite, positive and "
                         "strictly increasing")
    return rates


__all__ = ["LRRangeResult", "lr_range_test", "plot_lr_range", "suggest_learning_rate"]
