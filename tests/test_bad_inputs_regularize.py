"""Bad inputs to ``jtricks.regularize`` (issue 13's bad-input sweep; see ``_bad_inputs.py``)."""

import jax.numpy as jnp
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error, on

from jtricks import regularize

INF, NAN = float("inf"), float("nan")
PARAMS = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
X = jnp.ones((3, 2))


def fn(x):
    return jnp.sum(x**2, axis=-1)


CASES = [
    bad("regularize", on(regularize.l1_penalty, PARAMS, given="params"), "mask", {"w": True},
        shown="{'w': True}"),
    bad("regularize", on(regularize.l2_penalty, PARAMS, given="params"), "mask", [True, False],
        shown="[True, False]"),
    bad("regularize", on(regularize.l2_penalty, PARAMS, given="params"), "mask",
        {"w": "yes", "b": False}, exc=TypeError, shown="'yes'"),
    bad("regularize", on(regularize.l1_penalty, PARAMS, given="params"), "mask",
        {"w": 1, "b": 0}, exc=TypeError, shown="0"),
    bad("regularize", on(regularize.l1_penalty, PARAMS, given="params"), "mask",
        lambda p: {"w": True}, shown="{'w': True}"),
    bad("regularize", on(regularize.l2_penalty, PARAMS, given="params"), "mask", (True, False),
        shown="(True, False)"),
    bad("regularize", regularize.l2_penalty, "params", {"w": "abc"}, exc=TypeError,
        shown="'abc'"),
    bad("regularize", regularize.l1_penalty, "params", {"w": jnp.array([1, 2])},
        exc=TypeError, shown="int32"),
    bad("regularize", on(regularize.gradient_penalty, fn, X, given="fn, x"), "target", NAN),
    bad("regularize", on(regularize.gradient_penalty, fn, X, given="fn, x"), "target", INF),
    bad("regularize", on(regularize.gradient_penalty, fn, X, given="fn, x"), "target", "1",
        exc=TypeError),
    bad("regularize", on(regularize.gradient_penalty, fn, X, given="fn, x"), "target",
        [1.0, 2.0], exc=TypeError),
    bad("regularize", on(regularize.gradient_penalty, fn, given="fn"), "x", jnp.array(1.0),
        shown="()"),
    bad("regularize", on(regularize.gradient_penalty, fn, given="fn"), "x",
        jnp.array([1, 2]), shown="int32", exc=TypeError),
    Bad("regularize", "gradient_penalty('square', x)",
        lambda: regularize.gradient_penalty("square", X), "fn", "'square'", TypeError),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
