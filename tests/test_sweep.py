"""Tests for jtricks.sweep: K configurations as one vmapped, jitted program."""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtricks
from jtricks import sweep

FEATURES, CLASSES, EPOCHS, BATCH = 6, 3, 12, 32
TRACES = {"build": 0}


def build(h):
    TRACES["build"] += 1
    kernel_init = jtricks.init.variance_scaling(2.0 * h["init_scale"] ** 2, "fan_in", "normal")
    model = jtricks.nn.mlp([16, CLASSES], kernel_init=kernel_init, dropout=h["dropout"])
    tx = jtricks.optim.adamw(h["learning_rate"], weight_decay=h["weight_decay"])
    return model, tx


@functools.cache
def _data():
    kx, kw, kv = jax.random.split(jax.random.PRNGKey(0), 3)
    teacher = jax.random.normal(kw, (FEATURES, CLASSES))
    x = jax.random.normal(kx, (128, FEATURES))
    y = (x @ teacher + 0.5 * jax.random.normal(kv, (128, CLASSES))).argmax(-1)
    return (x[:96], y[:96]), (x[96:], y[96:])


HPARAMS = {
    "learning_rate": [1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0],
    "weight_decay": [0.0, 1e-4, 1e-3, 0.0, 1e-2, 0.0, 1e-3, 0.0],
    "dropout": [0.0, 0.1, 0.2, 0.3, 0.0, 0.5, 0.1, 0.0],
    "init_scale": [1.0, 0.5, 2.0, 1.0, 1.5, 1.0, 0.7, 3.0],
}
SETTINGS = dict(epochs=EPOCHS, batch_size=BATCH, patience=2)


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


SHORT: dict[str, Any] = dict(epochs=2, batch_size=BATCH, patience=None)
# One member fit alone (with ``SHORT``) on its hyperparameters and key: one jitted program
# that the tests comparing a sweep's members with it share (it compiles once per module).
_fit_alone = jax.jit(lambda h, k: sweep.fit_member(build, h, *_data(), key=k, **SHORT))


def test_sweep_of_8_equals_8_separate_runs_and_compiles_once_per_bucket():
    key = jax.random.PRNGKey(1)
    TRACES["build"] = 0
    result = sweep.train(build, HPARAMS, *_data(), key=key, rounds=1, **SETTINGS)
    # the start program, and one round program per bucket of 8, 4, 2 or 1 members
    assert TRACES["build"] <= 5, TRACES

    one = jax.jit(lambda h: sweep.fit_member(build, h, *_data(), key=key, **SETTINGS))
    for k in range(8):
        alone = one({name: jnp.float32(values[k]) for name, values in HPARAMS.items()})
        member = result.member(k)
        jax.tree.map(_close, member.params, alone.params)
        _close(member.val_loss, alone.val_loss)  # NaN after stopping in both
        _close(member.train_loss, alone.train_loss)
        assert int(member.epochs_run) == int(alone.epochs_run)
        assert int(member.best_epoch) == int(alone.best_epoch)

    # Members stop on their own: not all after the same number of epochs.
    runs = np.asarray(result.members.epochs_run)
    assert len(set(runs.tolist())) > 1 and runs.min() < EPOCHS, runs
    assert result.best == int(np.nanargmin(result.members.best_value))
    np.testing.assert_array_equal(
        np.asarray(result.members.best_value)[result.best], np.nanmin(result.members.best_value)
    )

    # Other values, same number of members (the same configurations in another order:
    # the same buckets): the compiled programs are reused.
    TRACES["build"] = 0
    order = np.arange(8)[::-1]
    again = sweep.train(build, {n: np.asarray(v)[order] for n, v in HPARAMS.items()},
                        *_data(), key=key, rounds=1, **SETTINGS)
    assert TRACES["build"] == 0
    _close(again.members.val_loss, result.members.val_loss[order])


