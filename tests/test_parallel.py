"""Tests for jtricks.parallel: pmap, jit + NamedSharding and shard_map data parallelism.

Every form runs the same loss, ``jtricks.train.classifier_loss`` of a
``jtricks.nn`` model, written as on one device: the per-example dropout-key
rule and the global batch-norm statistics must come without the loss asking
for them, and 1, 2 and 8 devices must give the single-device step.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks
from jtricks import parallel
from jtricks.train import TrainState, classifier_loss, train_step

BATCH, FEATURES, CLASSES = 16, 6, 4
# float32 rounding: the devices sum gradients and batch statistics in another order.
RTOL, ATOL = 2e-5, 2e-6

MLP = jtricks.nn.mlp([16, CLASSES], batch_norm=True, dropout=0.3)
MODELS = {
    "mlp": (MLP, (FEATURES,)),
    "cnn": (jtricks.nn.cnn(CLASSES, channels=(4,), dense_features=(8,), batch_norm=True,
                           dropout=0.5), (4, 4, 1)),
    "resnet": (jtricks.nn.resnet(CLASSES, stage_channels=(4,), blocks_per_stage=2,
                                 drop_path=0.5), (4, 4, 1)),
}
TX = jtricks.optim.sgd(0.1, momentum=0.9)


def _batch(seed=0, shape=(FEATURES,)):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(kx, (BATCH, *shape)), jax.random.randint(ky, (BATCH,), 0, CLASSES)


def _state(model, shape, tx=TX):
    params, model_state = model.init(jax.random.PRNGKey(1), shape)
    return TrainState.create(params=params, tx=tx, key=jax.random.PRNGKey(2), model_state=model_state)


@functools.cache
def _reference_step(name):
    loss_fn = classifier_loss(MODELS[name][0])
    return jax.jit(lambda s, b: train_step(s, b, loss_fn=loss_fn, tx=TX))


@functools.cache
def _form_step(form, name, n):
    loss_fn = classifier_loss(MODELS[name][0])
    if form == "pmap":
        return parallel.pmap_step(loss_fn, TX, num_devices=n)
    if form == "shard_loss":  # any jitted loop over a shard_loss is data-parallel
        sharded = parallel.shard_loss(loss_fn, parallel.data_mesh(n))
        return jax.jit(lambda s, b: train_step(s, b, loss_fn=sharded, tx=TX))
    return parallel.sharded_step(loss_fn, TX, parallel.data_mesh(n), per_device=form == "shard_map")


def _run(step, state, batches, put_state, put_batch, get_state=lambda s: s):
    state = put_state(state)
    for batch in batches:
        state, metrics = step(state, put_batch(batch))
    return get_state(state), get_state(metrics)


def _run_form(form, name, batches, n, state=None):
    """``len(batches)`` steps of ``form`` on ``n`` devices, the state and metrics back on the host."""
    state = _state(*MODELS[name]) if state is None else state
    step = _form_step(form, name, n)
    if form == "pmap":
        return _run(step, state, batches, functools.partial(parallel.replicate, num_devices=n),
                    functools.partial(parallel.split_batch, num_devices=n), parallel.unreplicate)
    mesh = parallel.data_mesh(n)
    return _run(step, state, batches, functools.partial(parallel.replicate_on_mesh, mesh=mesh),
                functools.partial(parallel.shard_batch, mesh=mesh), jax.device_get)


def _reference(name, batches, state=None):
    state = _state(*MODELS[name]) if state is None else state
    return _run(_reference_step(name), state, batches, lambda s: s, lambda b: b)


def _assert_trees_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL), a, b)


@functools.cache
def _batches(name="mlp", steps=3):
    return [_batch(i, MODELS[name][1]) for i in range(steps)]


def _check_equals_reference(form, name, n):
    expected, expected_metrics = _reference(name, _batches(name))
    state, metrics = _run_form(form, name, _batches(name), n)
    _assert_trees_close(state.params, expected.params)
    _assert_trees_close(state.model_state, expected.model_state)
    _assert_trees_close(metrics, expected_metrics)
    assert int(state.step) == len(_batches(name))
    # The parameters really moved: the comparison is not between two initial states.
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), expected.params,
                         _state(*MODELS[name]).params)
    assert max(jax.tree.leaves(moved)) > 1e-3


@pytest.mark.parametrize("n", [1, 2, 8])
@pytest.mark.parametrize("form", ["pmap", "shard_map", "jit"])
def test_data_parallel_step_equals_single_device_step(form, n):
    """classifier_loss(mlp with batch norm and dropout), unchanged, on every form."""
    _check_equals_reference(form, "mlp", n)


def test_shard_loss_step_equals_single_device_step():
    """A jitted train_step over parallel.shard_loss(classifier_loss(...)) on 8 devices."""
    _check_equals_reference("shard_loss", "mlp", 8)


@pytest.mark.parametrize("name", ["cnn", "resnet"])
@pytest.mark.parametrize("form", ["pmap", "shard_map", "jit"])
def test_conv_models_are_device_count_free(form, name):
    """cnn (batch norm, dropout) and resnet (batch norm, drop path) on 8 devices."""
    _check_equals_reference(form, name, 8)


def _opted_out(fold_device):
    """pmap of train_step whose loss leaves the rule: with ``fold_device`` it folds the
    device index into its key (one key per device, the old per-device rule), without it
    it also draws one mask per device and keeps local batch-norm statistics
    (``data_parallel(None, per_example=False)`` inside the loss)."""
    inner = classifier_loss(MLP)

    def loss_fn(params, model_state, batch, key):
        key = jax.random.fold_in(key, jax.lax.axis_index("data"))
        if fold_device:
            return inner(params, model_state, batch, key)
        with parallel.data_parallel(None, per_example=False):
            return inner(params, model_state, batch, key)

    def step(state, batch):
        return train_step(state, batch, loss_fn=loss_fn, tx=TX, axis_name="data")

    return jax.pmap(step, axis_name="data")


@pytest.mark.parametrize("fold_device", [False, True])
def test_the_equality_can_fail(fold_device):
    """Without the rule (one draw per device, local statistics), or with the device index
    folded into the key, 8 devices do not give the single-device step."""
    expected, _ = _reference("mlp", _batches())
    state, _ = _run(_opted_out(fold_device), _state(*MODELS["mlp"]), _batches(),
                    functools.partial(parallel.replicate, num_devices=8),
                    functools.partial(parallel.split_batch, num_devices=8), parallel.unreplicate)
    assert not np.allclose(state.params["dense_0"]["kernel"], expected.params["dense_0"]["kernel"],
                           rtol=RTOL, atol=1e-4)


def test_a_hand_written_pmap_of_train_step_follows_the_rule():
    """train_step(axis_name=...) itself traces the loss inside data_parallel: a plain
    jax.pmap of it with classifier_loss equals the single-device step."""
    loss_fn = classifier_loss(MLP)
    step = jax.pmap(lambda s, b: train_step(s, b, loss_fn=loss_fn, tx=TX, axis_name="data"),
                    axis_name="data")
    expected, _ = _reference("mlp", _batches())
    state, _ = _run(step, _state(*MODELS["mlp"]), _batches(),
                    functools.partial(parallel.replicate, num_devices=8),
                    functools.partial(parallel.split_batch, num_devices=8), parallel.unreplicate)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected.params)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def _recording(model):
    """``model`` whose state returns its logits, so that each device's outputs come back."""

    def apply(params, state, x, *, training, key=None, axis_name=None):
        y, _ = model.apply(params, {}, x, training=training, key=key, axis_name=axis_name)
        return y, {"logits": y}

    return jtricks.nn.Model(model.init, apply)


