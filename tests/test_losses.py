"""Tests for jtricks.losses (oracle: optax)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

_optax_ce = jax.jit(optax.losses.softmax_cross_entropy_with_integer_labels)  # one compilation

from jtricks import losses
from jtricks.data import balanced_sample, class_weights


def _batch(n=32, k=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)).astype(np.float32) * 3
    labels = rng.integers(0, k, size=n).astype(np.int32)
    return jnp.asarray(logits), jnp.asarray(labels)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_matches_optax(dtype):
    logits, labels = _batch()
    logits = logits.astype(dtype)
    ours = jax.jit(losses.cross_entropy)(logits, labels)
    ref = _optax_ce(
        logits.astype(jnp.promote_types(dtype, jnp.float32)), labels).mean()
    assert ours.dtype == jnp.promote_types(dtype, jnp.float32)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_weighted_matches_optax_weighted_mean():
    logits, labels = _batch(seed=1)
    w = jnp.array([1.0, 2.0, 0.5, 3.0, 1.5])
    per = _optax_ce(logits, labels)
    ref = jnp.sum(w[labels] * per) / jnp.sum(w[labels])
    np.testing.assert_allclose(losses.cross_entropy(logits, labels, class_weights=w), ref, rtol=1e-6)
    # invariant to the scale of the weights; uniform weights give the plain mean
    np.testing.assert_allclose(losses.cross_entropy(logits, labels, class_weights=7 * w), ref, rtol=1e-6)
    np.testing.assert_allclose(
        losses.cross_entropy(logits, labels, class_weights=jnp.ones(5)), per.mean(), rtol=1e-6)


def test_a_batch_of_zero_weight_classes_has_loss_and_gradient_zero():
    """Traced weights (no construction-time check): every label of the batch has weight 0.
    0 / 0 would give NaN and poison the parameters; nothing to learn gives 0."""
    logits, _ = _batch(seed=3)
    labels = jnp.zeros(logits.shape[0], jnp.int32)  # all class 0
    w = jnp.array([0.0, 1.0, 1.0, 1.0, 1.0])

    @jax.jit
    def loss_and_grad(logits, w):
        return jax.value_and_grad(losses.cross_entropy)(logits, labels, class_weights=w)

    value, grad = loss_and_grad(logits, w)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)
    # one example of a weighted class: the usual weighted mean, finite gradient
    labels1 = labels.at[3].set(2)
    value1, grad1 = jax.value_and_grad(losses.cross_entropy)(logits, labels1, class_weights=w)
    np.testing.assert_allclose(value1, _optax_ce(logits, labels1)[3], rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(grad1)))


def test_class_weights_equal_balanced_resampling_in_expectation():
    # imbalanced: 80 / 15 / 5 examples
    labels = jnp.asarray(np.repeat(np.arange(3), [80, 15, 5]).astype(np.int32))
    logits = jnp.asarray(np.random.default_rng(2).normal(size=(100, 3)).astype(np.float32))
    per = np.asarray(_optax_ce(logits, labels))
    weighted = losses.cross_entropy(logits, labels, class_weights=class_weights(labels, 3))
    # a balanced draw picks each class with probability 1/3, then an example of it
    # uniformly: P(i) = 1 / (3 n_{y_i}); the expected loss is sum_i P(i) l_i
    y = np.asarray(labels)
    p = 1.0 / (3 * np.bincount(y)[y])
    np.testing.assert_allclose(p.sum(), 1.0)
    np.testing.assert_allclose(weighted, np.sum(p * per), rtol=1e-6)
    # Monte-Carlo with the library's own balanced sampler: 4-sigma bound
    idx = np.asarray(balanced_sample(jax.random.PRNGKey(0), labels, 3, 20_000))
    sample = per[idx]
    assert abs(sample.mean() - float(weighted)) < 4 * sample.std() / np.sqrt(idx.size)
    # the unweighted loss is different (the test can fail)
    assert abs(float(losses.cross_entropy(logits, labels)) - float(weighted)) > 1e-3


def test_out_of_range_labels():
    logits, labels = _batch()
    with pytest.raises(ValueError, match=r"outside \[0, 5\).*: -1, 5"):
        losses.cross_entropy(logits, labels.at[0].set(5).at[1].set(-1))
    with pytest.raises(ValueError, match="shape"):
        losses.cross_entropy(logits, jax.nn.one_hot(labels, 5))
    # under jit it cannot raise: NaN, not a silent 0
    assert jnp.isnan(jax.jit(losses.cross_entropy)(logits, labels.at[0].set(5)))


def test_accuracy():
    logits, labels = _batch()
    expected = np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(labels))
    np.testing.assert_allclose(losses.accuracy(logits, labels), expected)
