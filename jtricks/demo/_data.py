"""The demo's data regimes: where a trick's effect can exceed the seed noise.

The 8x8 digits are saturated (0.97-0.99 validation accuracy for most models, one
validation image = 0.28 points), so a trick that fights overfitting or noise has
nothing to show there. The lesson's own reasoning names the regimes where it
should matter, and the experiments use them:

* **few, noisy labels** (:func:`noisy_subset`): 20 training digits per class with
  30% of the labels replaced by another class. A big network memorises the wrong
  labels, so the validation loss turns up (early stopping) and regularisers that
  stop memorisation (dropout) have an effect.
* **a harder dataset** (:func:`mnist1d`, MNIST-1D): an MLP reaches about 0.6, far
  from saturation, and the signals are translated, so averaging, learning-rate
  decay and shift augmentation have room to act.
"""

from __future__ import annotations

import threading

import numpy as np

_LOCK = threading.Lock()  # experiments run in threads: generate MNIST-1D once
_CACHE: dict = {}


def mnist1d(seed: int = 0):
    """``jtricks.data.load_split("mnist1d", seed)``, loaded once per process and seed."""
    from jtricks.data import load_split

    with _LOCK:
        if seed not in _CACHE:
            _CACHE[seed] = load_split("mnist1d", seed)
        return _CACHE[seed]


def subset(data, per_class: int, seed: int = 0):
    """A small stratified training subset: ``per_class`` examples of every class."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(data.y_train == c))[:per_class]
                          for c in range(data.num_classes)])
    return data.x_train[idx], data.y_train[idx]


def flip_labels(y, fraction: float, num_classes: int, seed: int = 0) -> np.ndarray:
    """``y`` with ``round(fraction · n)`` labels, chosen at random, replaced by another
    class drawn uniformly (never the true one).

    Example:
      >>> y = np.zeros(10, np.int32)
      >>> noisy = flip_labels(y, 0.3, 10)
      >>> int((noisy != y).sum())
      3
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction={fraction} must be in [0, 1]")
    rng = np.random.default_rng(seed)
    y = np.array(y, copy=True)
    flip = rng.permutation(len(y))[:round(fraction * len(y))]
    y[flip] = (y[flip] + rng.integers(1, num_classes, len(flip))) % num_classes
    return y


def noisy_subset(data, per_class: int = 20, noise: float = 0.3, seed: int = 0):
    """:func:`subset` with :func:`flip_labels`: ``(x, noisy_y)``; the validation data
    keep their true labels."""
    x, y = subset(data, per_class, seed)
    return x, flip_labels(y, noise, data.num_classes, seed)


def noisy_subsets(data, seeds, per_class: int = 20, noise: float = 0.3):
    """One :func:`noisy_subset` per seed, stacked: ``(x, y)`` with a leading seed axis
    (for ``train_seeded(..., data_per_seed=True)``: each seed draws its own images and
    its own flipped labels, so the spread over seeds includes the draw).

    Example:
      >>> from types import SimpleNamespace
      >>> d = SimpleNamespace(x_train=np.arange(40.0)[:, None], y_train=np.arange(40) % 2,
      ...                     num_classes=2)
      >>> x, y = noisy_subsets(d, [0, 1, 2], per_class=3, noise=0.5)
      >>> x.shape, y.shape
      ((3, 6, 1), (3, 6))
    """
    draws = [noisy_subset(data, per_class, noise, seed=s) for s in seeds]
    return np.stack([x for x, _ in draws]), np.stack([y for _, y in draws])


def noisy_regime(per_class: int = 20, noise: float = 0.3) -> str:
    """The setup text of :func:`noisy_subset`."""
    return (f"{per_class} training digits per class ({per_class * 10} images) with "
            f"{noise:.0%} of their labels replaced by another digit at random (validation "
            "labels untouched)")
