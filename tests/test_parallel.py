"""Tests for jtricks.parallel: pmap, jit + NamedSharding and shard_map data parallelism."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks
from jtricks import parallel
from jtricks.train import TrainState, train_step

BATCH, FEATURES, CLASSES = 16, 6, 4
RTOL, ATOL = 2e-5, 2e-6


def _make_model(dropout=0.3):
    """The model under test: dense -> batch norm -> relu -> dropout -> dense."""
    return jtricks.nn.mlp([16, CLASSES], batch_norm=True, dropout=dropout)


def _tx():
    return jtricks.optim.sgd(0.1, momentum=0.9)


def _loss(model, axis_name, *, per_example=True):
    def loss_fn(params, model_state, batch, key):
        x, y = batch
        if per_example:
            logits, new_state = parallel.apply_per_example(
                model.apply, params, model_state, x, key, training=True, axis_name=axis_name
            )
        else:
            logits, new_state = model.apply(
                params, model_state, x, training=True, key=key, axis_name=axis_name
            )
        loss = jtricks.losses.cross_entropy(logits, y)
        return loss, (new_state, {"accuracy": (logits.argmax(-1) == y).mean()})

    return loss_fn


def _batch(seed=0):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(kx, (BATCH, FEATURES)), jax.random.randint(ky, (BATCH,), 0, CLASSES)


def _state(model, tx):
    params, model_state = model.init(jax.random.PRNGKey(1), (FEATURES,))
    return TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(2), model_state=model_state)


MODEL = _make_model()
TX = _tx()


@functools.cache
def _reference_step(per_example=True):
    loss_fn = _loss(MODEL, None, per_example=per_example)
    return jax.jit(lambda s, b: train_step(s, b, loss_fn=loss_fn, tx=TX))


@functools.cache
def _pmap_step(n):
    return parallel.pmap_step(_loss(MODEL, "data"), TX, num_devices=n)


@functools.cache
def _sharded_step(n, per_device, per_example=True):
    loss_fn = _loss(MODEL, "data" if per_device else None, per_example=per_example)
    return parallel.sharded_step(loss_fn, TX, parallel.data_mesh(n), per_device=per_device)


def _run(step, state, batches, put_state, put_batch, get_state=lambda s: s):
    state = put_state(state)
    for batch in batches:
        state, metrics = step(state, put_batch(batch))
    return get_state(state), get_state(metrics)


def _reference(batches, state=None, *, per_example=True):
    state = _state(MODEL, TX) if state is None else state
    return _run(_reference_step(per_example), state, batches, lambda s: s, lambda b: b)


def _run_pmap(batches, n, state=None):
    state = _state(MODEL, TX) if state is None else state
    return _run(
        _pmap_step(n),
        state,
        batches,
        functools.partial(parallel.replicate, num_devices=n),
        functools.partial(parallel.split_batch, num_devices=n),
        parallel.unreplicate,
    )


def _run_sharded(batches, n, state=None, *, per_device, per_example=True):
    state = _state(MODEL, TX) if state is None else state
    mesh = parallel.data_mesh(n)
    return _run(
        _sharded_step(n, per_device, per_example),
        state,
        batches,
        functools.partial(parallel.replicate_on_mesh, mesh=mesh),
        functools.partial(parallel.shard_batch, mesh=mesh),
        jax.device_get,
    )


FORMS = {
    "pmap": _run_pmap,
    "shard_map": functools.partial(_run_sharded, per_device=True),
    # Over the global batch the loss is written as on one device: the plain model.
    "jit": functools.partial(_run_sharded, per_device=False, per_example=False),
}


def _assert_trees_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL), a, b)


@functools.cache
def _batches():
    return [_batch(0), _batch(1)]


@pytest.mark.parametrize("n", [1, 2, 8])
@pytest.mark.parametrize("form", ["pmap", "shard_map"])
def test_data_parallel_step_equals_single_device_step(form, n):
    """Batch norm (synchronised) and dropout (per-example keys) in the model."""
    expected, expected_metrics = _reference(_batches())
    state, metrics = FORMS[form](_batches(), n)
    _assert_trees_close(state.params, expected.params)
    _assert_trees_close(state.model_state, expected.model_state)
    _assert_trees_close(metrics, expected_metrics)
    assert int(state.step) == 2
    # The parameters really moved: the comparison is not between two initial states.
    initial = _state(MODEL, TX).params["dense_0"]["kernel"]
    assert not np.allclose(expected.params["dense_0"]["kernel"], initial, atol=1e-3)


def test_jit_form_equals_single_device_step():
    """jit over the global batch, written as on one device: even a plain model (one
    dropout key for the whole batch) is device-count free, since its masks are
    partitioned element by element."""
    state, metrics = FORMS["jit"](_batches(), 8)
    expected, expected_metrics = _reference(_batches(), per_example=False)
    _assert_trees_close((state.params, state.model_state), (expected.params, expected.model_state))
    _assert_trees_close(metrics, expected_metrics)
    # XLA really split the work: the gradients are summed across the devices.
    step = _sharded_step(8, False, False)
    mesh = parallel.data_mesh(8)
    args = parallel.replicate_on_mesh(_state(MODEL, TX), mesh), parallel.shard_batch(_batch(0), mesh)
    assert "all-reduce" in step.lower(*args).compile().as_text()


def test_apply_per_example_equals_whole_batch_model():
    """Without dropout, per-example application with synced statistics is the batch model."""
    model = _make_model(dropout=0.0)
    params, state = model.init(jax.random.PRNGKey(0), (FEATURES,))
    x, _ = _batch()
    y_ref, s_ref = model.apply(params, state, x, training=True)
    y, s = jax.jit(
        lambda p, s, x: parallel.apply_per_example(model.apply, p, s, x, jax.random.PRNGKey(3), training=True)
    )(params, state, x)
    _assert_trees_close((y, s), (y_ref, s_ref))


def _dropout_only(params, state, x, *, key, axis_name):
    del params, axis_name
    return jtricks.nn.dropout(key, x, 0.5, training=True), state


def _masks(x, key, axis_name=None):
    return parallel.apply_per_example(_dropout_only, None, {}, x, key, axis_name=axis_name)[0]


def test_dropout_masks_differ_across_devices_and_are_reproducible():
    on_8 = jax.pmap(functools.partial(_masks, axis_name="data"), axis_name="data", in_axes=(0, None))
    on_1 = jax.jit(_masks)
    x = jnp.ones((BATCH, 32))
    key = jax.random.PRNGKey(7)
    masks = np.asarray(on_8(parallel.split_batch(x, 8), key)).reshape(8, -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.array_equal(masks[i], masks[j]), (i, j)
    # The same key gives the same masks again, and the same on one device.
    np.testing.assert_array_equal(np.asarray(on_8(parallel.split_batch(x, 8), key)).reshape(8, -1), masks)
    np.testing.assert_array_equal(np.asarray(on_1(x, key)).reshape(8, -1), masks)
    assert not np.array_equal(np.asarray(on_1(x, jax.random.PRNGKey(8))).reshape(8, -1), masks)


def test_device_dropout_keys_differ_across_devices():
    """dropout_keys="device" hands every device fold_in(step_key, device index)."""

    def loss_fn(params, model_state, batch, key):
        return jnp.sum(params * 0.0), (model_state, {"key": key.astype(jnp.float32)})

    tx = jtricks.optim.sgd(0.1)
    state = TrainState.create(params=jnp.zeros(()), tx=tx, key=jax.random.PRNGKey(0))
    step = parallel.pmap_step(loss_fn, tx, num_devices=4, dropout_keys="device")
    # pmean of the keys is their mean: equal to device 0's key only if all coincide.
    _, metrics = step(parallel.replicate(state, 4), parallel.split_batch(jnp.zeros((4, 1)), 4))
    _, step_key = jax.random.split(state.key)
    keys = np.stack([jax.random.fold_in(step_key, d) for d in range(4)]).astype(np.float32)
    np.testing.assert_allclose(parallel.unreplicate(metrics)["key"], keys.mean(0), rtol=1e-6)


@pytest.mark.parametrize("form", ["pmap", "jit"])
def test_resuming_from_a_saved_state_reproduces_the_run(form):
    """Two steps, the state through host memory, one more: the run of three steps."""
    batches = _batches() + [_batch(2)]
    full, _ = FORMS[form](batches, 8)
    half, _ = FORMS[form](batches[:2], 8)
    saved = jax.device_get(half)
    resumed, _ = FORMS[form](batches[2:], 8, saved)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), jax.device_get(full))


def test_indivisible_batch_is_a_clear_error():
    x = jnp.zeros((10, 3))
    with pytest.raises(ValueError, match="batch size 10 does not divide by the 8 devices"):
        parallel.split_batch(x, 8)
    with pytest.raises(ValueError, match="batch size 10 does not divide by the 4 devices"):
        parallel.shard_batch(x, parallel.data_mesh(4))
    with pytest.raises(ValueError, match="leading batch axis"):
        parallel.split_batch((jnp.zeros((8, 1)), jnp.zeros((4,))), 4)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: parallel.replicate(0.0, 9), "num_devices=9 exceeds the 8 local devices"),
        (lambda: parallel.data_mesh(0), "num_devices=0 must be >= 1"),
        (lambda: parallel.pmap_step(None, None, dropout_keys="host"), "dropout_keys='host' must be one of"),
        (lambda: parallel.sharded_step(None, None, parallel.data_mesh(2), dropout_keys="x"), "dropout_keys='x'"),
        (
            lambda: parallel.sharded_step(None, None, jax.make_mesh((2, 4), ("a", "b"))),
            "mesh must have exactly one",
        ),
        (lambda: parallel.initialize("127.0.0.1:1", 2, 2), "process_id=2 must be < num_processes=2"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cli_train_devices_runs_data_parallel(tmp_path, capsys):
    import json

    from jtricks.cli import main

    argv = ["train", "--hidden", "32", "--epochs", "2", "--lr", "0.01", "--batch-size", "64",
            "--dropout", "0.2", "--quiet"]
    assert main([*argv, "--devices", "8", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["devices"] == 8 and summary["test_accuracy"] > 0.5
    assert main([*argv, "--devices", "3", "--out", str(tmp_path)]) == 2
    assert "--batch-size 64 does not divide by --devices 3" in capsys.readouterr().err
