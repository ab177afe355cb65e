"""Bad inputs to ``jtricks.train`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``).

Every case fails before the first step: nothing here trains.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error, on

from jtricks import nn, optim, train

INF, NAN = float("inf"), float("nan")
MODEL = nn.mlp([3])
PARAMS, MODEL_STATE = MODEL.init(jax.random.key(0), (2,))
TX = optim.adam(1e-2)
STATE = train.TrainState.create(params=PARAMS, tx=TX, key=0, model_state=MODEL_STATE)
LOSS = train.classifier_loss(MODEL)
EVAL = train.classifier_eval(MODEL)
X, Y = np.zeros((6, 2), np.float32), np.zeros(6, np.int32)
FIT = dict(loss_fn=LOSS, tx=TX, epochs=1, batch_size=2, progress=False)


def fit(**kwargs):
    """``fit`` of the tiny model on ``(X, Y)``, with ``kwargs`` replacing the defaults."""
    args = {"state": STATE, "train_data": (X, Y), **FIT, **kwargs}
    return train.fit(args.pop("state"), args.pop("train_data"), **args)


fit.__name__ = "fit"
EVALUATE = on(train.evaluate, EVAL, PARAMS, MODEL_STATE, (X, Y), given="eval_fn, ..., (x, y)")

CASES = [
    bad("train", fit, "train_data", (X[:5], Y), shown="(5, 2)"),
    bad("train", fit, "train_data", (X[:0], Y[:0]), shown="(0, 2)"),
    bad("train", fit, "train_data", (), shown="no arrays"),
    bad("train", fit, "val_data", (X, Y[:4]), eval_fn=EVAL, shown="(4,)"),
    bad("train", fit, "val_data", (X[:0], Y[:0]), eval_fn=EVAL, shown="(0, 2)"),
    Bad("train", "fit(state made by adam, tx=sgd(0.1, momentum=0.9))",
        lambda: fit(tx=optim.sgd(0.1, momentum=0.9)), "tx", "TraceState", TypeError),
    Bad("train", "fit(state made by adam, tx=sgd(0.1))", lambda: fit(tx=optim.sgd(0.1)), "tx",
        "ScaleByAdamState", TypeError),
    bad("train", fit, "tx", "adam", exc=TypeError),
    bad("train", fit, "state", (PARAMS, MODEL_STATE), exc=TypeError, shown="tuple"),
    bad("train", fit, "loss_fn", "cross_entropy", exc=TypeError),
    bad("train", fit, "loss_fn", TX, exc=TypeError, shown="gradient transformation"),
    bad("train", fit, "eval_fn", 3, val_data=(X, Y), exc=TypeError),
    bad("train", fit, "epochs", -1),
    bad("train", fit, "epochs", 2.5, exc=TypeError),
    bad("train", fit, "batch_size", 0),
    bad("train", fit, "batch_size", True, exc=TypeError),
    bad("train", fit, "eval_batch_size", 0),
    bad("train", fit, "checkpoint_every", 0),
    bad("train", fit, "resume", "no", exc=TypeError),
    bad("train", fit, "restore_best", 1, exc=TypeError),
    bad("train", fit, "resume", True, shown="checkpoint_dir"),
    bad("train", fit, "run_config", [1], exc=TypeError, shown="list"),
    bad("train", fit, "early_stopping", train.early_stopping(mode="max"), shown="'max'"),
    bad("train", EVALUATE, "batch_size", 0),
    bad("train", EVALUATE, "batch_size", 2.5, exc=TypeError),
    bad("train", on(train.evaluate, EVAL, PARAMS, MODEL_STATE, given="eval_fn, ..."), "data",
        (X[:0], Y[:0]), shown="(0, 2)"),
    bad("train", on(train.evaluate, EVAL, PARAMS, MODEL_STATE, given="eval_fn, ..."), "data",
        (X, Y[:3]), shown="(3,)"),
    Bad("train", "evaluate('accuracy', ...)",
        lambda: train.evaluate("accuracy", PARAMS, MODEL_STATE, (X, Y)), "eval_fn",
        "'accuracy'", TypeError),
    bad("train", on(train.predict, MODEL, PARAMS, MODEL_STATE, X, given="model, ..., x"),
        "batch_size", -1),
    bad("train", on(train.predict, MODEL, PARAMS, MODEL_STATE, given="model, ..."), "x",
        X[:0], shown="(0, 2)"),
    Bad("train", "predict(params, ...)",
        lambda: train.predict(PARAMS, PARAMS, MODEL_STATE, X), "model", "dict", TypeError),
    bad("train", train.early_stopping, "patience", 2.5),
    bad("train", train.early_stopping, "patience", -1),
    bad("train", train.early_stopping, "patience", INF),
    bad("train", train.early_stopping, "patience", True, exc=TypeError),
    bad("train", train.early_stopping, "min_delta", -0.1),
    bad("train", train.early_stopping, "min_delta", NAN),
    bad("train", train.early_stopping, "mode", "minimize"),
    bad("train", train.early_stopping, "baseline", INF),
    bad("train", train.early_stopping, "baseline", "0.5", exc=TypeError),
    bad("train", train.early_stopping, "start_from_epoch", 1.5),
    bad("train", train.ema, "decay", 1.5),
    bad("train", train.ema, "decay", NAN),
    bad("train", train.ema, "decay", None, exc=TypeError),
    bad("train", train.Checkpointer, "max_to_keep", 0, "/tmp/never-created"),
    bad("train", train.Checkpointer, "max_to_keep", 2.5, "/tmp/never-created", exc=TypeError),
    bad("train", train.Checkpointer, "report", "stderr", "/tmp/never-created", exc=TypeError),
    bad("train", train.Checkpointer, "directory", 3, exc=TypeError),
    bad("train", train.TrainState.create, "tx", "sgd", params=PARAMS, key=0, exc=TypeError),
    bad("train", train.classifier_loss, "class_weights", [1.0, -1.0, 1.0], MODEL,
        shown="-1.0"),
    bad("train", train.classifier_loss, "augment", "flip", MODEL, exc=TypeError),
    bad("train", train.classifier_loss, "model", "mlp", exc=TypeError),
    bad("train", train.make_epoch, "batch_size", 0, loss_fn=LOSS, tx=TX),
    bad("train", train.make_epoch, "tx", None, loss_fn=LOSS, batch_size=2, exc=TypeError),
    bad("train", train.make_epoch, "loss_fn", None, tx=TX, batch_size=2, exc=TypeError),
    bad("train", train.make_run, "epochs", 0, loss_fn=LOSS, tx=TX, batch_size=2),
    bad("train", train.make_run, "eval_fn", "accuracy", loss_fn=LOSS, tx=TX, batch_size=2,
        epochs=1, exc=TypeError),
    Bad("train", "make_epoch(...)(state, (x[:5], y), key)",
        lambda: train.make_epoch(loss_fn=LOSS, tx=TX, batch_size=2)(
            STATE, (X[:5], Y), jax.random.key(1)), "train_data", "(5, 2)"),
    Bad("train", "ensemble_predict(None, params, x)",
        lambda: train.ensemble_predict(None, PARAMS, X), "apply_fn", "None", TypeError),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
