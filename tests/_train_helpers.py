"""A tiny real classifier and dataset shared by the training tests (not a stub:
an MLP with dropout, trained on deterministic Gaussian blobs)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class TinyModel(NamedTuple):
    init: object
    apply: object


def tiny_mlp(hidden=16, classes=3, dropout=0.0):
    def init(key, shape):
        k1, k2 = jax.random.split(key)
        n = int(np.prod(shape))
        params = {
            "w1": jax.random.normal(k1, (n, hidden)) * jnp.sqrt(2.0 / n),
            "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden, classes)) * jnp.sqrt(1.0 / hidden),
            "b2": jnp.zeros(classes),
        }
        return params, {"calls": jnp.zeros((), jnp.int32)}

    def apply(params, state, x, *, training, key=None, axis_name=None):
        h = jax.nn.relu(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
        if training and dropout > 0:
            keep = jax.random.bernoulli(key, 1 - dropout, h.shape)
            h = jnp.where(keep, h / (1 - dropout), 0)
        new_state = {"calls": state["calls"] + 1} if training else state
        return h @ params["w2"] + params["b2"], new_state

    return TinyModel(init, apply)


def blobs(n=240, classes=3, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * 2.5
    y = np.arange(n) % classes
    x = centers[y] + rng.normal(size=(n, dim))
    return x.astype(np.float32), y.astype(np.int32)
