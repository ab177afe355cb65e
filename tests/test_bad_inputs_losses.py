"""Bad inputs to ``jtricks.losses`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``)."""

import jax.numpy as jnp
import pytest
from _bad_inputs import as_params, bad, clear_error, on

from jtricks import losses

INF, NAN = float("inf"), float("nan")
LOGITS = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
LABELS = jnp.array([0, 1, 1])
CE = on(losses.cross_entropy, LOGITS, LABELS, given="logits, labels")

CASES = [
    bad("losses", CE, "class_weights", [1.0, -1.0], shown="-1.0"),
    bad("losses", CE, "class_weights", [0.0, 0.0]),
    bad("losses", CE, "class_weights", jnp.zeros(2), shown="[0., 0.]"),
    bad("losses", CE, "class_weights", [1.0, NAN], shown="nan"),
    bad("losses", CE, "class_weights", [1.0, INF], shown="inf"),
    bad("losses", CE, "class_weights", [1.0, 1.0, 1.0], shown="(3,)"),
    bad("losses", CE, "class_weights", ["a", "b"], exc=TypeError),
    bad("losses", CE, "class_weights", [True, False], exc=TypeError, shown="True"),
    bad("losses", on(losses.cross_entropy, LOGITS, given="logits"), "labels",
        jnp.array([0, 2, 1]), shown="2"),
    bad("losses", on(losses.cross_entropy, LOGITS, given="logits"), "labels",
        jnp.array([0, -1, 1]), shown="-1"),
    bad("losses", on(losses.cross_entropy, LOGITS, given="logits"), "labels",
        jnp.array([0.0, 1.0, 1.0]), shown="float32", exc=TypeError),
    bad("losses", on(losses.cross_entropy, LOGITS, given="logits"), "labels",
        jnp.array([[0, 1, 1]]), shown="(1, 3)"),
    bad("losses", on(losses.cross_entropy, LOGITS, given="logits"), "labels",
        jnp.eye(2)[LABELS].astype(jnp.int32), shown="(3, 2)"),
    bad("losses", losses.cross_entropy, "logits", jnp.array(1.0), labels=jnp.array(0),
        shown="()"),
    bad("losses", losses.cross_entropy, "logits", jnp.zeros((3, 0)), labels=LABELS,
        shown="(3, 0)"),
    bad("losses", on(losses.accuracy, LOGITS, given="logits"), "labels", LABELS[:, None],
        shown="(3, 1)"),
    bad("losses", on(losses.accuracy, LOGITS, given="logits"), "labels", LABELS[:2],
        shown="(2,)"),
    bad("losses", losses.accuracy, "logits", jnp.array(1.0), labels=jnp.array(0), shown="()"),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
