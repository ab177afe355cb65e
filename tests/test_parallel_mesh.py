"""Every public data-parallel form on ``Auto`` and ``Explicit`` meshes equals one device.

``jax.make_mesh`` gives ``Explicit`` axes by default in this JAX: the layout of
every array is part of its type, and code written for one device (a batch norm
taking ``x[:1]`` of the split batch) is refused by the sharding rules unless
jtricks runs it with the axes as ``Auto``. The forms: ``sharded_step`` (jit and
shard_map), a hand-jitted ``train_step`` over ``shard_loss``, ``fit`` over
``shard_loss``, each with plain SGD-momentum, ``accumulate_gradients`` and
``flatten``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from test_parallel import MODELS, _assert_trees_close, _batches, _state

import jtricks
from jtricks import parallel
from jtricks.train import classifier_loss, fit, train_step

MODEL, SHAPE = MODELS["mlp"]  # batch norm and dropout
TXS = {
    "sgd": jtricks.optim.sgd(0.1, momentum=0.9),
    "accumulate": jtricks.optim.accumulate_gradients(jtricks.optim.sgd(0.1, momentum=0.9), 2),
    "flatten": jtricks.optim.flatten(jtricks.optim.sgd(0.1, momentum=0.9)),
}


def mesh_of(kind, n=8, names=("data",), shape=None):
    types = (AxisType.Explicit if kind == "explicit" else AxisType.Auto,) * len(names)
    return jax.make_mesh(shape or (n,), names, types)


@functools.cache
def _reference_run(tx_name):
    """Three single-device steps (cached: every form compares to it)."""
    loss_fn, tx = classifier_loss(MODEL), TXS[tx_name]
    step = jax.jit(lambda s, b: train_step(s, b, loss_fn=loss_fn, tx=tx))
    state = _state(MODEL, SHAPE, tx)
    for batch in _batches("mlp", 3):
        state, metrics = step(state, batch)
    return state, metrics


# tests/test_parallel.py runs jit, shard_map and shard_loss on Auto meshes.
@pytest.mark.parametrize("kind, form, tx_name", [
    ("explicit", "jit", "sgd"), ("explicit", "shard_map", "sgd"),
    ("explicit", "jit", "accumulate"), ("explicit", "jit", "flatten"),
    ("auto", "jit", "accumulate"), ("auto", "jit", "flatten")])
def test_step_on_either_mesh_equals_one_device(kind, form, tx_name):
    """sharded_step's jit form is train_step over shard_loss."""
    mesh, tx = mesh_of(kind), TXS[tx_name]
    batches = _batches("mlp", 3)
    expected, expected_metrics = _reference_run(tx_name)
    state = parallel.replicate_on_mesh(_state(MODEL, SHAPE, tx), mesh)
    step = parallel.sharded_step(classifier_loss(MODEL), tx, mesh, per_device=form == "shard_map")
    for batch in batches:
        state, metrics = step(state, parallel.shard_batch(batch, mesh))
    state, metrics = jax.device_get((state, metrics))
    _assert_trees_close(state, expected)
    _assert_trees_close(metrics, expected_metrics)
    assert int(state.step) == len(batches)


FIT = dict(tx=TXS["sgd"], epochs=2, batch_size=16, progress=False, data_key=3)


@functools.cache
def _fit_data_and_reference():
    x = jnp.concatenate([b[0] for b in _batches("mlp", 4)])
    y = jnp.concatenate([b[1] for b in _batches("mlp", 4)])
    return (x, y), fit(_state(MODEL, SHAPE, FIT["tx"]), (x, y), loss_fn=classifier_loss(MODEL),
                       **FIT)


@pytest.mark.parametrize("kind", ["explicit", "auto"])
def test_fit_over_shard_loss_on_either_mesh_equals_one_device(kind):
    mesh, tx = mesh_of(kind), FIT["tx"]
    (x, y), expected = _fit_data_and_reference()
    got = fit(parallel.replicate_on_mesh(_state(MODEL, SHAPE, tx), mesh), (x, y),
              loss_fn=parallel.shard_loss(classifier_loss(MODEL), mesh), **FIT)
    _assert_trees_close(jax.device_get(got.state), expected.state)
    assert int(got.state.step) == 8
    assert got.state.params["dense_0"]["kernel"].sharding.mesh.shape == mesh.shape
