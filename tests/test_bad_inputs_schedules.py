"""Bad inputs to ``jtricks.optim.schedules`` (issue 13's bad-input sweep; see ``_bad_inputs.py``).

Every schedule in ``schedules.__all__``: values (finite real scalars), step counts
(integers in range), boundaries and flags, each checked when the schedule is built.
"""

import jax.numpy as jnp
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error

from jtricks.optim import schedules as sch

INF, NAN = float("inf"), float("nan")
LIN = sch.linear(0.0, 0.1, 10)


def _values():
    """Real-valued arguments: inf, NaN, None, a string, a bool, a list, a complex number."""
    spots = [
        (sch.constant, "value", (), {}),
        (sch.exponential_decay, "init_value", (), {"transition_steps": 10, "decay_rate": 0.5}),
        (sch.per_epoch, "init_value", (), {"factor": 0.9, "steps_per_epoch": 10}),
        (sch.piecewise_constant, "init_value", (), {}),
        (sch.cosine_decay, "init_value", (), {"decay_steps": 10}),
        (sch.linear, "init_value", (), {"end_value": 0.0, "transition_steps": 10}),
        (sch.linear, "end_value", (0.1,), {"transition_steps": 10}),
        (sch.warmup_cosine_decay, "peak_value", (0.0,), {"warmup_steps": 5, "decay_steps": 10}),
        (sch.one_cycle, "peak_value", (10,), {}),
    ]
    cases = []
    for fn, arg, args, kw in spots:
        cases += [
            bad("schedules", fn, arg, INF, *args, **kw),
            bad("schedules", fn, arg, NAN, *args, **kw),
            bad("schedules", fn, arg, None, *args, exc=TypeError, **kw),
            bad("schedules", fn, arg, "0.1", *args, exc=TypeError, **kw),
            bad("schedules", fn, arg, True, *args, exc=TypeError, **kw),
            bad("schedules", fn, arg, [0.1], *args, exc=TypeError, **kw),
        ]
    cases += [
        bad("schedules", sch.constant, "value", -INF),
        bad("schedules", sch.constant, "value", 0.1j, exc=TypeError),
        bad("schedules", sch.constant, "value", jnp.array([0.1, 0.2]), exc=TypeError),
        bad("schedules", sch.warmup_cosine_decay, "init_value", INF, peak_value=0.1,
            warmup_steps=5, decay_steps=10),
        bad("schedules", sch.warmup_cosine_decay, "end_value", INF, 0.0, 0.1, 5, 10),
        bad("schedules", sch.warmup_cosine_decay, "exponent", INF, 0.0, 0.1, 5, 10),
        bad("schedules", sch.warmup_cosine_decay, "exponent", "2", 0.0, 0.1, 5, 10,
            exc=TypeError),
        bad("schedules", sch.cosine_decay, "exponent", INF, 0.1, 10),
        bad("schedules", sch.cosine_decay, "exponent", None, 0.1, 10, exc=TypeError),
        bad("schedules", sch.exponential_decay, "end_value", INF, 0.1, 10, 0.5),
        bad("schedules", sch.exponential_decay, "end_value", "0", 0.1, 10, 0.5, exc=TypeError),
    ]
    return cases


def _ranges():
    """Rates and fractions outside their range."""
    return [
        bad("schedules", sch.exponential_decay, "decay_rate", -0.5, 0.1, 10),
        bad("schedules", sch.exponential_decay, "decay_rate", INF, 0.1, 10),
        bad("schedules", sch.exponential_decay, "decay_rate", [0.5], 0.1, 10, exc=TypeError),
        bad("schedules", sch.exponential_decay, "decay_rate", None, 0.1, 10, exc=TypeError),
        bad("schedules", sch.per_epoch, "factor", -0.98, 0.1, steps_per_epoch=10),
        bad("schedules", sch.per_epoch, "factor", INF, 0.1, steps_per_epoch=10),
        bad("schedules", sch.per_epoch, "factor", None, 0.1, steps_per_epoch=10, exc=TypeError),
        bad("schedules", sch.cosine_decay, "alpha", 1.5, 0.1, 10),
        bad("schedules", sch.cosine_decay, "alpha", -0.1, 0.1, 10),
        bad("schedules", sch.cosine_decay, "alpha", INF, 0.1, 10),
        bad("schedules", sch.cosine_decay, "alpha", True, 0.1, 10, exc=TypeError),
        bad("schedules", sch.one_cycle, "pct_start", 0.0, 10, 0.1),
        bad("schedules", sch.one_cycle, "pct_start", 1.0, 10, 0.1),
        bad("schedules", sch.one_cycle, "pct_start", INF, 10, 0.1),
        bad("schedules", sch.one_cycle, "pct_start", "0.3", 10, 0.1, exc=TypeError),
        bad("schedules", sch.one_cycle, "div_factor", 0.0, 10, 0.1),
        bad("schedules", sch.one_cycle, "div_factor", INF, 10, 0.1),
        bad("schedules", sch.one_cycle, "div_factor", -25.0, 10, 0.1),
        bad("schedules", sch.one_cycle, "final_div_factor", -1.0, 10, 0.1),
        bad("schedules", sch.one_cycle, "final_div_factor", INF, 10, 0.1),
        bad("schedules", sch.one_cycle, "final_div_factor", None, 10, 0.1, exc=TypeError),
    ]


