"""Tests for jtricks.data datasets: the bundled digits and IDX files written here."""

import gzip
import struct

import numpy as np
import pytest

import jtricks.data as jd


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, data: bytes, gz: bool):
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
LABELS = RNG.integers(0, 10, size=6, dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_mnist_idx_roundtrip(tmp_path, gz, split, prefix):
    _write(tmp_path / f"{prefix}-images-idx3-ubyte", _idx_bytes(IMAGES), gz)
    _write(tmp_path / f"{prefix}-labels-idx1-ubyte", _idx_bytes(LABELS), gz)
    images, labels = jd.load_mnist_idx(tmp_path, split)
    assert images.shape == (6, 28, 28, 1) and images.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(images[..., 0], IMAGES)
    np.testing.assert_array_equal(labels, LABELS)


@pytest.mark.parametrize("array, code", [(np.arange(-6, 6, dtype=">i4").reshape(3, 4), 0x0C),
                                         (np.linspace(0, 1, 5).astype(">f4"), 0x0D),
                                         (np.arange(-3, 3, dtype=np.int8), 0x09)])
def test_read_idx_dtypes(tmp_path, array, code):
    path = _write(tmp_path / "a.idx", _idx_bytes(array, code), gz=False)
    out = jd.read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.dtype.isnative


GOOD = _idx_bytes(LABELS)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x00\x00", r"truncated IDX header: expected at least 4 bytes .* got 2"),
        (b"\x1f\x00\x08\x01" + GOOD[4:], "wrong magic number 0x1f000801"),
        (b"\x00\x00\x07\x01" + GOOD[4:], "wrong magic number"),
        (GOOD[:6], r"truncated IDX header: expected 8 bytes .* got 6"),
        (GOOD[:-2], r"truncated IDX data: shape \(6,\) of uint8 needs 6 bytes .* got 4"),
        (GOOD + b"\x00\x01", r"corrupt IDX file: 2 unexpected trailing byte"),
        # mtime=0: gzip otherwise stamps the current time into the bytes, and the
        # test id (made from them) would differ between pytest-xdist workers.
        (gzip.compress(GOOD, mtime=0)[:-6], "corrupt or truncated gzip"),
        (b"\x1f\x8b" + b"garbage!" * 3, "corrupt or truncated gzip"),
    ],
    ids=["short-header", "wrong-magic", "wrong-magic-type", "truncated-header",
         "truncated-data", "trailing-bytes", "truncated-gzip", "garbage-gzip"],
)
def test_corrupt_idx(tmp_path, data, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(jd.IdxFormatError, match=match):
        jd.read_idx(path)
    assert issubclass(jd.IdxFormatError, ValueError)


def test_mnist_idx_missing_and_mismatched(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        jd.load_mnist_idx(tmp_path)
    _write(tmp_path / "train-images.idx3-ubyte", _idx_bytes(IMAGES), False)  # dotted variant
    _write(tmp_path / "train-labels.idx1-ubyte", _idx_bytes(LABELS[:5]), True)
    with pytest.raises(jd.IdxFormatError, match="6 images but .* 5 labels"):
        jd.load_mnist_idx(tmp_path)
    with pytest.raises(ValueError, match="split='val'"):
        jd.load_mnist_idx(tmp_path, "val")


def test_load_digits_matches_sklearn():
    from sklearn.datasets import load_digits

    images, labels = jd.load_digits()
    ref = load_digits()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int32
    np.testing.assert_array_equal(images.reshape(1797, 64), ref.data)
    np.testing.assert_array_equal(labels, ref.target)
    assert images.min() == 0 and images.max() == 16


def test_load_digits_reads_the_file_without_importing_sklearn(monkeypatch):
    """``import sklearn.datasets`` costs seconds of every cold ``jtricks train``: the
    digits are read from scikit-learn's file directly (blocked, the import would fail)."""
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    images, labels = jd.load_digits()
    assert images.shape == (1797, 8, 8, 1) and labels[:5].tolist() == [0, 1, 2, 3, 4]


def test_load_digits_without_sklearn(monkeypatch):
    import sys

    for name in ("sklearn", "sklearn.datasets"):  # None in sys.modules: import fails
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"^jtricks.data.load_digits needs scikit-learn: "
                                          r"pip install 'jtricks\[demo\]'$"):
        jd.load_digits()


# ---------------------------------------------------------------- load_split


def _class_counts(y, k=10):
    return np.bincount(y, minlength=k)


def test_load_split_digits_sizes_and_stratification():
    data = jd.load_split("digits", seed=0)
    assert isinstance(data, jd.Split)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (1258, 359, 180)
    assert data.num_classes == 10 and data.name == "digits"
    assert data.x_train.shape == (1258, 8, 8, 1) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int32
    assert data.train[0] is data.x_train and data.val[1] is data.y_val
    assert data.test[0] is data.x_test
    _, labels = jd.load_digits()
    whole = _class_counts(labels)
    for y, fraction in ((data.y_train, 0.7), (data.y_val, 0.2), (data.y_test, 0.1)):
        # stratified: every class within one example of its share of the part
        assert np.abs(_class_counts(y) - whole * fraction).max() < 1.5
    # the parts are disjoint and cover the dataset: the pixel rows are a permutation
    images, _ = jd.load_digits()
    raw = jd.load_split("digits", seed=0, scale="none")
    together = np.concatenate([raw.x_train, raw.x_val, raw.x_test]).reshape(1797, -1)
    np.testing.assert_array_equal(np.sort(together, axis=0), np.sort(images.reshape(1797, -1), 0))


def test_load_split_scaler_fitted_on_train_only():
    data = jd.load_split("digits", seed=3, keep_raw=True)
    assert data.x_train.min() == -1.0 and data.x_train.max() == 1.0
    # the scaler's statistics are those of the raw training part, not of all the data
    assert float(data.scaler.data_min) == data.raw_train.min()
    assert float(data.scaler.data_max) == data.raw_train.max()
    np.testing.assert_allclose(np.asarray(data.scaler(data.raw_val)), data.x_val)
    np.testing.assert_allclose(np.asarray(data.scaler(data.raw_test)), data.x_test)
    std = jd.load_split("digits", seed=3, scale="standardize")
    assert abs(std.x_train.mean()) < 1e-5 and abs(std.x_train.std() - 1) < 1e-5
    assert abs(std.x_val.mean()) > 1e-5  # val is not re-standardised on its own statistics
    assert float(std.scaler.mean) == pytest.approx(float(data.raw_train.mean()), rel=1e-5)
    everything = np.concatenate([data.raw_train, data.raw_val, data.raw_test])
    assert float(std.scaler.mean) != pytest.approx(float(everything.mean()), rel=1e-4)
    none = jd.load_split("digits", seed=3, scale="none")
    assert none.scaler is None and none.raw_train is None
    np.testing.assert_array_equal(none.x_train, data.raw_train)


def test_load_split_is_deterministic_per_seed():
    a, b = jd.load_split("digits", seed=1), jd.load_split("digits", seed=1)
    c = jd.load_split("digits", seed=2)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.x_train, c.x_train)


