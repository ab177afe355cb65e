"""Tests for jtricks.data scaling: fitted on training data, applied to the rest."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks.data as jd


def _data(seed=0, shape=(50, 4)):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * np.array([1.0, 5.0, 0.1, 30.0]) + 3.0).astype(np.float32)


@pytest.mark.parametrize("feature_range", [(-1.0, 1.0), (0.0, 1.0)])
@pytest.mark.parametrize("axis", [None, 0])
def test_minmax_maps_train_onto_range(feature_range, axis):
    train = _data()
    scaler = jd.minmax_scale(train, feature_range, axis=axis)
    y = np.asarray(scaler(train))
    lo, hi = feature_range
    reduce = None if axis is None else 0
    np.testing.assert_allclose(y.min(axis=reduce), lo, atol=1e-6)
    np.testing.assert_allclose(y.max(axis=reduce), hi, atol=1e-6)
    # Oracle: the closed form with numpy statistics.
    mn, mx = train.min(axis=reduce, keepdims=True), train.max(axis=reduce, keepdims=True)
    np.testing.assert_allclose(y, lo + (train - mn) * (hi - lo) / (mx - mn), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaler.inverse(y), train, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("axis", [None, 0])
def test_standardize_zero_mean_unit_variance(axis):
    train = _data(1)
    scaler = jd.standardize(train, axis=axis)
    y = np.asarray(scaler(train), np.float64)
    reduce = None if axis is None else 0
    np.testing.assert_allclose(y.mean(axis=reduce), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=reduce), 1.0, rtol=1e-5)


def test_scaler_does_not_peek_at_other_parts():
    train, other = _data(2), _data(3) * 100.0
    scaler = jd.minmax_scale(train)
    # Same statistics whatever the rest holds; the rest may leave the range.
    assert scaler == jd.minmax_scale(train)
    np.testing.assert_array_equal(scaler.data_min, train.min())
    assert float(jnp.abs(scaler(other)).max()) > 1.0
    s2 = jd.standardize(train)
    np.testing.assert_allclose(s2.mean, train.mean(), rtol=1e-6)


def test_scaler_is_a_pytree_usable_under_jit():
    train = _data()
    scaler = jd.standardize(train, axis=0)
    out = jax.jit(lambda s, x: s(x))(scaler, train)
    np.testing.assert_allclose(out, scaler(train), rtol=1e-6)
    assert len(jax.tree.leaves(scaler)) == 2


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32, jnp.uint8])
def test_dtypes(dtype):
    train = jnp.asarray(np.arange(24).reshape(6, 4), dtype)
    scaler = jd.minmax_scale(train, (0, 1))
    assert scaler.data_min.dtype == jnp.float32
    expected = jnp.float32 if dtype == jnp.uint8 else dtype
    assert scaler(train).dtype == expected


@pytest.mark.parametrize("fit", [jd.minmax_scale, jd.standardize])
def test_zero_range_raises(fit):
    with pytest.raises(ValueError, match="zero"):
        fit(np.full((5, 3), 0.1, np.float32))
    data = _data()
    data[:, 2] = 7.0
    with pytest.raises(ValueError, match=r"1 feature\(s\).*index \(2,\) "):
        fit(data, axis=0)
    fit(data)  # global statistics are fine


def test_digits_per_pixel_raises_but_global_works():
    images, _ = jd.load_digits()
    with pytest.raises(ValueError, match=r"zero range.*\(0, 0, 0\), \(4, 0, 0\)"):
        jd.minmax_scale(images, axis=0)
    scaled = jd.minmax_scale(images)(images)
    assert float(scaled.min()) == -1.0 and float(scaled.max()) == 1.0


def test_non_finite_training_data():
    data = _data()
    data[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        jd.standardize(data)


def test_bad_arguments():
    with pytest.raises(ValueError, match="feature_range"):
        jd.minmax_scale(_data(), (1.0, 1.0))
    with pytest.raises(ValueError, match="axis"):
        jd.standardize(_data(), axis=3)
