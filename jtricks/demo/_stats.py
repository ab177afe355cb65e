"""The demo's statistics: paired comparisons of two arms over seeds, and verdicts.

Every demo experiment trains each arm (configuration) over the same seeds: seed
``s`` gives every arm the same initial weights (where the arms share a shape) and
the same data order, so the per-seed difference ``a[s] - b[s]`` isolates the arm.
:func:`paired` turns those differences into a mean and a 95% confidence interval
(Student t, ``n - 1`` degrees of freedom) and a verdict:

* **shown** — the interval excludes zero in the claimed direction;
* **not shown on this data** — the interval contains zero;
* **contradicted** — the interval excludes zero in the other direction.

NumPy only (SciPy is not a dependency): the t quantiles come from a table.

Example:
  >>> e = paired("Adam - SGD", [0.9, 0.95, 0.92], [0.8, 0.85, 0.86], claim="greater")
  >>> round(e.mean, 4), e.outcome
  (0.0867, 'shown')
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

SHOWN = "shown"
NOT_SHOWN = "not shown on this data"
CONTRADICTED = "contradicted"

TEST = ("paired Student t over seeds (a seed gives every arm the same split and data order, "
        "and the same initial weights unless the initialisation is what is compared): "
        "mean per-seed "
        "difference with a two-sided 95% confidence interval; an effect is *shown* when the "
        "interval excludes 0 in the claimed direction, *contradicted* when it excludes 0 the "
        "other way, *not shown on this data* otherwise")

# Two-sided 95% quantiles t(0.975, df) of Student's t distribution, df = 1..30.
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
_Z975 = 1.959964


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom.

    A table for ``df <= 30``; above, the Cornish-Fisher expansion around the normal
    quantile (error below 1e-4 for ``df > 30``).
    """
    if df < 1:
        raise ValueError(f"df={df} must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


class Effect(NamedTuple):
    """A paired comparison over seeds.

    Attributes:
      label: what is compared, e.g. ``"final val. accuracy, Adam - SGD"``.
      mean: mean per-seed difference ``a - b``.
      low, high: the 95% confidence interval of the mean difference.
      n: seeds with a finite difference (the others are dropped and counted in
        ``dropped``).
      claim: ``"greater"`` (the claim says ``a > b``) or ``"less"``.
      outcome: :data:`SHOWN`, :data:`NOT_SHOWN` or :data:`CONTRADICTED`.
      dropped: seeds whose difference was not finite.
      digits: decimals when written.
    """

    label: str
    mean: float
    low: float
    high: float
    n: int
    claim: str
    outcome: str
    dropped: int = 0
    digits: int = 3

    def interval(self) -> str:
        """``+0.012 [+0.004, +0.020]``."""
        d = self.digits
        return f"{self.mean:+.{d}f} [{self.low:+.{d}f}, {self.high:+.{d}f}]"

    def text(self) -> str:
        """One sentence part: label, mean difference, interval, seeds, outcome."""
        extra = f", {self.dropped} non-finite dropped" if self.dropped else ""
        want = ">" if self.claim == "greater" else "<"
        return (f"{self.label}: {self.interval()} (95% CI, {self.n} seeds{extra}; claim "
                f"{want} 0) — {self.outcome}")


def outcome_of(low: float, high: float, claim: str) -> str:
    """The verdict rule: where the interval ``[low, high]`` lies with respect to 0."""
    if claim not in ("greater", "less"):
        raise ValueError(f"claim={claim!r} must be 'greater' or 'less'")
    if not (np.isfinite(low) and np.isfinite(high)):
        return NOT_SHOWN
    if low > 0:
        return SHOWN if claim == "greater" else CONTRADICTED
    if high < 0:
        return SHOWN if claim == "less" else CONTRADICTED
    return NOT_SHOWN


def paired(label: str, a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
           claim: str = "greater", digits: int = 3) -> Effect:
    """Paired comparison of arm ``a`` against arm ``b`` over the same seeds.

    Args:
      label: what is compared.
      a, b: one value per seed (same order).
      claim: the direction the claim predicts for ``a - b``: ``"greater"`` or ``"less"``.
      digits: decimals when written.

    Returns:
      An :class:`Effect`: the mean difference, its two-sided 95% Student t interval
      ``mean ± t(0.975, n-1) · sd / √n`` and the outcome. Fewer than two finite
      differences give an infinite interval (not shown).
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be 1-D of the same length, got {x.shape} and {y.shape}")
    d = x - y
    finite = np.isfinite(d)
    d = d[finite]
    n = int(d.size)
    if n == 0:
        mean, low, high = math.nan, -math.inf, math.inf
    elif n == 1:
        mean, low, high = float(d[0]), -math.inf, math.inf
    else:
        mean = float(d.mean())
        half = t975(n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return Effect(label, mean, low, high, n, claim, outcome_of(low, high, claim),
                  int((~finite).sum()), digits)


def headline(effects: Sequence[Effect]) -> str:
    """The experiment's status from its effects: ``"Shown"`` when all are shown,
    ``"Contradicted"`` when some are contradicted and none shown, ``"Partly shown"`` /
    ``"Mixed"`` in between, ``"Not shown on this data"`` when none is clear."""
    outcomes = [e.outcome for e in effects]
    shown, against = outcomes.count(SHOWN), outcomes.count(CONTRADICTED)
    if shown == len(outcomes) and shown:
        return "Shown"
    if shown and against:
        return "Mixed"
    if shown:
        return "Partly shown"
    if against:
        return "Contradicted"
    return "Not shown on this data"


def verdict(effects: Sequence[Effect], detail: str = "") -> str:
    """The verdict sentence: the headline, then every effect with its interval, then
    ``detail`` (which must itself be built from the results)."""
    body = "; ".join(e.text() for e in effects)
    return f"{headline(effects)}: {body}." + (f" {detail}" if detail else "")


def mean_band(values, axis: int = 0):
    """Mean and ±1 sample standard deviation over ``axis`` (the seeds), ignoring
    non-finite values; returns ``(mean, low, high)``."""
    v = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(v, axis)
            s = np.nanstd(v, axis, ddof=1) if v.shape[axis] > 1 else np.zeros_like(m)
    return m, m - s, m + s
