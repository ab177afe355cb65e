"""Bad inputs to ``jtricks.data`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error, on

from jtricks import data

INF, NAN = float("inf"), float("nan")
KEY = jax.random.key(0)
IMAGE = jnp.arange(12.0).reshape(3, 4)
EYE = jnp.eye(2)
TRAIN = jnp.arange(12.0).reshape(4, 3)
LABELS = jnp.array([0, 1, 1, 0])
X, Y = np.zeros((6, 2), np.float32), np.zeros(6, np.int32)
AFFINE = on(data.affine_transform, IMAGE, EYE, given="image, eye")
SHIFT = on(data.random_shift, KEY, IMAGE, given="key, image")
ZOOM = on(data.random_zoom, KEY, IMAGE, given="key, image")
RANDOM_AFFINE = on(data.random_affine, KEY, IMAGE, given="key, image")

CASES = [
    bad("data", AFFINE, "mode", "bogus"),
    bad("data", AFFINE, "mode", None, exc=ValueError),
    bad("data", AFFINE, "cval", NAN),
    bad("data", AFFINE, "cval", "0", exc=TypeError),
    bad("data", AFFINE, "offset", (1.0, INF), shown="(1.0, inf)"),
    bad("data", AFFINE, "offset", (1.0, 2.0, 3.0)),
    bad("data", on(data.affine_transform, IMAGE, given="image"), "matrix", [[1.0, 0.0]],
        shown="(1, 2)"),
    bad("data", on(data.affine_transform, IMAGE, given="image"), "matrix",
        [[1.0, NAN], [0.0, 1.0]], shown="nan"),
    Bad("data", "affine_transform(ones(5), eye)", lambda: data.affine_transform(jnp.ones(5), EYE),
        "image", "(5,)"),
    bad("data", SHIFT, "max_shift", -1.0),
    bad("data", SHIFT, "max_shift", INF),
    bad("data", SHIFT, "mode", "bogus"),
    bad("data", on(data.random_rotate, KEY, IMAGE, given="key, image"), "max_degrees", NAN),
    bad("data", on(data.random_rotate, KEY, IMAGE, given="key, image"), "cval", INF),
    bad("data", ZOOM, "zoom_range", (0.0, 1.0), shown="0.0"),
    bad("data", ZOOM, "zoom_range", (1.2, 0.8)),
    bad("data", ZOOM, "zoom_range", 1.0, exc=TypeError),
    bad("data", ZOOM, "zoom_range", (0.9, INF), shown="inf"),
    bad("data", RANDOM_AFFINE, "max_shift", -1.0),
    bad("data", RANDOM_AFFINE, "max_degrees", "15", exc=TypeError),
    bad("data", RANDOM_AFFINE, "zoom_range", (2.0, 1.0)),
    bad("data", data.standardize, "train", jnp.zeros((0, 3)), shown="(0, 3)"),
    bad("data", on(data.standardize, TRAIN, given="train"), "axis", 5),
    bad("data", on(data.standardize, TRAIN, given="train"), "axis", 1.5, exc=TypeError),
    bad("data", data.minmax_scale, "train", jnp.zeros((3, 0)), shown="(3, 0)"),
    bad("data", on(data.minmax_scale, TRAIN, given="train"), "feature_range", (1.0, -1.0)),
    bad("data", on(data.minmax_scale, TRAIN, given="train"), "feature_range", (0.0, INF),
        shown="inf"),
    bad("data", on(data.minmax_scale, TRAIN, given="train"), "feature_range", 5, exc=TypeError),
    bad("data", on(data.minmax_scale, TRAIN, given="train"), "axis", (0, 2)),
    bad("data", on(data.batches, None, (X, Y), given="None, (x, y)"), "batch_size", 0),
    bad("data", on(data.batches, None, (X, Y), given="None, (x, y)"), "batch_size", 2.5,
        exc=TypeError),
    bad("data", on(data.batches, None, (X, Y), given="None, (x, y)"), "drop_last", "yes", 2,
        exc=TypeError),
    Bad("data", "batches(None, (x[:5], y), 2)",
        lambda: list(data.batches(None, (X[:5], Y), 2)), "data", "(5, 2)"),
    Bad("data", "batches(None, (), 2)", lambda: list(data.batches(None, (), 2)), "data",
        "no arrays"),
    bad("data", data.num_batches, "n", -1, batch_size=4),
    bad("data", data.num_batches, "batch_size", 0, 10),
    bad("data", data.num_batches, "drop_last", 1, 10, 4, exc=TypeError),
    bad("data", on(data.split, KEY, given="key"), "n", 0),
    bad("data", on(data.split, KEY, given="key"), "n", 10.0, exc=TypeError),
    bad("data", on(data.split, KEY, 10, given="key, 10"), "fractions", (0.5, 0.6)),
    bad("data", on(data.split, KEY, 10, given="key, 10"), "fractions", (-0.1, 1.1)),
    bad("data", on(data.split, KEY, 10, given="key, 10"), "fractions", (NAN, 1.0),
        shown="nan"),
    bad("data", on(data.split, KEY, 10, given="key, 10"), "fractions", "abc", exc=TypeError),
    bad("data", on(data.split, KEY, 4, given="key, 4"), "stratify", jnp.zeros(3, jnp.int32),
        shown="(3,)"),
    bad("data", data.class_weights, "num_classes", 0, LABELS),
    bad("data", data.class_weights, "labels", jnp.array([0, 2]), num_classes=2, shown="2"),
    bad("data", data.class_weights, "labels", jnp.array([0.0, 1.0]), num_classes=2,
        shown="float32", exc=TypeError),
    bad("data", on(data.balanced_sample, KEY, LABELS, 2, given="key, labels, 2"),
        "num_samples", -1),
    bad("data", on(data.balanced_sample, KEY, LABELS, given="key, labels"), "num_classes",
        True, num_samples=4, exc=TypeError),
    bad("data", on(data.oversample, KEY, LABELS, given="key, labels"), "num_classes", 2.5,
        exc=TypeError),
    bad("data", on(data.undersample, KEY, given="key"), "labels", jnp.array([-1, 0]),
        num_classes=2, shown="-1"),
    bad("data", data.load_split, "seed", -1),
    bad("data", data.load_split, "scale", "bogus"),
    bad("data", data.load_split, "name", 5, exc=TypeError),
    bad("data", data.load_split, "keep_raw", "yes", exc=TypeError),
    bad("data", data.load_split, "fractions", (0.5, 0.5)),
    bad("data", data.load_mnist_idx, "split", "validation", "/nonexistent"),
    bad("data", data.load_mnist_idx, "num_classes", 0, "/nonexistent"),
    bad("data", data.load_mnist_idx, "path", "/nonexistent", exc=FileNotFoundError),
    bad("data", data.read_idx, "path", "/nonexistent/x.idx", exc=FileNotFoundError),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
