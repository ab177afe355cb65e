"""Tests for jtricks.data.split."""

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jtricks.data as jd
from jtricks.data._split import _part_sizes, _stratified_table

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize(
    "n, fractions, sizes",
    [
        (100, (0.7, 0.2, 0.1), (70, 20, 10)),
        (1797, (0.7, 0.2, 0.1), (1258, 359, 180)),
        (10, (0.5, 0.5), (5, 5)),
        (7, (1 / 3, 1 / 3, 1 / 3), (3, 2, 2)),
        (5, (1.0, 0.0), (5, 0)),
    ],
)
def test_sizes_cover_and_no_overlap(n, fractions, sizes):
    parts = jd.split(KEY, n, fractions)
    assert tuple(len(p) for p in parts) == sizes
    joined = np.concatenate([np.asarray(p) for p in parts])
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))
    # closed-form rounding: every part is within one of n * fraction
    assert all(abs(len(p) - n * f) < 1 for p, f in zip(parts, fractions))


def test_keyed_and_reproducible():
    a = jd.split(KEY, 50)
    b = jd.split(KEY, 50)
    c = jd.split(jax.random.PRNGKey(1), 50)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_stratified_keeps_class_proportions():
    labels = np.repeat(np.arange(4), [400, 200, 100, 50]).astype(np.int32)
    np.random.default_rng(0).shuffle(labels)
    parts = jd.split(KEY, labels.size, stratify=labels)
    plain = jd.split(KEY, labels.size)
    assert [len(p) for p in parts] == [len(p) for p in plain]
    overall = np.bincount(labels) / labels.size
    for p, f in zip(parts, (0.7, 0.2, 0.1)):
        counts = np.bincount(labels[np.asarray(p)], minlength=4)
        np.testing.assert_allclose(counts, np.bincount(labels) * f, atol=1.0)
        np.testing.assert_allclose(counts / len(p), overall, atol=0.011)
    joined = np.concatenate([np.asarray(p) for p in parts])
    np.testing.assert_array_equal(np.sort(joined), np.arange(labels.size))


def test_split_indexes_numpy_data():
    images, labels = jd.load_digits()
    train, val, test = jd.split(KEY, len(labels), stratify=labels)
    assert images[train].shape == (1258, 8, 8, 1)
    assert set(np.unique(labels[test])) == set(range(10))


@pytest.mark.parametrize(
    "fractions, match",
    [((0.7, 0.2), "sum to 1"), ((0.7, 0.4, -0.1), ">= 0"), ((), "at least one"), ((0.5, float("nan"), 0.5), ">= 0")],
)
def test_bad_fractions(fractions, match):
    with pytest.raises(ValueError, match=match):
        jd.split(KEY, 10, fractions)


def test_stratified_class_too_small():
    labels = np.array([0] * 40 + [1] * 3)
    with pytest.raises(ValueError, match="class 1 has only 3 example"):
        jd.split(KEY, labels.size, stratify=labels)
    with pytest.raises(ValueError, match="shape"):
        jd.split(KEY, 10, stratify=labels)


@given(
    counts=st.lists(st.integers(1, 300), min_size=1, max_size=8),
    raw=st.lists(st.integers(0, 10), min_size=1, max_size=4).filter(lambda r: sum(r) > 0),
)
def test_stratified_table_property(counts, raw):
    # pure NumPy part of the stratified split: row sums are the class counts,
    # column sums the unstratified part sizes, cells close to count * fraction
    counts = np.asarray(counts)
    f = np.asarray(raw, np.float64) / sum(raw)
    totals = _part_sizes(int(counts.sum()), f)
    table = _stratified_table(counts, f, totals)
    np.testing.assert_array_equal(table.sum(axis=1), counts)
    np.testing.assert_array_equal(table.sum(axis=0), totals)
    assert (table >= 0).all()
    assert np.abs(table - counts[:, None] * f).max() < 2
