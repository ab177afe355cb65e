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


# tests/test_parallel.py runs jit, shard_map and shard_loss on Auto meshes (and
# test_data_by_model_mesh_equals_one_device below a 2-D Auto mesh); Auto meshes
# always took accumulate_gradients and flatten.
@pytest.mark.parametrize("kind, form, tx_name", [
    ("explicit", "jit", "sgd"), ("explicit", "shard_map", "sgd"),
    ("explicit", "jit", "accumulate"), ("explicit", "jit", "flatten")])
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


@pytest.mark.parametrize("kind", ["explicit"])  # Auto: shard_loss's docstring example
def test_fit_over_shard_loss_on_either_mesh_equals_one_device(kind):
    mesh, tx = mesh_of(kind), FIT["tx"]
    (x, y), expected = _fit_data_and_reference()
    got = fit(parallel.replicate_on_mesh(_state(MODEL, SHAPE, tx), mesh), (x, y),
              loss_fn=parallel.shard_loss(classifier_loss(MODEL), mesh), **FIT)
    _assert_trees_close(jax.device_get(got.state), expected.state)
    assert int(got.state.step) == 8
    assert got.state.params["dense_0"]["kernel"].sharding.mesh.shape == mesh.shape


# --- parameters and optimizer state split over a `model` axis (FSDP) -----------------

def _model_params(mesh):
    params = {"w": jnp.arange(64.0).reshape(16, 4) / 64, "b": jnp.ones(8)}
    return parallel.shard_params(params, mesh)


def _split_eighths(tree):
    """The leaves of ``tree`` with 8 or more elements whose devices hold more than 1/8."""
    return [(jax.tree_util.keystr(path), leaf.shape, leaf.sharding)
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
            if np.size(leaf) >= 8
            and {s.data.size for s in leaf.addressable_shards} != {np.size(leaf) // 8}]


def test_every_init_gives_the_state_the_parameters_sharding():
    """Every registry configuration (transforms, wrappers, flatten, accumulate) and
    TrainState.create: 1/8 of every parameter-sized state leaf per device, from init on."""
    from jtricks import _registry

    params = _model_params(mesh_of("explicit", names=("model",)))
    assert not _split_eighths(params)
    for config in _registry.configs():
        assert not _split_eighths(config.build().init(params)), config.id
    state = jtricks.train.TrainState.create(params=params, tx=TXS["accumulate"], key=0)
    assert not _split_eighths(state.opt_state)
    whole = jax.device_put(params, jax.devices()[0])  # the check can fail
    assert _split_eighths(jtricks.optim.adam(1e-3).init(whole))


def _model_mesh_run(kind, tx, steps=2):
    mesh = mesh_of(kind, names=("data", "model"), shape=(2, 4))
    params, model_state = MODEL.init(jax.random.PRNGKey(1), SHAPE)
    state = jtricks.train.TrainState.create(params=parallel.shard_params(params, mesh), tx=tx,
                                            key=jax.random.PRNGKey(2), model_state=model_state)
    traces, loss_fn = [], classifier_loss(MODEL)

    def counted(*args):
        traces.append(1)
        return loss_fn(*args)

    step = parallel.sharded_step(counted, tx, mesh)
    for batch in _batches("mlp", 3)[:steps]:
        state, metrics = step(state, parallel.shard_batch(batch, mesh))
    assert len(traces) == 1, "a fresh state and the stepped one must share one compilation"
    return state, metrics


@pytest.mark.parametrize("kind", ["explicit", "auto"])
def test_data_by_model_mesh_equals_one_device(kind):
    """SGD-momentum on a 2 x 4 (data, model) mesh: the single-device run, with the
    parameters and the momentum split over `model` (each device holds 1/4)."""
    state, metrics = _model_mesh_run(kind, TXS["sgd"], steps=3)
    expected, expected_metrics = _reference_run("sgd")
    _assert_trees_close(jax.device_get(state), expected)
    _assert_trees_close(jax.device_get(metrics), expected_metrics)
    # dense_0's kernel (6, 16) and its momentum are split along the 16.
    split = [leaf for leaf in jax.tree.leaves((state.params, state.opt_state))
             if leaf.shape == (6, 16)]
    assert len(split) == 2
    assert all(leaf.addressable_shards[0].data.shape == (6, 4) for leaf in split)


def test_model_sharded_adam_equals_optax_and_never_gathers_its_state():
    """A jtricks Adam step and optax's on the same shardings give the same numbers;
    the optimizer update alone, compiled on the split state, has no all-gather."""
    import optax

    ours, _ = _model_mesh_run("explicit", jtricks.optim.adam(1e-2))
    theirs, _ = _model_mesh_run("explicit", optax.adam(1e-2))
    for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(theirs.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    mesh = mesh_of("explicit", names=("model",))
    params = _model_params(mesh)
    tx = jtricks.optim.adam(1e-2)
    opt_state = tx.init(params)
    update = jax.jit(tx.update)
    text = update.lower(params, opt_state, params).compile().as_text()
    assert "all-gather" not in text and "all-reduce" not in text
    updates, new_state = update(params, opt_state, params)
    assert not _split_eighths((updates, new_state))
