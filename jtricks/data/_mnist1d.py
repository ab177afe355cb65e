"""MNIST-1D (Greydanus 2020): ten 1-D digit templates made hard by random padding,
scaling, translation, shear and noise, generated locally by the ``mnist1d`` package.

Why a second dataset: the 8x8 digits are saturated (most models reach 0.97-0.99
validation accuracy, so many tricks differ by one or two images). MNIST-1D is as
small (40 numbers per example, 5,000 examples) but separates models the way MNIST
once did: the paper reports about 32% test accuracy for logistic regression, 68%
for an MLP, 94% for a CNN (and the translation makes shift augmentation and
convolutions matter), so training tricks have room to show an effect.
"""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np

from jtricks._optional import require

# The paper's generation settings (mnist1d.data.get_dataset_args(), seed 42).
_VERSION = 1  # bump when the arrays this module returns change


def _cache_path(key: str) -> str | None:
    base = os.environ.get("JTRICKS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "jtricks")
    return os.path.join(base, f"mnist1d-{key}.npz")


def _generate(num_samples: int, seed: int) -> dict:
    """Runs ``mnist1d.data.make_dataset`` (local, no network) and restores NumPy's and
    Python's global random state, which it reseeds."""
    data = require("mnist1d.data", "jtricks.data.load_mnist1d")
    args = data.get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        made = data.make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": made["x"], "y": made["y"], "x_test": made["x_test"], "y_test": made["y_test"]}


def load_mnist1d(num_samples: int = 5000, seed: int = 42, *,
                 cache: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D, generated on this machine by the ``mnist1d`` package (nothing is
    downloaded), with the paper's settings.

    The package's ``make_dataset`` builds every example from one of ten 1-D digit
    templates (padding, dilation, scaling, circular translation by up to 48 of 72
    positions, correlated and i.i.d. noise, shear, resampling to 40 points) and
    standardises the whole set; it is deterministic for a ``seed`` (same NumPy /
    SciPy). Generation takes seconds, so the arrays are cached in
    ``$JTRICKS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/jtricks`` or
    ``~/.cache/jtricks``) unless ``cache=False``; a cache file that cannot be read
    is regenerated.

    Regime: harder than the 8x8 digits, with the same cost per epoch. The paper
    reports about 32% test accuracy for logistic regression, 68% for an MLP and 94%
    for a CNN (translation makes local, shared filters matter). Measured here with
    ``load_split("mnist1d")`` (3,200 training examples), Adam lr 1e-3, batch 64,
    30 epochs, two seeds: logistic regression 0.29 validation accuracy, MLP 100-100
    0.58-0.60, ``jtricks.nn.cnn(10, channels=(32, 32))`` 0.83-0.87 (still rising):
    an MLP is far from saturated, so regularisation, averaging and augmentation
    have room to show an effect.

    Args:
      num_samples: examples generated (10 classes, ``num_samples // 10`` each); 80%
        are the training part, 20% the test part (the package's split).
      seed: the generator's seed (the paper's: 42).
      cache: read / write the cache file.

    Returns:
      ``(x_train, y_train, x_test, y_test)``: float32 ``(n, 1, 40, 1)`` signals (one
      row of 40 "pixels", NHWC, so ``jtricks.nn.mlp`` and ``cnn`` take them as they
      are) and int32 labels 0..9.

    Raises:
      ImportError: without the ``mnist1d`` package (the ``demo`` extra).

    References:
      S. Greydanus, D. Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024
      (arXiv:2011.14439, 2020).

    Example:
      >>> x, y, x_test, y_test = load_mnist1d()
      >>> x.shape, x_test.shape, int(np.bincount(y).min()) > 350
      ((4000, 1, 40, 1), (1000, 1, 40, 1), True)
    """
    from jtricks._validate import check_int

    num_samples = check_int("num_samples", num_samples, lo=10)
    seed = check_int("seed", seed, lo=0)
    key = hashlib.sha256(f"{_VERSION}-{num_samples}-{seed}".encode()).hexdigest()[:16]
    path = _cache_path(key) if cache else None
    made = None
    if path and os.path.isfile(path):
        try:
            with np.load(path) as f:
                made = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError, EOFError):
            made = None  # unreadable: regenerate
    if made is None:
        made = _generate(num_samples, seed)
        if path:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp.npz"
                np.savez(tmp, **made)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only home: no cache, same data
    x, x_test = (np.asarray(made[k], np.float32)[:, None, :, None] for k in ("x", "x_test"))
    return x, np.asarray(made["y"], np.int32), x_test, np.asarray(made["y_test"], np.int32)
