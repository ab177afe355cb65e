"""Bad inputs to ``jtricks.diagnose`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``)."""

import jax
import jax.numpy as jnp
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error, on

from jtricks import diagnose, init

INF, NAN = float("inf"), float("nan")
GRADS = {"w": jnp.array([3.0, 4.0])}
ACTS = jnp.array([[0.1, 5.0], [-4.0, 0.2]])
HEALTH = on(diagnose.gradient_health, GRADS, given="grads")
SIGNAL = on(diagnose.signal_propagation, init.he_normal(), jax.nn.relu, given="he, relu")

CASES = [
    bad("diagnose", HEALTH, "vanish_threshold", 10.0, explode_threshold=1.0),
    bad("diagnose", HEALTH, "explode_threshold", INF),
    bad("diagnose", HEALTH, "explode_threshold", -1.0),
    bad("diagnose", HEALTH, "vanish_threshold", NAN),
    bad("diagnose", HEALTH, "vanish_threshold", "1e-7", exc=TypeError),
    bad("diagnose", HEALTH, "explode_threshold", [1.0, 2.0], exc=TypeError),
    bad("diagnose", on(diagnose.activation_health, ACTS, given="acts"), "activation", "gelu"),
    bad("diagnose", on(diagnose.activation_health, ACTS, given="acts"), "margin", 1.5),
    bad("diagnose", on(diagnose.activation_health, ACTS, given="acts"), "margin", NAN),
    bad("diagnose", on(diagnose.activation_health, ACTS, given="acts"), "margin", True,
        exc=TypeError),
    bad("diagnose", on(diagnose.saturated_fraction, ACTS, given="acts"), "activation", "relu"),
    bad("diagnose", on(diagnose.saturated_fraction, ACTS, given="acts"), "margin", -0.1),
    bad("diagnose", diagnose.dead_fraction, "activations", jnp.array(1.0), shown="()"),
    bad("diagnose", diagnose.dead_fraction, "activations", "relu", exc=TypeError),
    bad("diagnose", SIGNAL, "depth", 0, width=4),
    bad("diagnose", SIGNAL, "width", 2.5, depth=2, exc=TypeError),
    bad("diagnose", SIGNAL, "batch_size", 1, depth=2, width=4),
    bad("diagnose", SIGNAL, "dtype", jnp.int32, depth=2, width=4, shown="int32"),
    bad("diagnose", SIGNAL, "dtype", "float33", depth=2, width=4, exc=TypeError),
    Bad("diagnose", "signal_propagation(None, relu, 2, 4)",
        lambda: diagnose.signal_propagation(None, jax.nn.relu, 2, 4), "initializer", "None",
        TypeError),
    bad("diagnose", on(diagnose.signal_propagation, init.he_normal(), given="he"),
        "activation", "relu", depth=2, width=4, exc=TypeError),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
