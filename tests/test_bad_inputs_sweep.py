"""Bad inputs to ``jtricks.sweep`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``).

Every case fails before anything is compiled or trained.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error

from jtricks import nn, optim, sweep

INF, NAN = float("inf"), float("nan")
X, Y = np.zeros((6, 2), np.float32), np.zeros(6, np.int32)
HPARAMS = {"learning_rate": jnp.array([0.1, 0.01])}
KEY = jax.random.key(0)


def build(h):
    return nn.mlp([3]), optim.sgd(h["learning_rate"])


def train(**kwargs):
    """``sweep.train`` of ``build`` on ``(X, Y)``, with ``kwargs`` replacing the defaults."""
    args = {"build": build, "hparams": HPARAMS, "train_data": (X, Y), "val_data": (X, Y),
            "key": KEY, "epochs": 1, "batch_size": 2, **kwargs}
    return sweep.train(**args)


def fit_member(**kwargs):
    """``sweep.fit_member`` of ``build``, one member, with ``kwargs`` replacing the defaults."""
    args = {"build": build, "hparams": {"learning_rate": 0.1}, "train_data": (X, Y),
            "val_data": (X, Y), "key": KEY, "epochs": 1, "batch_size": 2, **kwargs}
    return sweep.fit_member(**args)


CASES = [
    bad("sweep", sweep.grid, "learning_rate", []),
    bad("sweep", sweep.grid, "learning_rate", [0.1, INF], shown="inf"),
    bad("sweep", sweep.grid, "learning_rate", [0.1, NAN], shown="nan"),
    bad("sweep", sweep.grid, "learning_rate", ["fast"], exc=TypeError, shown="'fast'"),
    bad("sweep", sweep.grid, "learning_rate", 0.1, exc=TypeError),
    bad("sweep", sweep.grid, "dropout", "0.5", exc=TypeError),
    bad("sweep", sweep.grid, "momentum", [True, False], exc=TypeError, shown="True"),
    bad("sweep", train, "build", "mlp", exc=TypeError),
    bad("sweep", train, "build", lambda h: optim.sgd(0.1), exc=TypeError,
        shown="GradientTransformation"),
    bad("sweep", train, "hparams", {}, shown="{}"),
    bad("sweep", train, "hparams", [0.1, 0.01], exc=TypeError),
    bad("sweep", train, "hparams", {"learning_rate": [0.1, NAN]}, shown="nan"),
    bad("sweep", train, "hparams", {"learning_rate": [0.1, 0.2], "dropout": [0.0]},
        shown="(1,)"),
    bad("sweep", train, "hparams", {"learning_rate": ["a", "b"]}, exc=TypeError,
        shown="'a'"),
    bad("sweep", train, "epochs", 0),
    bad("sweep", train, "epochs", [1], exc=TypeError),
    bad("sweep", train, "batch_size", 0),
    bad("sweep", train, "batch_size", 7, shown="7"),
    bad("sweep", train, "patience", -1),
    bad("sweep", train, "patience", 2.5, exc=TypeError),
    bad("sweep", train, "key", jax.random.split(KEY, 3), shown="(3,)"),
    bad("sweep", train, "train_data", (X[:5], Y), shown="(5, 2)"),
    bad("sweep", train, "val_data", (X[:0], Y[:0]), shown="(0, 2)"),
    bad("sweep", fit_member, "patience", -2),
    bad("sweep", fit_member, "train_data", (X, Y[:2]), shown="(2,)"),
    bad("sweep", fit_member, "epochs", True, exc=TypeError),
    Bad("sweep", "member_of(build returning a string, ...)",
        lambda: sweep.member_of(lambda h: "adam", {}), "build", "'adam'", TypeError),
    Bad("sweep", "member_of(None, {})", lambda: sweep.member_of(None, {}), "build", "None",
        TypeError),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
