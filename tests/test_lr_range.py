"""The learning-rate range test (jtricks._lr_range, exported by jtricks.sweep).

The oracle is closed form: full-batch gradient descent on a quadratic whose Hessian
is ``h * I`` multiplies the error by ``(1 - lr h)`` per step, so after ``T`` steps the
loss is ``L0 (1 - lr h) ** (2 T)``: it converges for ``0 < lr < 2 / h``, fastest at
``lr = 1 / h``, and diverges above ``2 / h``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks
from jtricks.nn import Model
from jtricks.sweep import Member, lr_range_test, plot_lr_range, suggest_learning_rate

H = 4.0  # the curvature: stable below 2 / H = 0.5, best at 1 / H = 0.25
N, D, T = 32, 4, 6  # examples, weights, epochs (one full-batch step each)
RATES = np.geomspace(0.01, 1.0, 13)


def _quadratic():
    """x with X^T X / N = H I, y = x w*: the loss is 0.5 * mean((x w - y)^2)."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(N, D)))
    x = (np.sqrt(N * H) * q).astype(np.float32)
    w_star = np.arange(1.0, D + 1, dtype=np.float32)
    return x, x @ w_star


def _loss(params, x, y):
    return 0.5 * (x @ params["w"] - y) ** 2


MODEL = Model(lambda key, shape: ({"w": jnp.zeros(shape[-1])}, {}),
              lambda params, state, x, *, training, key=None: (x @ params["w"], state))
CALLS = []


def build(h):
    """A linear model trained with plain SGD at the traced rate (counts its traces)."""
    CALLS.append(1)
    return Member(MODEL, jtricks.optim.sgd(h["learning_rate"]),
                  loss_fn=lambda p, s, batch, key: (jnp.mean(_loss(p, *batch)), (s, {})),
                  eval_fn=lambda p, s, batch: {"loss": _loss(p, *batch)})


def closed_form(rates, initial):
    return initial * (1 - np.asarray(rates) * H) ** (2 * T)


def test_losses_and_valley_match_the_closed_form():
    data = _quadratic()
    result = lr_range_test(build, data, key=jax.random.key(0), learning_rates=RATES,
                           epochs=T, batch_size=N)
    initial = float(np.mean(_loss({"w": np.zeros(D)}, *data)))
    np.testing.assert_allclose(result.initial_loss, initial, rtol=1e-5)
    np.testing.assert_allclose(result.losses, closed_form(RATES, initial), rtol=2e-3,
                               atol=1e-4 * initial)
    # The valley: rates whose closed-form loss is within 5% of the drop from the best one.
    exact = closed_form(RATES, initial)
    inside = exact <= exact.min() + 0.05 * (initial - exact.min())
    assert inside[np.argmin(exact)]
    low, high = RATES[inside].min(), RATES[inside].max()
    assert result.valley == pytest.approx((low, high))
    assert result.suggestion == pytest.approx(np.sqrt(low * high))
    # ... which is stable (below 2 / H) and within a factor 2 of the best rate 1 / H.
    assert result.suggestion < 2 / H
    assert 0.5 / H < result.suggestion < 2 / H
    assert (result.losses[RATES > 2 / H] > initial).all()  # the divergent rates
    assert result.curves["val_loss"].shape == (len(RATES), T)


def test_traces_once_for_all_rates_and_reuses_the_program():
    data = _quadratic()
    rates = np.geomspace(0.02, 0.4, 5)
    CALLS.clear()
    first = lr_range_test(build, data, key=jax.random.key(0), learning_rates=rates,
                          epochs=2, batch_size=N)
    # one trace for every rate (and the rate 0) in each of the sweep's two programs, its
    # start and its round
    assert len(CALLS) == 2
    second = lr_range_test(build, data, key=jax.random.key(0), learning_rates=rates * 1.5,
                           epochs=2, batch_size=N)
    assert len(CALLS) == 2  # other values, same number of rates: no new trace
    for result, tested in ((first, rates), (second, rates * 1.5)):  # T = 2 steps
        np.testing.assert_allclose(result.losses, result.initial_loss * (1 - tested * H) ** 4,
                                   rtol=2e-3)


def test_suggest_learning_rate_rule():
    rates = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    # The valley stops at the first rate above the threshold, even if a later one dips again.
    s, valley = suggest_learning_rate(rates, [2.0, 0.30, 0.2, 0.9, 0.25], 2.3, tolerance=0.1)
    assert valley == (1e-3, 1e-2)  # threshold 0.2 + 0.1 * 2.1 = 0.41
    assert s == pytest.approx(np.sqrt(1e-5))
    # Diverged losses are never in the valley; a lone minimum is its own valley.
    s, valley = suggest_learning_rate(rates, [2.0, 1.0, 0.1, np.nan, np.inf], 2.3)
    assert valley == (1e-2, 1e-2) and s == pytest.approx(1e-2)
    # Nothing learned: no suggestion.
    s, valley = suggest_learning_rate(rates, [2.3, 2.4, np.nan, np.nan, np.nan], 2.3)
    assert np.isnan(s) and np.isnan(valley).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(learning_rates=[0.1]), "at least two"),
    (dict(learning_rates=[0.1, 0.01]), "strictly increasing"),
    (dict(learning_rates=[0.0, 0.01]), "positive"),
    (dict(learning_rates=[0.01, np.nan]), "finite"),
    (dict(learning_rates=[0.01, 0.1], tolerance=1.0), "tolerance=1.0"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    kwargs.setdefault("tolerance", 0.05)
    with pytest.raises(ValueError, match=match):
        suggest_learning_rate(kwargs["learning_rates"], np.ones(len(kwargs["learning_rates"])),
                              2.0, tolerance=kwargs["tolerance"])
    with pytest.raises(ValueError, match=match):  # before anything is traced
        lr_range_test(None, None, key=jax.random.key(0), **kwargs)


def test_plot_shows_losses_valley_and_suggestion():
    from matplotlib.figure import Figure

    rates = np.array([1e-3, 1e-2, 1e-1, 1.0])
    s, valley = suggest_learning_rate(rates, [1.5, 0.2, 0.3, np.nan], 2.3, tolerance=0.1)
    result = jtricks.sweep.LRRangeResult(rates, np.array([1.5, 0.2, 0.3, np.nan]), 2.3, s,
                                         valley, 0.1, {})
    ax = plot_lr_range(result, Figure().subplots())
    labels = [line.get_label() for line in ax.get_lines()]
    assert any("suggested rate" in label for label in labels)
    assert any("diverged" in label for label in labels)
    assert ax.get_xscale() == "log"
    assert plot_lr_range(result).get_xlabel() == "learning rate"  # a figure of its own
