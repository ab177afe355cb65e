"""Step builders: the classification loss, evaluation in batches, history files."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks.train import (classifier_eval, classifier_loss, evaluate, predict, read_jsonl,
                           write_history)

from _train_helpers import blobs, tiny_mlp

X, Y = blobs(n=50)
MODEL = tiny_mlp()
PARAMS, STATE = MODEL.init(jax.random.PRNGKey(0), (4,))


def _logits():
    return MODEL.apply(PARAMS, STATE, X, training=False)[0]


@pytest.mark.parametrize("weights", [None, jnp.array([1.0, 2.0, 0.5])])
def test_classifier_loss_matches_weighted_cross_entropy(weights):
    loss, (new_state, metrics) = jax.jit(classifier_loss(MODEL, class_weights=weights))(
        PARAMS, STATE, (X, Y), jax.random.PRNGKey(1))
    per_example = optax.softmax_cross_entropy_with_integer_labels(_logits(), Y)
    w = jnp.ones(3) if weights is None else weights
    np.testing.assert_allclose(loss, jnp.sum(w[Y] * per_example) / jnp.sum(w[Y]), rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], jnp.mean(_logits().argmax(-1) == Y))
    assert int(new_state["calls"]) == 1  # the model's training state is returned


def test_augment_is_applied_with_its_own_key():
    seen = []

    def augment(key, x):
        seen.append(key)
        return x + 1.0

    loss_aug, _ = classifier_loss(MODEL, augment=augment)(PARAMS, STATE, (X, Y),
                                                          jax.random.PRNGKey(1))
    shifted, _ = classifier_loss(MODEL)(PARAMS, STATE, (X + 1.0, Y), jax.random.PRNGKey(1))
    np.testing.assert_allclose(loss_aug, shifted, rtol=1e-6)
    assert len(seen) == 1


@pytest.mark.parametrize("batch_size", [7, 50, 1000])
def test_evaluate_in_batches_equals_full_batch(batch_size):
    metrics = jax.jit(lambda p: evaluate(classifier_eval(MODEL), p, STATE, (X, Y),
                                         batch_size=batch_size))(PARAMS)
    per_example = optax.softmax_cross_entropy_with_integer_labels(_logits(), Y)
    np.testing.assert_allclose(metrics["loss"], per_example.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], jnp.mean(_logits().argmax(-1) == Y))
    np.testing.assert_allclose(predict(MODEL, PARAMS, STATE, X, batch_size=batch_size),
                               _logits(), rtol=1e-5, atol=1e-6)


def test_history_jsonl_and_csv_round_trip(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": float("nan"), "extra": 3}]
    jsonl, csv_path = write_history(rows, tmp_path)
    back = read_jsonl(jsonl)
    assert back[0] == rows[0] and np.isnan(back[1]["loss"]) and back[1]["extra"] == 3
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["epoch", "loss", "extra"] and table[0]["extra"] == ""
