"""Tests for jtricks.data class weights and resampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks.data as jd

LABELS = np.repeat(np.arange(4), [50, 20, 10, 0 + 5]).astype(np.int32)
KEY = jax.random.PRNGKey(0)


def test_class_weights_closed_form_and_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    w = jax.jit(jd.class_weights, static_argnums=1)(LABELS, 4)
    ref = compute_class_weight("balanced", classes=np.arange(4), y=LABELS)
    np.testing.assert_allclose(w, ref, rtol=1e-6)
    np.testing.assert_allclose(np.sum(np.asarray(w)[LABELS]), LABELS.size, rtol=1e-6)
    # absent class: weight 0, not inf
    w5 = jd.class_weights(LABELS, 5)
    assert float(w5[4]) == 0.0 and bool(jnp.all(jnp.isfinite(w5)))


def test_labels_outside_num_classes():
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*3"):
        jd.class_weights(LABELS, 3)
    with pytest.raises(ValueError, match=r"-2"):
        jd.oversample(KEY, np.array([0, 1, -2]), 3)
    with pytest.raises(TypeError, match="integer"):
        jd.class_weights(np.array([0.0, 1.0]), 2)


def test_oversample_and_undersample():
    over = np.asarray(jd.oversample(KEY, LABELS, 4))
    np.testing.assert_array_equal(np.bincount(LABELS[over]), [50, 50, 50, 50])
    assert set(over.tolist()) == set(range(LABELS.size))  # every example kept
    under = np.asarray(jd.undersample(KEY, LABELS, 4))
    np.testing.assert_array_equal(np.bincount(LABELS[under]), [5, 5, 5, 5])
    assert len(set(under.tolist())) == under.size  # without replacement
    np.testing.assert_array_equal(under, np.asarray(jd.undersample(KEY, LABELS, 4)))


def test_balanced_sample_frequencies():
    idx = jax.jit(jd.balanced_sample, static_argnums=(2, 3))(KEY, LABELS, 4, 8000)
    freq = np.bincount(LABELS[np.asarray(idx)], minlength=4) / 8000
    # each class 1/4; 4-sigma bound
    np.testing.assert_allclose(freq, 0.25, atol=4 * np.sqrt(0.25 * 0.75 / 8000))
