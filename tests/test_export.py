"""jax.export of jtricks training code: the state classes are registered, so a
training step exports, serializes, deserializes and runs with the same numbers."""

import functools
import importlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks
import jtricks.optim as jo
import jtricks.train as jt
from jtricks import _export


def _model_and_state(tx, *, batch_norm=True, key=1):
    model = jtricks.nn.mlp([16, 3], batch_norm=batch_norm, dropout=0.2)
    params, model_state = model.init(jax.random.key(0), (4,))
    state = jt.TrainState.create(params=params, tx=tx, key=key, model_state=model_state)
    x = jax.random.normal(jax.random.key(2), (8, 4))
    return model, state, (x, (x[:, 0] > 0).astype(jnp.int32))


def _roundtrip(fn, *args):
    """``fn`` exported, serialized, deserialized; returns (direct result, result of the
    deserialized program, the deserialized program)."""
    exported = jax.export.export(jax.jit(fn))(*args)
    blob = exported.serialize()
    assert isinstance(blob, (bytes, bytearray)) and len(blob) > 0
    again = jax.export.deserialize(blob)
    assert again.in_tree == exported.in_tree and again.out_tree == exported.out_tree
    return jax.jit(fn)(*args), again.call(*args), again


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert y.dtype == x.dtype
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


_WRAPPED = jo.apply_if_finite(jo.chain(
    jo.clip_by_global_norm(1.0),
    jo.masked(jo.add_decayed_weights(1e-4), lambda p: jax.tree.map(lambda a: a.ndim > 1, p)),
    jo.inject_hyperparams(jo.adam)(learning_rate=jo.schedules.cosine_decay(1e-2, 10)),
    jo.reduce_on_plateau(0.5, 2)), max_consecutive_errors=3)


@pytest.mark.parametrize("tx, key", [(jo.adam(1e-2), 1), (_WRAPPED, jax.random.key(1))],
                         ids=["adam-raw_key", "wrapper_chain-typed_key"])
def test_train_step_exports_serializes_and_runs(tx, key):
    model, state, batch = _model_and_state(tx, key=key)
    step = functools.partial(jt.train_step, loss_fn=jt.classifier_loss(model), tx=tx)
    direct, loaded, program = _roundtrip(step, state, batch)
    _assert_same(direct, loaded)
    new_state, metrics = loaded
    assert isinstance(new_state, jt.TrainState) and int(new_state.step) == 1
    assert type(new_state.opt_state) is type(state.opt_state)
    assert sorted(metrics) == ["accuracy", "grad_norm", "loss"]
    # the new state fits the program again: a loaded step can keep training
    assert program.in_tree == jax.tree.structure(((new_state, batch), {}))


def test_early_stopping_and_averaging_states_export():
    params = {"w": jnp.arange(3.0)}
    stopper, averager = jt.early_stopping(1), jt.swa()

    def update(value, stop_state, avg_state, params):
        return stopper.update(value, stop_state, params), averager.update(params, avg_state)

    args = (jnp.float32(0.5), stopper.init(params), averager.init(params), params)
    direct, loaded, _ = _roundtrip(update, *args)
    _assert_same(direct, loaded)
    assert isinstance(loaded[0], jt.EarlyStoppingState)
    assert isinstance(loaded[1], jt.AveragingState)
    assert int(loaded[0].best_epoch) == 0 and int(loaded[1].count) == 1


def _namedtuples(package):
    import sys

    return {obj for name, module in list(sys.modules.items())
            if module is not None and name.startswith(package)
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, tuple) and hasattr(obj, "_fields")
            and obj.__module__ == module.__name__}


@pytest.mark.parametrize("package", ["jtricks.optim", "jtricks.nn", "jtricks.train",
                                     "jtricks.sweep", "jtricks.data", "jtricks.diagnose"])
def test_every_state_class_is_registered_under_its_public_name(package):
    from jax._src.export._export import serialization_registry

    importlib.import_module(package)
    classes = _namedtuples(package)
    assert classes
    if package in ("jtricks.optim", "jtricks.nn", "jtricks.train"):
        assert any(c.__name__.endswith("State") for c in classes)
    for cls in classes:
        assert cls in serialization_registry, cls
        assert serialization_registry[cls][0] == f"{package}.{cls.__qualname__}"
    assert _export.register_namedtuples(package) == []  # idempotent


def test_two_classes_with_one_name_are_refused(monkeypatch):
    import sys
    import types
    from typing import NamedTuple

    class TrainState(NamedTuple):
        x: int

    fake = types.ModuleType("jtricks.train._fake")
    TrainState.__module__, TrainState.__qualname__ = fake.__name__, "TrainState"
    fake.TrainState = TrainState
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    with pytest.raises(ValueError, match=r"as 'jtricks.train.TrainState': "
                                         r"jtricks.train._state.TrainState has that name"):
        _export.register_namedtuples("jtricks.train")
