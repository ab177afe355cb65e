"""Bad inputs to ``jtricks.optim`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``)."""

import pytest
from _bad_inputs import as_params, bad, clear_error

from jtricks import optim

INF = float("inf")

CASES = [
    bad("optim", optim.adam, "learning_rate", INF),
    bad("optim", optim.sgd, "learning_rate", None, exc=TypeError,
        remaining="sgd(None) becomes identity(): gradient ascent (validate-optim helper)"),
    bad("optim", optim.sgd, "nesterov", "no", 0.1, exc=TypeError,
        remaining="flags are not checked yet (validate-optim helper)"),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