def _mnist_dir(path, n_train=120, n_test=30, gz=False):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(10, 200, (n, 28, 28)).astype(np.uint8)
        if prefix == "t10k":  # test values outside the training range
            images[0, 0, :2] = (0, 255)
        _write(path / f"{prefix}-images-idx3-ubyte", _idx_bytes(images), gz)
        _write(path / f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels), gz)
    return path


@pytest.mark.parametrize("form", ["mnist:", "", "path"])
def test_load_split_mnist_from_idx_files(tmp_path, form):
    _mnist_dir(tmp_path, gz=form == "")
    name = tmp_path if form == "path" else f"{form}{tmp_path}"
    data = jd.load_split(name, seed=0)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (100, 20, 30)
    assert data.name == f"mnist:{tmp_path}" and data.num_classes == 10
    assert data.x_train.shape == (100, 28, 28, 1)
    np.testing.assert_array_equal(_class_counts(data.y_train), [10] * 10)  # 5:1 per class
    np.testing.assert_array_equal(_class_counts(data.y_val), [2] * 10)
    # the test part is the t10k file, in file order, scaled with the training statistics
    test_x, test_y = jd.load_mnist_idx(tmp_path, "test")
    np.testing.assert_array_equal(data.y_test, test_y)
    raw_train = jd.load_split(name, seed=0, scale="none").x_train
    lo, hi = raw_train.min(), raw_train.max()
    np.testing.assert_allclose(data.x_test, -1 + 2 * (test_x - lo) / (hi - lo), atol=1e-5)
    assert data.x_test.min() < -1 and data.x_test.max() > 1  # not fitted on the test part
    # float32 rounding: the extremes land within one ulp of -1 and 1
    assert data.x_train.min() == pytest.approx(-1, abs=1e-6)
    assert data.x_train.max() == pytest.approx(1, abs=1e-6)


