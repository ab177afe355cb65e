"""The bad-input sweep as a whole: its size and its clear-error rate (issue 13)."""

from _bad_inputs import all_cases, rates

PACKAGES = {"optim", "schedules", "init", "nn", "data", "losses", "regularize",
            "diagnose", "train", "sweep", "parallel"}


def test_sweep_spans_the_public_api_with_375_cases():
    cases = all_cases()
    assert len(cases) >= 375, len(cases)
    assert PACKAGES <= {c.package for c in cases}, PACKAGES - {c.package for c in cases}
    labels = [(c.package, c.label) for c in cases]  # init.constant and schedules.constant
    assert len(labels) == len(set(labels)), "duplicate cases"


def test_at_least_98_percent_give_a_clear_error():
    table = rates(all_cases())
    clear = sum(c for c, _ in table.values())
    total = sum(t for _, t in table.values())
    assert clear / total >= 0.98, table
