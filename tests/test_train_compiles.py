"""The number of programs a training run compiles is pinned, so it cannot creep back.

Every program JAX lowers is counted with a ``jax.monitoring`` listener (the
JAXPR-to-MLIR event fires once per program built, whether or not a persistent
cache then supplies the executable). Eager operations compile one small program
each; ``fit`` and ``jtricks train`` run only jitted programs, each built once.
"""

from __future__ import annotations

import contextlib

import jax
import jax.monitoring
import numpy as np
import pytest

import jtricks
import jtricks.train as jt

_LOWERED = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_names: list[str] | None = None


def _listener(event, duration, **kwargs):
    if event == _LOWERED and _names is not None:
        _names.append(kwargs.get("fun_name", "?"))


jax.monitoring.register_event_duration_secs_listener(_listener)


@contextlib.contextmanager
def lowered():
    """Collects the names of the programs lowered inside the block (caches cleared first,
    so a program an earlier test built counts again)."""
    global _names
    jax.clear_caches()
    _names = names = []
    try:
        yield names
    finally:
        _names = None


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32)


def test_fit_compiles_each_program_once():
    model = jtricks.nn.mlp([16, 2])
    tx = jtricks.optim.adam(1e-2)
    with lowered() as names:
        state, data_key = jt.init_state(model, tx, 0, (6,))
        result = jt.fit(state, _data(40, 0), loss_fn=jt.classifier_loss(model), tx=tx,
                        epochs=3, batch_size=8, data_key=data_key, val_data=_data(24, 1),
                        eval_fn=jt.classifier_eval(model), averager=jt.ema(0.9),
                        early_stopping=jt.early_stopping(5), progress=False)
    assert len(result.history) == 3
    # init_state, the epoch, the epoch's order, the finiteness check, evaluation (of
    # the parameters and of their average: one program), the averager's init and the
    # averaged parameters, early stopping's init and update: 9 programs, none per
    # epoch (eagerly, every operation of these would compile a program of its own),
    # none twice (the finiteness check and evaluation compile on a background thread
    # while the epoch compiles; the calls run what it compiled).
    assert len(names) == 9 and len(set(names)) == 8, names  # two are named _init


def test_jtricks_train_compiles_each_program_once(tmp_path):
    pytest.importorskip("sklearn")
    from jtricks.cli import main

    with lowered() as names:
        assert main(["train", "--epochs", "2", "--hidden", "16", "--quiet",
                     "--out", str(tmp_path)]) == 0
    # Seeding the split (2: the seed's staging and threefry's seed), the split's
    # permutation, init_state, the epoch, its order, the finiteness check, validation
    # and the test evaluation (another shape); the data are scaled in NumPy. 43
    # programs before.
    assert len(names) == 9, names


@pytest.mark.parametrize("kind", ["minmax", "standardize"])
def test_data_preparation_in_numpy_equals_the_compiled_scalers(kind):
    from jtricks.data._scaling import fit_numpy

    x = np.random.default_rng(0).uniform(0, 255, size=(50, 4, 4, 1)).astype(np.float32)
    other = x[:7] * 1.5
    with lowered() as names:
        scaler, apply = fit_numpy(kind, x)
        scaled = apply(other)
    assert names == []  # nothing compiled
    compiled = (jtricks.data.minmax_scale(x) if kind == "minmax"
                else jtricks.data.standardize(x))
    for got, want in zip(scaler, compiled):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, compiled(other), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="zero"):
        fit_numpy(kind, np.ones((3, 2), np.float32))




@pytest.mark.parametrize("emitters", [True, False])
def test_run_once_options_give_the_default_initial_parameters_bit_for_bit(emitters):
    """``init_state`` and the models' ``init`` compile with ``jtricks._xla.RUN_ONCE``'s
    options (XLA optimisation level 1, XLA:CPU's fusion emitters off; unless XLA_FLAGS
    asks for them): their parameters must be those of XLA's defaults (level 3, emitters
    on). Level 0 would not do: the normal draws' multiply-adds are not contracted there."""
    model, shape = jtricks.nn.cnn(3, channels=(4,), dense_features=(8,), batch_norm=True), (6, 6, 1)
    key = jax.random.PRNGKey(3)
    default = {"xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True}
    ours, theirs = (jax.jit(model.init, static_argnums=1, compiler_options=options)(key, shape)
                    for options in ({"xla_backend_optimization_level": 1,
                                     "xla_cpu_use_fusion_emitters": emitters}, default))
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_models_init_carries_xla_options_only_when_it_is_the_outermost_program(monkeypatch):
    """A model's ``init`` runs as one program compiled with ``RUN_ONCE``'s options when called
    eagerly; inside another program (``jit``, a closure over a concrete key, ``init_state``)
    it must be the plain function, since XLA refuses options on a nested ``jit``. The test
    run's XLA_FLAGS already set both options, which empties ``RUN_ONCE``: forced here."""
    from jtricks.nn import _models

    monkeypatch.setattr(_models, "RUN_ONCE", {"xla_backend_optimization_level": 1,
                                              "xla_cpu_use_fusion_emitters": False})
    model, key = jtricks.nn.mlp((16, 10), dropout=0.1), jax.random.key(5)
    eager = model.init(key, (8,))
    inside = jax.jit(lambda k: model.init(k, (8,)))(key)
    closure = jax.jit(lambda: model.init(key, (8,)))()
    state, _ = jt.init_state(model, jtricks.optim.adam(1e-3), key, (8,))
    first = model.init(jax.random.split(key, 3)[0], (8,))  # init_state's init key
    for ours, other in ((eager, inside), (eager, closure),
                        (first, (state.params, state.model_state))):
        assert jax.tree.structure(ours) == jax.tree.structure(other)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(other)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