def test_dropping_stopped_members_changes_no_result():
    """Rounds of one epoch shrink the batch as members stop; one round of every epoch
    is the lockstep sweep (every member computed to the end): the same results."""
    key = jax.random.PRNGKey(1)
    dropped = sweep.train(build, HPARAMS, *_data(), key=key, rounds=1, **SETTINGS)
    lockstep = sweep.train(build, HPARAMS, *_data(), key=key, rounds=EPOCHS, **SETTINGS)
    runs = np.asarray(lockstep.members.epochs_run)
    assert (runs <= EPOCHS // 2).sum() >= 2 and runs.max() == EPOCHS, runs  # it did shrink
    np.testing.assert_array_equal(dropped.members.epochs_run, runs)
    jax.tree.map(_close, dropped.members, lockstep.members)


def test_a_member_is_fit_alone_with_the_same_keys():
    """A sweep is the engine under vmap: member k equals jtricks.train.fit run on its
    hyperparameters with the keys fit_member derives (init, train, data)."""
    key = jax.random.PRNGKey(4)
    settings = dict(epochs=4, batch_size=BATCH, patience=None)
    result = sweep.train(build, HPARAMS, *_data(), key=key, **settings)
    init_key, train_key, data_key = jax.random.split(key, 3)
    (x, y), val = _data()
    for k in (0, 5):
        model, tx = build({name: jnp.float32(values[k]) for name, values in HPARAMS.items()})
        params, model_state = model.init(init_key, x.shape[1:])
        state = jtricks.train.TrainState.create(params=params, tx=tx, key=train_key,
                                                model_state=model_state)
        alone = jtricks.train.fit(
            state, (x, y), loss_fn=jtricks.train.classifier_loss(model), tx=tx,
            epochs=4, batch_size=BATCH, data_key=data_key, val_data=val,
            eval_fn=jtricks.train.classifier_eval(model), progress=False)
        member = result.member(k)
        _close(member.val_loss, [row["val_loss"] for row in alone.history])
        jax.tree.map(_close, member.final_state.params, alone.state.params)


def test_one_key_per_member_is_a_sweep_over_seeds():
    seeds = jax.random.split(jax.random.PRNGKey(0), 3)
    same = {name: [values[2]] * 3 for name, values in HPARAMS.items()}
    settings = SHORT
    result = sweep.train(build, same, *_data(), key=seeds, **settings)
    for k in range(3):  # member k is the configuration fit alone with key k
        alone = _fit_alone({n: jnp.float32(v[k]) for n, v in same.items()}, seeds[k])
        _close(result.members.val_loss[k], alone.val_loss)
    assert len({float(v) for v in result.members.val_loss[:, -1]}) == 3
    with pytest.raises(ValueError, match="one key or 3 keys"):
        sweep.train(build, same, *_data(), key=seeds[:2], **settings)


def test_seeds_give_every_configuration_the_same_keys():
    key = jax.random.PRNGKey(5)
    two = {name: values[1:3] for name, values in HPARAMS.items()}
    settings = SHORT
    result = sweep.train(build, two, *_data(), key=key, seeds=3, **settings)
    assert result.members.val_loss.shape == (2, 3, 2)
    for c in range(2):
        for s, seed_key in enumerate(jax.random.split(key, 3)):
            alone = _fit_alone({name: jnp.float32(v[c]) for name, v in two.items()}, seed_key)
            _close(result.members.val_loss[c, s], alone.val_loss)
    assert result.best == int(np.argmin(np.mean(result.members.best_value, axis=1)))
    with pytest.raises(ValueError, match="one key or 3 keys, one per seed"):
        sweep.train(build, two, *_data(), key=jax.random.split(key, 2), seeds=3, **settings)


def test_grid_is_the_cartesian_product():
    g = sweep.grid(learning_rate=[0.1, 0.01], dropout=[0.0, 0.25, 0.5])
    np.testing.assert_allclose(g["learning_rate"], [0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    np.testing.assert_allclose(g["dropout"], [0.0, 0.25, 0.5] * 2)
    assert all(v.dtype == jnp.float32 for v in g.values())


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sweep.grid(), ValueError, "at least one hyperparameter"),
        (lambda: sweep.grid(learning_rate=[]), ValueError, r"learning_rate=\[\] must list"),
        (
            lambda: sweep.train(build, {"learning_rate": [0.1, 0.2], "dropout": [0.0]}, *_data(),
                                key=jax.random.PRNGKey(0), epochs=2, batch_size=8),
            ValueError,
            "one length K",
        ),
        (
            lambda: sweep.train(build, sweep.grid(learning_rate=[0.1]), *_data(),
                                key=jax.random.PRNGKey(0), epochs=0, batch_size=8),
            ValueError,
            "epochs=0 must be >= 1",
        ),
        (
            lambda: sweep.fit_member(build, {}, *_data(), key=jax.random.PRNGKey(0), epochs=1,
                                     batch_size=1000),
            ValueError,
            "batch_size=1000 exceeds the 96 training examples",
        ),
        (
            lambda: sweep.train(build, sweep.grid(learning_rate=[0.1]), *_data(),
                                key=jax.random.PRNGKey(0), epochs=1, batch_size=8, patience=1.5),
            TypeError,
            "patience=1.5 must be an integer",
        ),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_cli_sweep_trains_the_grid_and_reports_the_best(tmp_path, capsys):
    import json

    from jtricks.cli import main

    argv = ["sweep", "--lr", "1e-3,3e-2", "--weight-decay", "0", "--dropout", "0,0.2",
            "--init-scale", "1", "--hidden", "16", "--epochs", "2", "--batch-size", "128",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "sweep.json").read_text())
    losses = [m["best_val_loss"] for m in summary["members"]]
    assert len(losses) == 4 and summary["best"] == int(np.argmin(losses))
    assert [m["dropout"] for m in summary["members"]] == pytest.approx([0.0, 0.2, 0.0, 0.2])
    assert f"best: #{summary['best']}" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value", [("--dropout", "1.5"), ("--lr", "0.1,-1"), ("--patience", "x"), ("--lr", "inf")])
def test_cli_sweep_rejects_bad_values(flag, value, capsys):
    from jtricks.cli import main

    try:  # argparse exits for syntax; the library's refusals return 2
        code = main(["sweep", flag, value])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert "error" in err and flag in err and len(err.strip().splitlines()) == 1
