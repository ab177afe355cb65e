"""Bad inputs to ``jtricks.init`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``)."""

import jax
import jax.numpy as jnp
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error

from jtricks import init

INF, NAN = float("inf"), float("nan")
KEY = jax.random.key(0)


def drawn(label, make, arg, shown, shape=(3, 4), exc=ValueError, dtype=jnp.float32):
    """A case whose initializer is built fine and fails when drawing ``shape``."""
    return Bad("init", label, lambda: make()(KEY, shape, dtype), arg, shown, exc)


CASES = [
    bad("init", init.uniform, "scale", INF),
    bad("init", init.uniform, "scale", -0.1),
    bad("init", init.uniform, "scale", NAN),
    bad("init", init.uniform, "scale", "0.1", exc=TypeError),
    bad("init", init.uniform, "scale", True, exc=TypeError),
    bad("init", init.uniform, "scale", [0.1], exc=TypeError),
    bad("init", init.uniform, "scale", 1j, exc=TypeError),
    bad("init", init.normal, "stddev", INF),
    bad("init", init.normal, "stddev", -1.0),
    bad("init", init.normal, "stddev", None, exc=TypeError),
    bad("init", init.normal, "truncated", "no", exc=TypeError),
    bad("init", init.constant, "value", NAN),
    bad("init", init.constant, "value", INF),
    bad("init", init.constant, "value", "1", exc=TypeError),
    bad("init", init.variance_scaling, "scale", 0.0, mode="fan_in", distribution="normal"),
    bad("init", init.variance_scaling, "scale", INF, mode="fan_in", distribution="normal"),
    bad("init", init.variance_scaling, "mode", "fan_bogus", 1.0, distribution="normal"),
    bad("init", init.variance_scaling, "distribution", "cauchy", 1.0, mode="fan_in"),
    bad("init", init.variance_scaling, "in_axis", 2.5, 1.0, "fan_in", "normal", exc=TypeError),
    bad("init", init.variance_scaling, "out_axis", "last", 1.0, "fan_in", "normal",
        exc=TypeError),
    bad("init", init.variance_scaling, "in_axis", -1, 1.0, "fan_in", "normal"),
    drawn("variance_scaling(...)(key, (3, 4)) with in_axis=5",
          lambda: init.variance_scaling(1.0, "fan_in", "normal", in_axis=5), "in_axis", "5"),
    drawn("variance_scaling(...)(key, (3, 4)) with in_axis=1 (the out_axis)",
          lambda: init.variance_scaling(1.0, "fan_in", "normal", in_axis=1), "in_axis", "1"),
    drawn("variance_scaling(...)(key, (3,))",
          lambda: init.variance_scaling(1.0, "fan_in", "normal"), "shape", "(3,)", shape=(3,)),
    bad("init", init.orthogonal, "scale", INF),
    bad("init", init.orthogonal, "column_axis", 1.0, exc=TypeError),
    drawn("orthogonal(column_axis=5)(key, (3, 4))", lambda: init.orthogonal(column_axis=5),
          "column_axis", "5"),
    drawn("orthogonal()(key, (4,))", init.orthogonal, "shape", "(4,)", shape=(4,)),
    bad("init", init.he_normal, "truncated", "yes", exc=TypeError),
    bad("init", init.glorot_normal, "truncated", 1, exc=TypeError),
    bad("init", init.lecun_normal, "truncated", None, exc=TypeError),
    drawn("he_normal()(key, (3, -4))", init.he_normal, "shape", "(3, -4)", shape=(3, -4)),
    drawn("glorot_uniform()(key, (3, 2.5))", init.glorot_uniform, "shape", "(3, 2.5)",
          shape=(3, 2.5), exc=TypeError),
    drawn("uniform()(key, 'big')", init.uniform, "shape", "'big'", shape="big", exc=TypeError),
    drawn("normal()(key, (2, 2), int32)", init.normal, "dtype", "int32", shape=(2, 2),
          exc=TypeError, dtype=jnp.int32),
    drawn("uniform()(key, (2,), 'float33')", init.uniform, "dtype", "'float33'", shape=(2,),
          exc=TypeError, dtype="float33"),
    Bad("init", "zeros(key, (-1, 3))", lambda: init.zeros(KEY, (-1, 3)), "shape", "(-1, 3)"),
    Bad("init", "ones(key, -3)", lambda: init.ones(KEY, -3), "shape", "-3"),
    Bad("init", "zeros(key, (2,), bool)", lambda: init.zeros(KEY, (2,), jnp.bool_), "dtype",
        "bool", TypeError),
    Bad("init", "compute_fans((3,))", lambda: init.compute_fans((3,)), "shape", "(3,)"),
    Bad("init", "compute_fans((3, 4), in_axis=2)", lambda: init.compute_fans((3, 4), in_axis=2),
        "in_axis", "2"),
    Bad("init", "compute_fans((3, 4), out_axis=-3)",
        lambda: init.compute_fans((3, 4), out_axis=-3), "out_axis", "-3"),
    Bad("init", "compute_fans((3, 4), in_axis=0, out_axis=-2)",
        lambda: init.compute_fans((3, 4), in_axis=0, out_axis=-2), "in_axis", "0"),
    Bad("init", "compute_fans((3, -4))", lambda: init.compute_fans((3, -4)), "shape", "(3, -4)"),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
