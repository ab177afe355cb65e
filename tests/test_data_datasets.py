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


def test_load_digits_without_sklearn(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "jtricks\[demo\]"'):
        jd.load_digits()