def test_load_split_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="scale='max' must be one of"):
        jd.load_split("digits", scale="max")
    with pytest.raises(ValueError, match="seed=-1 must be >= 0"):
        jd.load_split("digits", seed=-1)
    with pytest.raises(ValueError, match="must have 3 parts"):
        jd.load_split("digits", fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match="must sum to 1"):
        jd.load_split("digits", fractions=(0.5, 0.2, 0.1))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        jd.load_split(f"mnist:{tmp_path / 'nope'}")
    _mnist_dir(tmp_path)
    with pytest.raises(ValueError, match="must have 2 parts"):
        jd.load_split(tmp_path, fractions=(0.7, 0.2, 0.1))
    with pytest.raises(TypeError, match="name=3"):
        jd.load_split(3)


def test_load_split_docstring_example_runs():
    import doctest

    from jtricks.data import _datasets

    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(_datasets.load_split, "load_split",
                                             globs={"load_split": jd.load_split, "np": np}):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 5


@pytest.mark.parametrize("labels, code, shown", [
    (np.array([0, 1, -1, 2], np.int8), 0x09, "label -1 at index 2"),
    (np.array([0, 1, np.nan, 2], ">f4"), 0x0D, "label nan at index 2"),
    (np.array([0, 1.5, 2, 3], ">f4"), 0x0D, "label 1.5 at index 1"),
    (np.array([0, 1, 2, 255], np.uint8), 0x08, "label 255 at index 3"),
])
def test_mnist_labels_must_be_class_indices(tmp_path, labels, code, shown):
    _write(tmp_path / "train-images-idx3-ubyte", _idx_bytes(IMAGES[:4]), False)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(labels, code), False)
    with pytest.raises(ValueError, match=rf"train-labels-idx1-ubyte: {shown} is not a class "
                                         r"index \(1 bad label\(s\)\); labels must be "
                                         r"integers in \[0, 10\)"):
        jd.load_mnist_idx(tmp_path)


def test_mnist_labels_float_integers_and_num_classes(tmp_path):
    _write(tmp_path / "train-images-idx3-ubyte", _idx_bytes(IMAGES[:4]), False)
    _write(tmp_path / "train-labels-idx1-ubyte",
           _idx_bytes(np.array([0, 1, 12, 3], ">f4"), 0x0D), False)
    with pytest.raises(ValueError, match="label 12.0 at index 2"):
        jd.load_mnist_idx(tmp_path)
    _, labels = jd.load_mnist_idx(tmp_path, num_classes=None)
    assert labels.tolist() == [0, 1, 12, 3] and labels.dtype == np.int32


def test_idx_header_whose_size_overflows_is_a_value_error(tmp_path):
    header = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    path = _write(tmp_path / "big.idx", header + b"\x00" * 16, gz=False)
    with pytest.raises(jd.IdxFormatError, match=r"big.idx: corrupt IDX header: shape "
                                                r"\(4294967295, .* more than a 64-bit size"):
        jd.read_idx(path)


def _mnist_parts(path, train, test, train_labels=None):
    for prefix, images in (("train", train), ("t10k", test)):
        labels = np.arange(len(images)) % 10 if train_labels is None or prefix == "t10k" \
            else train_labels
        _write(path / f"{prefix}-images-idx3-ubyte", _idx_bytes(images, images.dtype == np.uint8
                                                               and 0x08 or 0x0D), False)
        _write(path / f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels.astype(np.uint8)), False)