def _counts():
    """Step counts: integers (not 2.5, not True, not None) in range."""
    spots = [
        (sch.exponential_decay, "transition_steps", (0.1,), {"decay_rate": 0.5}, 0),
        (sch.exponential_decay, "transition_begin", (0.1, 10, 0.5), {}, -1),
        (sch.per_epoch, "steps_per_epoch", (0.1, 0.9), {}, 0),
        (sch.cosine_decay, "decay_steps", (0.1,), {}, 0),
        (sch.linear, "transition_steps", (0.0, 0.1), {}, -5),
        (sch.linear, "transition_begin", (0.0, 0.1, 10), {}, -1),
        (sch.warmup_cosine_decay, "warmup_steps", (0.0, 0.1), {"decay_steps": 10}, 0),
        (sch.warmup_cosine_decay, "decay_steps", (0.0, 0.1, 5), {}, 5),
        (sch.one_cycle, "transition_steps", (), {"peak_value": 0.1}, 0),
    ]
    cases = []
    for fn, arg, args, kw, low in spots:
        cases += [
            bad("schedules", fn, arg, low, *args, **kw),
            bad("schedules", fn, arg, 2.5, *args, exc=TypeError, **kw),
            bad("schedules", fn, arg, True, *args, exc=TypeError, **kw),
            bad("schedules", fn, arg, None, *args, exc=TypeError, **kw),
            bad("schedules", fn, arg, "10", *args, exc=TypeError, **kw),
        ]
    cases.append(bad("schedules", sch.cosine_decay, "decay_steps", INF, 0.1, exc=TypeError))
    return cases


def _structures():
    """Boundaries, scales, flags and the schedules given to ``join``."""
    pc = sch.piecewise_constant
    return [
        bad("schedules", pc, "boundaries_and_scales", [10, 20], 0.1, exc=TypeError),
        bad("schedules", pc, "boundaries_and_scales", 10, 0.1, exc=TypeError),
        bad("schedules", pc, "boundaries_and_scales", "10:0.1", 0.1, exc=TypeError),
        bad("schedules", pc, "boundaries_and_scales", [(10, 0.1, 2)], 0.1, exc=TypeError),
        bad("schedules", pc, "boundaries_and_scales", {10: -0.1}, 0.1, shown="-0.1"),
        bad("schedules", pc, "boundaries_and_scales", {10: INF}, 0.1, shown="inf"),
        bad("schedules", pc, "boundaries_and_scales", {10: None}, 0.1, exc=TypeError,
            shown="None"),
        bad("schedules", pc, "boundaries_and_scales", {10: "0.1"}, 0.1, exc=TypeError,
            shown="'0.1'"),
        bad("schedules", pc, "boundaries_and_scales", {2.5: 0.1}, 0.1, exc=TypeError,
            shown="2.5"),
        bad("schedules", pc, "boundaries_and_scales", {-1: 0.1}, 0.1, shown="-1"),
        bad("schedules", pc, "boundaries_and_scales", {True: 0.1}, 0.1, exc=TypeError,
            shown="True"),
        bad("schedules", pc, "boundaries_and_scales", [(20, 0.1), (10, 0.1)], 0.1),
        bad("schedules", pc, "boundaries_and_scales", [(10, 0.1), (10, 0.5)], 0.1),
        bad("schedules", sch.exponential_decay, "staircase", "no", 0.1, 10, 0.5, exc=TypeError),
        bad("schedules", sch.exponential_decay, "staircase", 1, 0.1, 10, 0.5, exc=TypeError),
        bad("schedules", sch.exponential_decay, "staircase", None, 0.1, 10, 0.5, exc=TypeError),
        bad("schedules", sch.join, "schedules", [], boundaries=[]),
        bad("schedules", sch.join, "schedules", LIN, boundaries=[], exc=TypeError,
            shown="function"),
        bad("schedules", sch.join, "schedules", [LIN, 0.1], boundaries=[10], exc=TypeError,
            shown="0.1"),
        bad("schedules", sch.join, "boundaries", [], [LIN, LIN], shown="[]"),
        bad("schedules", sch.join, "boundaries", [10, 20], [LIN, LIN]),
        bad("schedules", sch.join, "boundaries", 10, [LIN, LIN], exc=TypeError),
        bad("schedules", sch.join, "boundaries", [2.5], [LIN, LIN], exc=TypeError, shown="2.5"),
        bad("schedules", sch.join, "boundaries", [-1], [LIN, LIN], shown="-1"),
        bad("schedules", sch.join, "boundaries", [20, 10], [LIN, LIN, LIN]),
        bad("schedules", sch.join, "boundaries", [10, 10], [LIN, LIN, LIN]),
        Bad("schedules", "join([linear, None], [10])", lambda: sch.join([LIN, None], [10]),
            "schedules[1]", "None", TypeError),
    ]


CASES = _values() + _ranges() + _counts() + _structures()


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
