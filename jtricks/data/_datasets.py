"""Datasets: the real 8x8 digits bundled with scikit-learn, MNIST-1D generated
locally (``_mnist1d.py``), and MNIST IDX files.

:func:`load_split` is the one loader the command line and the demo use: it loads
any of them, splits it honestly (stratified; MNIST keeps its own test files) and
scales it with statistics of the training part only.

Both raw loaders return host (NumPy) arrays in the NHWC layout the models take:
``images`` float32 ``(n, height, width, 1)`` with the raw pixel values (0..16 for
the digits, 0..255 for MNIST; scale them with ``minmax_scale`` fitted on the
training part) and ``labels`` int32 ``(n,)``. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import zlib
from typing import NamedTuple

import numpy as np

from jtricks._optional import missing, require
from jtricks._validate import check_bool, check_choice, check_int

# IDX type codes (http://yann.lecun.com/exdb/mnist/): data are big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """A file is not a valid IDX file (wrong magic, truncated, corrupt)."""


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 real 8x8 handwritten digits bundled with scikit-learn.

    The UCI optical-recognition digits (Alpaydin & Kaynak), shipped inside the
    scikit-learn wheel, so no download is ever needed. Pixel values are counts
    0..16 (not scaled).

    Returns:
      ``(images, labels)``: float32 ``(1797, 8, 8, 1)`` raw values 0..16 and int32
      ``(1797,)`` class indices 0..9.

    Raises:
      ImportError: if scikit-learn (the ``demo`` extra) is not installed; the message
        says ``pip install 'jtricks[demo]'``.

    References:
      E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits", UCI
      Machine Learning Repository, https://doi.org/10.24432/C50P49, 1998.

    Example:
      >>> images, labels = load_digits()
      >>> images.shape, labels[:5]
      ((1797, 8, 8, 1), array([0, 1, 2, 3, 4], dtype=int32))
    """
    path = _digits_file()
    if path is None:  # not where scikit-learn keeps it: its own loader
        bunch = require("sklearn.datasets", "jtricks.data.load_digits").load_digits()
        flat, target = bunch.data, bunch.target
    else:  # what sklearn.datasets.load_digits parses, the same way
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            table = np.loadtxt(fh, delimiter=",")
        flat, target = table[:, :-1], table[:, -1]
    images = np.asarray(flat, dtype=np.float32).reshape(-1, 8, 8, 1)
    labels = np.asarray(target, dtype=np.int32)
    return images, labels


def _digits_file() -> str | None:
    """scikit-learn's ``datasets/data/digits.csv.gz``, found without importing
    scikit-learn: ``import sklearn.datasets`` takes 1-3 s (SciPy and more), reading
    the file 10 ms. ``None`` when the file is not where scikit-learn keeps it.

    Raises:
      ImportError: naming the ``demo`` extra when scikit-learn is not installed.
    """
    if missing(["sklearn"]):
        require("sklearn.datasets", "jtricks.data.load_digits")  # raises, naming the extra
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            return path
    return None


