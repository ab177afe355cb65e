"""Tests for jtricks.data.batches."""

import jax
import numpy as np
import pytest

import jtricks.data as jd

X = np.arange(10 * 3).reshape(10, 3)
Y = np.arange(10)


@pytest.mark.parametrize("batch_size, drop_last, sizes", [(4, False, [4, 4, 2]), (4, True, [4, 4]), (10, False, [10])])
def test_epoch_covers_data(batch_size, drop_last, sizes):
    out = list(jd.batches(jax.random.PRNGKey(0), {"x": X, "y": Y}, batch_size, drop_last=drop_last))
    assert [len(b["y"]) for b in out] == sizes
    assert jd.num_batches(10, batch_size, drop_last=drop_last) == len(sizes)
    ys = np.concatenate([b["y"] for b in out])
    assert len(set(ys.tolist())) == len(ys)
    if not drop_last:
        np.testing.assert_array_equal(np.sort(ys), Y)
    for b in out:  # pairs stay aligned
        np.testing.assert_array_equal(b["x"][:, 0], 3 * b["y"])


def test_keyed_shuffle_and_no_key_keeps_order():
    a = [b[1] for b in jd.batches(jax.random.PRNGKey(1), (X, Y), 5)]
    b = [b[1] for b in jd.batches(jax.random.PRNGKey(1), (X, Y), 5)]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    assert not np.array_equal(np.concatenate(a), Y)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in jd.batches(None, (X, Y), 3)]), Y)


def test_mismatched_leading_axis():
    with pytest.raises(ValueError, match="leading"):
        next(jd.batches(None, (X, Y[:5]), 2))
