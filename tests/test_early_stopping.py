"""Tests for jtricks.train._early_stopping: pinned to ``keras.callbacks.EarlyStopping``.

The reference is the real Keras 3 callback, run by ``model.fit`` on a tiny Keras
model (``KERAS_BACKEND=jax``) that sees the same monitored values; the test
compares, after every epoch, ``wait``, ``best``, ``best_epoch`` and whether
training stops, and at the end the weights Keras restores with
``restore_best_weights=True`` against ``state.best_params``.
"""

import functools
import itertools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks.train import early_stopping

# keras' variables convert with np.array(copy=False) under numpy 2 (its own deprecation).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*")

EPOCHS = 12
NAN = float("nan")
# Dyadic values (exact in float32 and float64), so Keras' float64 arithmetic and
# ours in float32 take the same decisions, even on the min_delta boundary.
SEQUENCES = {
    "plateaus": [1.0, 0.75, 0.5, 0.5, 0.625, 0.4375, 0.5, 0.5, 0.5, 0.25, 0.5, 0.5],
    "nan_inside": [1.0, NAN, 0.75, NAN, NAN, 0.5, 0.625, 0.625, 0.625, 0.625, 0.375, 0.5],
    "nan_first": [NAN, 0.5, 0.25, 0.125, 0.0625, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    "steps_of_min_delta": [1.0, 0.875, 0.75, 0.625, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.0, 0.0],
    "constant": [0.5] * EPOCHS,
    "rising_accuracy": [0.25, 0.5, 0.5, 0.625, 0.5, 0.75, 0.75, 0.75, 0.75, 0.875, 0.5, 0.5],
    "decreasing": [1.0 - k / 16 for k in range(EPOCHS)],
}
# Baselines per mode: one never beaten by any sequence, one beaten by some epochs.
BASELINES = {"min": (None, -1.0, 0.5), "max": (None, 2.0, 0.5)}


# ----------------------------------------------------------------------------- keras


def _import_keras():
    """Keras 3 on the JAX backend, or a skip that says why not."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "jax"
    try:
        import keras
    except Exception as err:  # noqa: BLE001 - any import failure means "no reference"
        pytest.skip(f"keras (the reference of these tests) is not importable: {err!r}; "
                    "install it with `pip install keras`")
    if keras.backend.backend() != "jax":
        pytest.skip(f"keras was already imported with backend {keras.backend.backend()!r}; "
                    "these tests need KERAS_BACKEND=jax")
    return keras


@functools.lru_cache(maxsize=None)
def _keras_model():
    keras = _import_keras()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.0), loss="mse")
    return model


def _keras_run(values, patience, min_delta, mode, baseline, start_from_epoch):
    """``model.fit`` with the real callback; returns its per-epoch view and the result."""
    keras = _import_keras()
    model = _keras_model()

    class Inject(keras.callbacks.Callback):
        """Puts the scripted value in the logs and labels the weights with the epoch."""

        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = values[epoch]
            self.model.set_weights([np.full(w.shape, epoch, np.float32)
                                    for w in self.model.get_weights()])

    class Record(keras.callbacks.Callback):
        """Reads the early-stopping callback after it has seen each epoch."""

        def __init__(self, es):
            super().__init__()
            self.es, self.rows = es, []

        def on_epoch_end(self, epoch, logs=None):
            self.rows.append((self.es.wait, self.es.best, self.es.best_epoch,
                              bool(self.model.stop_training)))

    es = keras.callbacks.EarlyStopping(
        monitor="score", min_delta=min_delta, patience=patience, mode=mode, baseline=baseline,
        restore_best_weights=True, start_from_epoch=start_from_epoch)
    record = Record(es)
    x, y = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    model.fit(x, y, epochs=len(values), verbose=0, callbacks=[Inject(), es, record])
    restored = int(model.get_weights()[0].ravel()[0])
    return record.rows, es, restored


# ----------------------------------------------------------------------------- jtricks


@functools.partial(jax.jit, static_argnames=("mode", "has_baseline"))
def _scan(values, patience, min_delta, baseline, start_from_epoch, mode, has_baseline):
    """Feeds the values; params at epoch e are e * ones. Returns every intermediate state."""
    stopper = early_stopping(patience, min_delta, mode, baseline if has_baseline else None,
                             start_from_epoch=start_from_epoch)

    def body(state, inputs):
        epoch, value = inputs
        state = stopper.update(value, state, {"w": jnp.full((2,), epoch, jnp.float32)})
        return state, state

    state = stopper.init({"w": jnp.full((2,), -1.0)})
    return jax.lax.scan(body, state, (jnp.arange(values.shape[0]), values))


def _run(values, patience=0, min_delta=0.0, mode="min", baseline=None, start_from_epoch=0):
    """(final state, per-epoch states, 0-based epoch at which stop was first set or None)."""
    final, states = _scan(jnp.asarray(values, jnp.float32), patience, min_delta,
                          0.0 if baseline is None else baseline, start_from_epoch,
                          mode, baseline is not None)
    stops = np.asarray(states.stop)
    return final, states, (int(np.argmax(stops)) if stops.any() else None)


def _same(a, b):
    return (np.isnan(a) and np.isnan(b)) or a == b


def _check_against_keras(values, patience, min_delta, mode, baseline, start_from_epoch):
    rows, es, restored = _keras_run(values, patience, min_delta, mode, baseline, start_from_epoch)
    final, states, stop_epoch = _run(values, patience, min_delta, mode, baseline, start_from_epoch)
    where = (f"values={values}, patience={patience}, min_delta={min_delta}, mode={mode}, "
             f"baseline={baseline}, start_from_epoch={start_from_epoch}")
    # the number of epochs run, and where it stopped
    assert len(rows) == (len(values) if stop_epoch is None else stop_epoch + 1), where
    assert (es.stopped_epoch or None) == stop_epoch, where
    # every epoch: wait, best value, best epoch, stop flag
    for epoch, (wait, best, best_epoch, stop) in enumerate(rows):
        state = jax.tree.map(lambda x, e=epoch: x[e], states)
        at = f"{where}, epoch={epoch}"
        assert int(state.wait) == wait, at
        assert bool(state.stop) == stop, at
        if best is None:  # nothing monitored yet
            assert int(state.best_epoch) == -1, at
            assert float(state.best_value) == (np.inf if mode == "min" else -np.inf), at
        else:
            assert _same(float(state.best_value), best), at
            assert int(state.best_epoch) == best_epoch, at
    # the weights Keras ends with (restore_best_weights=True) are our best params
    np.testing.assert_array_equal(final.best_params["w"], np.full(2, float(restored)), err_msg=where)
    return stop_epoch


def _cases():
    for name, values in SEQUENCES.items():
        mode = "max" if name == "rising_accuracy" else "min"
        for patience, min_delta, baseline in itertools.product(
                (0, 1, 3), (0.0, 0.125), BASELINES[mode]):
            yield pytest.param(values, patience, min_delta, mode, baseline, 0,
                               id=f"{name}-p{patience}-d{min_delta}-b{baseline}")
    # mode "max" on every sequence (mirrored), and a monitoring start after a warm-up
    for name, values in SEQUENCES.items():
        yield pytest.param([-v for v in values], 1, 0.125, "max", None, 0, id=f"{name}-max-mirror")
        yield pytest.param(values, 1, 0.0, "min", None, 3, id=f"{name}-start3")
        yield pytest.param(values, 0, 0.0, "min", 0.5, 2, id=f"{name}-start2-baseline")


@pytest.mark.parametrize("values, patience, min_delta, mode, baseline, start_from_epoch",
                         list(_cases()))
def test_matches_keras_early_stopping(values, patience, min_delta, mode, baseline,
                                      start_from_epoch):
    _check_against_keras(values, patience, min_delta, mode, baseline, start_from_epoch)


def test_keras_cases_cover_stopping_and_not_stopping():
    """The sequences above are not vacuous: some runs stop early, some never do."""
    stops = {_check_against_keras(SEQUENCES[n], p, 0.0, "min", None, 0)
             for n, p in [("plateaus", 1), ("decreasing", 3)]}
    assert stops == {3, None}


# --------------------------------------------------------------- hand-computed cases
# These pin the same rules without keras installed.

#                 epoch: 0    1    2    3     4     5     6     7     8     9
LOSS = np.array([1.0, 0.8, 0.6, 0.55, 0.56, 0.54, 0.57, 0.58, 0.59, 0.6])


@pytest.mark.parametrize(
    "curve, patience, min_delta, mode, stop, best",
    [
        (LOSS, 3, 0.0, "min", 8, 5),       # best 0.54 at epoch 5, stops at 5 + 3
        (LOSS, 2, 0.0, "min", 7, 5),
        (LOSS, 2, 0.02, "min", 5, 3),      # 0.54 + 0.02 < 0.55 is false: best stays at epoch 3
        (LOSS, 0, 0.0, "min", 4, 3),       # patience 0: first non-improving epoch
        (LOSS, 20, 0.0, "min", None, 5),   # never stops
        (1 - LOSS, 3, 0.0, "max", 8, 5),   # accuracy-like curve
    ],
)
def test_scripted_curve(curve, patience, min_delta, mode, stop, best):
    state, _, stop_epoch = _run(curve, patience, min_delta, mode)
    assert stop_epoch == stop
    assert int(state.best_epoch) == best
    np.testing.assert_allclose(state.best_value, curve[best], rtol=1e-6)
    np.testing.assert_array_equal(state.best_params["w"], np.full(2, float(best)))


def test_frozen_after_stop_and_nan_never_improves():
    curve = np.array([1.0, np.nan, 0.9, 0.1, 0.05])
    state, _, stop_epoch = _run(curve, patience=1)
    assert stop_epoch == 1
    assert int(state.best_epoch) == 0 and float(state.best_value) == 1.0
    assert int(state.epoch) == 2  # later values are ignored


def test_first_value_is_always_the_best_even_nan():
    """Keras starts with ``best = None``: the first value wins, even NaN, and a NaN best
    is never improved on."""
    state, _, stop_epoch = _run([np.nan, 0.5, 0.25, 0.1], patience=2)
    assert np.isnan(float(state.best_value)) and int(state.best_epoch) == 0
    assert stop_epoch == 2
    state, _, _ = _run([np.inf, 0.5], patience=2)
    assert float(state.best_value) == 0.5 and int(state.best_epoch) == 1


def test_baseline_never_beaten_stops_after_patience_epochs():
    # wait is never reset: epochs 0..2 improve (no stop at an improving epoch), epoch 3
    # does not and wait = 4 >= 2.
    state, states, stop_epoch = _run([1.0, 0.9, 0.8, 0.85, 0.7], patience=2, baseline=0.5)
    np.testing.assert_array_equal(states.wait[:4], [1, 2, 3, 4])
    assert stop_epoch == 3 and int(state.best_epoch) == 2
    # beaten once: wait is reset there
    state, states, stop_epoch = _run([1.0, 0.4, 0.45, 0.45, 0.45], patience=2, baseline=0.5)
    np.testing.assert_array_equal(states.wait[:4], [1, 0, 1, 2])
    assert stop_epoch == 3 and int(state.best_epoch) == 1


def test_start_from_epoch_ignores_the_warm_up():
    state, states, stop_epoch = _run([0.1, 0.2, 5.0, 4.0, 4.5, 4.5], patience=1, start_from_epoch=2)
    np.testing.assert_array_equal(states.best_epoch[:2], [-1, -1])
    np.testing.assert_array_equal(states.best_params["w"][:2, 0], [0.0, 1.0])  # follows params
    assert int(state.best_epoch) == 3 and stop_epoch == 4


def test_update_takes_value_state_params_in_gradient_transformation_order():
    stopper = early_stopping(patience=1)
    state = stopper.init({"w": jnp.zeros(2)})
    state = stopper.update(0.5, state, {"w": jnp.ones(2)})
    assert float(state.best_value) == 0.5
    np.testing.assert_array_equal(state.best_params["w"], np.ones(2))
    with pytest.raises(TypeError, match="monitored value comes first"):  # the old order
        stopper.update(state, 0.25, {"w": jnp.ones(2)})


def test_vmap_several_curves_each_stops_at_its_own_epoch():
    rng = np.random.default_rng(0)
    curves = np.stack([LOSS, 1.2 - LOSS, np.linspace(1, 0, 10), rng.uniform(size=10)]).astype(np.float32)
    stopper = early_stopping(patience=2)
    params = {"w": jnp.zeros((4, 3))}
    state = jax.vmap(stopper.init)(params)
    update = jax.jit(jax.vmap(stopper.update))
    for epoch in range(curves.shape[1]):
        state = update(curves[:, epoch], state, {"w": jnp.full((4, 3), float(epoch))})
    for i, curve in enumerate(curves):
        alone, _, stop_epoch = _run(curve, patience=2)
        assert bool(state.stop[i]) == (stop_epoch is not None)
        assert int(state.best_epoch[i]) == int(alone.best_epoch)
        np.testing.assert_array_equal(state.best_params["w"][i], np.full(3, float(alone.best_epoch)))
    assert len(set(np.asarray(state.best_epoch).tolist())) > 1


def test_traced_patience_does_not_recompile():
    def run(patience, curve):
        stopper = early_stopping(patience)
        state = stopper.init(jnp.zeros(()))
        state, _ = jax.lax.scan(lambda s, v: (stopper.update(v, s, v), None), state, curve)
        return state.best_epoch, state.stop

    sweep = jax.jit(jax.vmap(run, in_axes=(0, None)))
    best, stop = sweep(jnp.array([0, 1, 3, 20]), jnp.asarray(LOSS))
    np.testing.assert_array_equal(best, [3, 3, 5, 5])
    np.testing.assert_array_equal(stop, [True, True, True, False])
    sweep(jnp.array([2, 4, 5, 6]), jnp.asarray(LOSS))
    assert sweep._cache_size() == 1


def test_defaults_are_keras_defaults():
    state, _, stop_epoch = _run([1.0, 1.0, 0.5])  # patience=0, min_delta=0, mode="min"
    assert stop_epoch == 1 and int(state.best_epoch) == 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"patience": 3, "mode": "minimum"}, ValueError, "mode='minimum'"),
     ({"mode": "auto"}, ValueError, "mode='auto'"),
     ({"patience": -1}, ValueError, "patience=-1"),
     ({"patience": "3"}, TypeError, "patience='3'"),
     ({"patience": 1, "min_delta": -0.1}, ValueError, "min_delta=-0.1"),
     ({"baseline": float("nan")}, ValueError, "baseline=nan"),
     ({"start_from_epoch": -2}, ValueError, "start_from_epoch=-2")],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        early_stopping(**kwargs)