def _read_bytes(path: str | os.PathLike) -> bytes:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path={path!r} is not a file")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise IdxFormatError(f"{path}: corrupt or truncated gzip stream ({err})") from err


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (plain, or gzipped — detected from its content).

    Format: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C
    int32, 0x0D float32, 0x0E float64), a byte with the number of dimensions, one
    big-endian uint32 per dimension, then the data, big-endian, row-major.

    Args:
      path: the file.

    Returns:
      A NumPy array with the stored shape, in native byte order.

    Raises:
      IdxFormatError: (a ``ValueError``) for a wrong magic number, a truncated
        header or data (saying how many bytes were expected and found), trailing
        bytes, or a corrupt gzip stream.

    Example:
      >>> import gzip, os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "t10k-labels-idx1-ubyte.gz")
      >>> with gzip.open(path, "wb") as f:               # magic: ubyte, 1 dimension; 3 labels
      ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
      >>> read_idx(path)
      array([7, 2, 1], dtype=uint8)
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IdxFormatError(
            f"{path}: truncated IDX header: expected at least 4 bytes (magic), got {len(raw)}"
        )
    zero, code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in _IDX_DTYPES:
        raise IdxFormatError(
            f"{path}: wrong magic number 0x{raw[:4].hex()}: an IDX file starts with two zero "
            "bytes and a type byte in {0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(
            f"{path}: truncated IDX header: expected {header} bytes for {ndim} dimension(s), "
            f"got {len(raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if expected > np.iinfo(np.int64).max:
        raise IdxFormatError(
            f"{path}: corrupt IDX header: shape {shape} of {dtype.name} would need {expected} "
            "bytes, more than a 64-bit size can hold"
        )
    got = len(raw) - header
    if got < expected:
        raise IdxFormatError(
            f"{path}: truncated IDX data: shape {shape} of {dtype.name} needs {expected} bytes "
            f"after the {header}-byte header, got {got}"
        )
    if got > expected:
        raise IdxFormatError(
            f"{path}: corrupt IDX file: {got - expected} unexpected trailing byte(s) after the "
            f"{expected} bytes of data for shape {shape}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


_PREFIX = {"train": "train", "test": "t10k"}


def _find(directory: str, stem: str) -> str:
    """Finds ``stem`` with '-' or '.' before 'idx' and an optional '.gz'."""
    candidates = []
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            candidates.append(os.path.join(directory, name + suffix))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"no {stem}[.gz] in {directory!r}; looked for: "
        + ", ".join(os.path.basename(c) for c in candidates)
    )


def _check_labels(label_file: str, labels: np.ndarray, num_classes: int | None) -> np.ndarray:
    """``labels`` as int32 class indices, or an :class:`IdxFormatError` naming the file,
    the first bad label and its position."""
    values = labels.astype(np.float64) if labels.dtype.kind == "f" else labels
    bad = ~np.isfinite(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    if values.dtype.kind == "f":
        bad |= np.where(np.isfinite(values), values != np.round(values), True)
    with np.errstate(invalid="ignore"):
        bad |= values < 0
        if num_classes is not None:
            bad |= values >= num_classes
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        accepted = (f"integers in [0, {num_classes})" if num_classes is not None
                    else "non-negative integers")
        raise IdxFormatError(
            f"{label_file}: label {values[i].item()!r} at index {i} is not a class index "
            f"({int(bad.sum())} bad label(s)); labels must be {accepted}"
        )
    return labels.astype(np.int32)


def load_mnist_idx(path: str | os.PathLike, split: str = "train", *,
                   num_classes: int | None = 10) -> tuple[np.ndarray, np.ndarray]:
    """Loads MNIST (or Fashion-MNIST) from the standard IDX files a user already has.

    ``path`` is the directory holding the files under their standard names:
    ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` for ``split="train"``
    and ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte`` for ``split="test"``,
    each optionally gzipped (``.gz``); the variant ``train-images.idx3-ubyte`` is
    also found. Nothing is downloaded.

    Args:
      path: the directory with the IDX files.
      split: ``"train"`` or ``"test"``.
      num_classes: labels must be integers in ``[0, num_classes)`` (MNIST and
        Fashion-MNIST: 10); ``None`` accepts any non-negative integer.

    Returns:
      ``(images, labels)``: float32 ``(n, 28, 28, 1)`` raw values 0..255 and int32 ``(n,)``.

    Raises:
      FileNotFoundError: if a file is missing.
      IdxFormatError: (a ``ValueError``) for a corrupt file (see ``read_idx``; a
        header whose sizes overflow), images that are not 3-d, labels that are not
        1-d or not class indices (negative, NaN, fractional, ``>= num_classes``),
        or counts that differ; the message names the file.

    Example:
      >>> import os, tempfile
      >>> mnist = tempfile.mkdtemp()                     # two 2x2 images, the format of MNIST
      >>> with open(os.path.join(mnist, "train-images-idx3-ubyte"), "wb") as f:
      ...     _ = f.write(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]) + bytes(range(8)))
      >>> with open(os.path.join(mnist, "train-labels-idx1-ubyte"), "wb") as f:
      ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 5, 0]))
      >>> x_train, y_train = load_mnist_idx(mnist)
      >>> x_train.shape, x_train.dtype, y_train
      ((2, 2, 2, 1), dtype('float32'), array([5, 0], dtype=int32))
    """
    check_choice("split", split, tuple(_PREFIX))
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, lo=1)
    directory = os.path.expanduser(os.fspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"path={directory!r} is not a directory with MNIST IDX files")
    image_file = _find(directory, f"{_PREFIX[split]}-images-idx3-ubyte")
    label_file = _find(directory, f"{_PREFIX[split]}-labels-idx1-ubyte")
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3:
        raise IdxFormatError(f"{image_file}: images must have 3 dimensions, got shape {images.shape}")
    if labels.ndim != 1:
        raise IdxFormatError(f"{label_file}: labels must have 1 dimension, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise IdxFormatError(
            f"{image_file} holds {images.shape[0]} images but {label_file} holds "
            f"{labels.shape[0]} labels"
        )
    labels = _check_labels(label_file, labels, num_classes)
    return images.astype(np.float32)[..., None], labels


class Split(NamedTuple):
    """A dataset split into training, validation and test parts (host NumPy arrays).

    Attributes:
      x_train, y_train, x_val, y_val, x_test, y_test: float32 NHWC images (scaled as
        asked) and int32 labels of each part.
      num_classes: ``max(label) + 1`` over every part.
      name: ``"digits"``, ``"mnist1d"`` or ``"mnist:<directory>"``.
      scaler: the scaler fitted on the training part (``MinMaxScaler`` or
        ``StandardScaler``; ``None`` for ``scale="none"``); apply it to new data.
      raw_train, raw_val, raw_test: the unscaled images of each part, with
        ``keep_raw=True`` (else ``None``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    scaler: object = None
    raw_train: np.ndarray | None = None
    raw_val: np.ndarray | None = None
    raw_test: np.ndarray | None = None

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_train, y_train)``."""
        return self.x_train, self.y_train

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_val, y_val)``."""
        return self.x_val, self.y_val

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_test, y_test)``."""
        return self.x_test, self.y_test