def test_classifier_loss_masks_differ_across_devices_and_match_one_device():
    """Identical inputs: the logits of the examples differ only through their dropout masks."""
    model = _recording(jtricks.nn.mlp([64, CLASSES], dropout=0.5))
    loss_fn = classifier_loss(model)
    state = _state(model, (FEATURES,))
    batch = jnp.ones((BATCH, FEATURES)), jnp.zeros((BATCH,), jnp.int32)
    one, _ = jax.jit(lambda s, b: train_step(s, b, loss_fn=loss_fn, tx=TX))(state, batch)
    expected = np.asarray(one.model_state["logits"])
    assert len({row.tobytes() for row in expected}) == BATCH  # every example its own mask
    for n in (2, 8):
        step = parallel.pmap_step(loss_fn, TX, num_devices=n)
        new, _ = step(parallel.replicate(state, n), parallel.split_batch(batch, n))
        logits = np.asarray(new.model_state["logits"])  # (n, BATCH // n, CLASSES), per device
        for i in range(n):
            for j in range(i + 1, n):
                assert not np.allclose(logits[i], logits[j]), (n, i, j)
        np.testing.assert_allclose(logits.reshape(expected.shape), expected, rtol=RTOL, atol=ATOL)


def _masks(x, key):
    return jtricks.nn.dropout(key, x, 0.5, training=True) != 0


