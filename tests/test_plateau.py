"""One meaning of reduce-on-plateau: jtricks.optim.reduce_on_plateau is pinned to
optax.contrib.reduce_on_plateau on the same sequences of monitored values (the engine
feeds it value= at every step, see test_train_loop.py for the same inside fit)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo

SEQUENCES = {
    "never improves after the first": [1.0] * 8,
    "improves then stalls": [1.0, 0.8, 0.7, 0.7, 0.71, 0.69, 0.7, 0.5, 0.5, 0.5],
    "noisy": [1.0, 1.1, 0.9, 0.95, 0.92, 0.91, 0.93, 0.85, 0.9, 0.88, 0.87, 0.9],
    "with a NaN": [1.0, 0.9, float("nan"), 0.95, 0.9, 0.8, 0.85, 0.85],
}
SETTINGS = [
    dict(factor=0.5, patience=1),
    dict(factor=0.5, patience=2, cooldown=1),
    dict(factor=0.1, patience=1, min_scale=0.02),
    dict(factor=0.5, patience=1, rtol=0.0, atol=0.05),
    dict(factor=0.5, patience=1, accumulation_size=2),
]


def _scales(make, values, **kw):
    """The scale after each value, the whole sequence in one compiled scan."""
    tx = make(**kw)
    params = {"w": jnp.zeros(3)}

    def step(state, v):
        _, state = tx.update({"w": jnp.ones(3)}, state, params, value=v)
        return state, state.scale

    _, scales = jax.jit(lambda vs: jax.lax.scan(step, tx.init(params), vs))(
        jnp.asarray(values, jnp.float32))
    return [float(s) for s in scales]


@pytest.mark.parametrize("name", list(SEQUENCES))
@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_scales_equal_optax_contrib(name, kw):
    ours = _scales(jo.reduce_on_plateau, SEQUENCES[name], **kw)
    theirs = _scales(optax.contrib.reduce_on_plateau, SEQUENCES[name], **kw)
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)


def test_patience_one_reduces_at_the_first_evaluation_that_fails():
    """The issue's table: with patience=1 and a value that never improves after the
    first evaluation, optax's meaning gives 1, .5, .25, ... (PyTorch's ReduceLROnPlateau
    would give 1, 1, .5, .5, .25: it reduces one evaluation later)."""
    assert _scales(jo.reduce_on_plateau, [1.0] * 5, factor=0.5, patience=1) == [
        1.0, 0.5, 0.25, 0.125, 0.0625]