_SCALES = ("minmax", "standardize", "none")


def _check_parts(name: str, x_train: np.ndarray, x_test: np.ndarray) -> None:
    """What training needs of the images before its first step: a training part, finite
    values, and test images shaped as the training ones."""
    if len(x_train) == 0:
        raise ValueError(f"{name}: the training part is empty (no training examples)")
    if x_test.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"{name}: the test images are {'x'.join(map(str, x_test.shape[1:3]))}"
                         f" but the training images are "
                         f"{'x'.join(map(str, x_train.shape[1:3]))}; they must have one size")
    for part, x in (("training", x_train), ("test", x_test)):
        finite = np.isfinite(x)
        if not finite.all():
            i = int(np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))[0])
            raise ValueError(f"{name}: {part} image {i} holds non-finite values (NaN or inf)")


def load_split(name: str | os.PathLike = "digits", seed: int = 0, *, fractions=None,
               scale: str = "minmax", keep_raw: bool = False) -> Split:
    """Loads a dataset, splits it honestly and scales it with training statistics only.

    * ``"digits"``: the embedded 1,797 digits (:func:`load_digits`, needs
      scikit-learn), split 70/20/10 into train / validation / test.
    * ``"mnist1d"``: MNIST-1D (:func:`load_mnist1d`, needs the ``mnist1d`` package;
      generated locally, nothing downloaded), 40-point signals as ``(n, 1, 40, 1)``;
      the package's 4,000 training examples are split 80/20 into train /
      validation and its 1,000 test examples are the test part. Harder than
      digits (MLPs reach about 0.6-0.7, CNNs about 0.9).
    * ``"mnist:DIR"`` or a directory ``DIR``: the MNIST IDX files in ``DIR``
      (:func:`load_mnist_idx`); its train files are split 5:1 into train /
      validation and its t10k files are the test part (in file order).

    Splits are stratified (every part keeps the class frequencies) and depend only
    on ``seed``. The scaler is fitted on the training part and applied to every part,
    so the validation and test data never influence it: after ``"minmax"`` the
    training images span exactly ``[-1, 1]``, the others may fall slightly outside.

    Args:
      name: ``"digits"``, ``"mnist1d"``, ``"mnist:DIR"`` or an MNIST directory.
      seed: a non-negative integer; seeds the split.
      fractions: the split's fractions, summing to 1: ``(train, val, test)`` for
        digits (default ``(0.7, 0.2, 0.1)``), ``(train, val)`` of MNIST's train files
        (default ``(5/6, 1/6)``) or of MNIST-1D's training part (default ``(0.8, 0.2)``).
      scale: ``"minmax"`` (to ``[-1, 1]``, global statistics), ``"standardize"``
        (mean 0, variance 1) or ``"none"`` (raw pixel values).
      keep_raw: also return the unscaled images (``raw_train`` / ``raw_val`` /
        ``raw_test``).

    Returns:
      A :class:`Split`; ``split.train``, ``split.val`` and ``split.test`` are
      ``(x, y)`` pairs.

    Raises:
      ValueError: for a bad ``seed``, ``fractions`` or ``scale``, a class too small
        to be stratified, a corrupt IDX file or labels that are not class indices
        (``IdxFormatError``), an empty training part, non-finite images, or test
        images of another size than the training ones.
      FileNotFoundError: if the MNIST directory or one of its files is missing.
      ImportError: for ``"digits"`` without scikit-learn, ``"mnist1d"`` without the
        ``mnist1d`` package (both in the ``demo`` extra).

    Example:
      >>> data = load_split("digits", seed=0)
      >>> data.x_train.shape, data.x_val.shape, data.x_test.shape
      ((1258, 8, 8, 1), (359, 8, 8, 1), (180, 8, 8, 1))
      >>> float(data.x_train.min()), float(data.x_train.max()), data.num_classes
      (-1.0, 1.0, 10)
      >>> x, y = data.train
      >>> np.bincount(y)
      array([124, 128, 124, 128, 127, 127, 127, 125, 122, 126])
    """
    import jax

    from jtricks.data._scaling import fit_numpy
    from jtricks.data._split import split

    seed = check_int("seed", seed, lo=0)
    check_choice("scale", scale, _SCALES)
    check_bool("keep_raw", keep_raw)
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name={name!r} must be 'digits', 'mnist1d', 'mnist:DIR' or a "
                        "directory")
    name = os.fspath(name)
    key = jax.random.PRNGKey(seed)

    def take(x, y, idx):
        idx = np.asarray(idx)
        return x[idx], y[idx]

    if name == "digits":
        fractions = (0.7, 0.2, 0.1) if fractions is None else tuple(fractions)
        if len(fractions) != 3:
            raise ValueError(f"fractions={fractions!r} must have 3 parts (train, validation, "
                             "test) for digits")
        x, y = load_digits()
        parts = split(key, len(y), fractions, stratify=y)
        (xtr, ytr), (xva, yva), (xte, yte) = (take(x, y, i) for i in parts)
        label = "digits"
    elif name == "mnist1d":
        from jtricks.data._mnist1d import load_mnist1d

        fractions = (0.8, 0.2) if fractions is None else tuple(fractions)
        if len(fractions) != 2:
            raise ValueError(f"fractions={fractions!r} must have 2 parts (train, validation) "
                             "of MNIST-1D's training part; its test part is the test part")
        x, y, xte, yte = load_mnist1d()
        tr, va = split(key, len(y), fractions, stratify=y)
        (xtr, ytr), (xva, yva) = take(x, y, tr), take(x, y, va)
        label = "mnist1d"
    else:
        directory = os.path.expanduser(name[len("mnist:"):] if name.startswith("mnist:")
                                       else name)
        fractions = (5 / 6, 1 / 6) if fractions is None else tuple(fractions)
        if len(fractions) != 2:
            raise ValueError(f"fractions={fractions!r} must have 2 parts (train, validation) "
                             "of the MNIST train files; t10k is the test part")
        x, y = load_mnist_idx(directory, split="train")
        if len(y) == 0:
            raise ValueError(f"mnist:{directory}: the training part is empty (its train "
                             "files hold no examples)")
        xte, yte = load_mnist_idx(directory, split="test")
        tr, va = split(key, len(y), fractions, stratify=y)
        (xtr, ytr), (xva, yva) = take(x, y, tr), take(x, y, va)
        label = f"mnist:{directory}"
    _check_parts(label, xtr, xte)
    raw = (xtr, xva, xte)
    scaler = None
    if scale != "none":
        scaler, apply = fit_numpy(scale, xtr)  # host data: NumPy, nothing compiled
        xtr, xva, xte = (np.asarray(apply(a)) for a in raw)
    num_classes = int(max(part.max() for part in (ytr, yva, yte) if part.size)) + 1
    return Split(xtr, ytr, xva, yva, xte, yte, num_classes, label, scaler,
                 *(raw if keep_raw else (None, None, None)))