def test_dropout_masks_differ_across_devices_and_are_reproducible():
    """nn.dropout inside per-device code declared with parallel.data_parallel."""

    def per_device(x, key):
        with parallel.data_parallel("data"):
            return jax.pmap(_masks, axis_name="data", in_axes=(0, None))(x, key)

    x = jnp.ones((BATCH, 32))
    key = jax.random.PRNGKey(7)
    masks = np.asarray(per_device(parallel.split_batch(x, 8), key)).reshape(8, -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.array_equal(masks[i], masks[j]), (i, j)
    # The same key gives the same masks again, the same on one device, on 2
    # devices, and on a mesh of two axes (2 x 4, the devices in row-major order).
    np.testing.assert_array_equal(np.asarray(per_device(parallel.split_batch(x, 8), key)).reshape(8, -1), masks)
    one = np.asarray(jax.jit(_masks)(x, key))
    np.testing.assert_array_equal(one.reshape(8, -1), masks)
    np.testing.assert_array_equal(np.asarray(per_device(parallel.split_batch(x, 2), key)).reshape(x.shape), one)
    mesh = jax.make_mesh((2, 4), ("a", "b"))
    spec = jax.sharding.PartitionSpec(("a", "b"))

    def on_mesh(x, key):
        with parallel.data_parallel(("a", "b")):
            return _masks(x, key)

    x_on_mesh = jax.device_put(x, jax.sharding.NamedSharding(mesh, spec))
    two_axes = jax.jit(jax.shard_map(on_mesh, mesh=mesh, in_specs=(spec, jax.sharding.PartitionSpec()),
                                     out_specs=spec))(x_on_mesh, key)
    np.testing.assert_array_equal(np.asarray(two_axes), one)
    assert not np.array_equal(np.asarray(jax.jit(_masks)(x, jax.random.PRNGKey(8))).reshape(8, -1), masks)


def test_jit_form_partitions_the_masks_without_gathering():
    """jit over the global batch: the per-example keys and masks are split along the batch
    axis like the examples (no all-gather), and the gradients are all-reduced."""
    mesh = parallel.data_mesh(8)
    for name in ("mlp", "resnet"):
        args = (parallel.replicate_on_mesh(_state(*MODELS[name]), mesh),
                parallel.shard_batch(_batch(0, MODELS[name][1]), mesh))
        text = _form_step("jit", name, 8).lower(*args).compile().as_text()
        assert "all-reduce" in text
        assert "all-gather" not in text, name


def test_sweep_members_get_the_masks_of_their_solo_runs():
    """jax.vmap of train_step over the dropout rate: each member is its run alone."""
    state = _state(*MODELS["mlp"])
    batch = _batch(0)

    def run(rate):
        loss_fn = classifier_loss(jtricks.nn.mlp([16, CLASSES], batch_norm=True, dropout=rate))
        return train_step(state, batch, loss_fn=loss_fn, tx=TX)

    rates = jnp.array([0.2, 0.5, 0.7])
    swept, _ = jax.jit(jax.vmap(run))(rates)
    solo = jax.jit(run)
    for i, rate in enumerate(rates):
        alone, _ = solo(rate)
        _assert_trees_close(jax.tree.map(lambda a: a[i], swept.params), alone.params)
    kernels = np.asarray(swept.params["dense_0"]["kernel"])
    assert not np.allclose(kernels[0], kernels[1], atol=1e-4)


@pytest.mark.parametrize("form", ["pmap", "jit"])
def test_resuming_from_a_saved_state_reproduces_the_run(form):
    """Two steps, the state through host memory, one more: the run of three steps."""
    batches = _batches()
    full, _ = _run_form(form, "mlp", batches, 8)
    half, _ = _run_form(form, "mlp", batches[:2], 8)
    saved = jax.device_get(half)
    resumed, _ = _run_form(form, "mlp", batches[2:], 8, saved)
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
        (
            lambda: parallel.sharded_step(None, None, jax.make_mesh((2, 4), ("a", "b"))),
            "mesh axes \\('a', 'b'\\) must be named by role",
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


@pytest.mark.parametrize("form", ["pmap", "shard_map", "jit"])
def test_typed_keys_run_every_form_as_raw_keys(form):
    """A TrainState holding a typed key (jax.random.key) replicates, steps and comes back
    typed on every form, with the numbers of the same raw key."""
    model, shape = MODELS["mlp"]
    raw = _state(model, shape)
    typed = raw._replace(key=jax.random.wrap_key_data(raw.key))
    (a, _), (b, _) = (_run_form(form, "mlp", _batches(), 2, state=s) for s in (typed, raw))
    assert jax.dtypes.issubdtype(a.key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(a.key), b.key)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)