def test_load_split_refuses_what_training_cannot_use(tmp_path):
    train = RNG.integers(0, 256, (60, 28, 28)).astype(np.uint8)
    test = RNG.integers(0, 256, (20, 28, 28)).astype(np.uint8)
    (tmp_path / "a").mkdir()
    _mnist_parts(tmp_path / "a", train, test[:, :20, :20])
    with pytest.raises(ValueError, match="test images are 20x20 but the training images are "
                                         "28x28"):
        jd.load_split(tmp_path / "a")
    (tmp_path / "b").mkdir()
    nan_train = train.astype(">f4")
    nan_train[7, 3, 3] = np.nan
    _mnist_parts(tmp_path / "b", nan_train, test.astype(">f4"))
    with pytest.raises(ValueError, match="training image .* holds non-finite values"):
        jd.load_split(tmp_path / "b")
    (tmp_path / "c").mkdir()
    _mnist_parts(tmp_path / "c", train[:0], test)
    with pytest.raises(ValueError, match="training part is empty"):
        jd.load_split(tmp_path / "c")


# --- MNIST-1D: generated here by the mnist1d package, never downloaded ---------------


def _no_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("MNIST-1D must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_mnist1d_is_generated_offline_deterministically_and_cached(tmp_path, monkeypatch):
    import random

    pytest.importorskip("mnist1d")
    _no_network(monkeypatch)
    monkeypatch.setenv("JTRICKS_CACHE_DIR", str(tmp_path))
    np.random.seed(123)
    random.seed(123)
    before = np.random.get_state()[1].copy(), random.getstate()
    a = jd.load_mnist1d(200, seed=7, cache=False)
    # the package reseeds NumPy's global generator: the loader restores it
    np.testing.assert_array_equal(np.random.get_state()[1], before[0])
    assert random.getstate() == before[1]
    b = jd.load_mnist1d(200, seed=7)  # generated again, then written to the cache
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    c = jd.load_mnist1d(200, seed=7)  # read from the cache
    other = jd.load_mnist1d(200, seed=8, cache=False)
    for u, v, w in zip(a, b, c):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)
    assert not np.array_equal(a[0], other[0])
    x, y, x_test, y_test = a
    assert x.shape == (160, 1, 40, 1) and x_test.shape == (40, 1, 40, 1)
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert np.bincount(np.concatenate([y, y_test])).tolist() == [20] * 10
    # standardised by the generator: mean 0, variance 1 over the whole set
    whole = np.concatenate([x, x_test]).astype(np.float64)
    assert abs(whole.mean()) < 1e-5 and abs(whole.std() - 1) < 1e-5
    # a corrupt cache file is regenerated, not an error
    next(tmp_path.glob("mnist1d-*.npz")).write_bytes(b"not an npz")
    np.testing.assert_array_equal(jd.load_mnist1d(200, seed=7)[0], a[0])


def test_load_split_mnist1d(monkeypatch, tmp_path):
    pytest.importorskip("mnist1d")
    _no_network(monkeypatch)
    data = jd.load_split("mnist1d", seed=0)
    assert data.name == "mnist1d" and data.num_classes == 10
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (3200, 800, 1000)
    assert data.x_train.shape[1:] == (1, 40, 1)
    assert float(data.x_train.min()) == -1.0 and float(data.x_train.max()) == 1.0
    counts = np.bincount(data.y_val, minlength=10)
    assert counts.min() >= 75 and counts.max() <= 85  # stratified 80/20
    with pytest.raises(ValueError, match="2 parts"):
        jd.load_split("mnist1d", fractions=(0.7, 0.2, 0.1))


def test_cli_accepts_mnist1d_and_names_its_package():
    import argparse

    from jtricks.cli._common import data_extras, data_spec

    assert data_spec("mnist1d") == "mnist1d"
    assert data_extras("mnist1d") == ("mnist1d",) and data_extras("digits") == ("sklearn",)
    assert data_extras("mnist:/data") == ()
    with pytest.raises(argparse.ArgumentTypeError, match="accepted: digits, mnist1d, mnist:DIR"):
        data_spec("mnist-1d")
