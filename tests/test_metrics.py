"""Metric writers (JSONL, CSV, TensorBoard, several at once), the learning rate a step
used, and fit's per-epoch and per-step logging through them."""

import csv
import os
import struct
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks
import jtricks.optim as jo
from jtricks.train import (CsvWriter, JsonlWriter, MultiWriter, TensorBoardWriter, TrainState,
                           classifier_eval, classifier_loss, fit, learning_rate_of, read_jsonl)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_events(logdir):
    """Every scalar of the TensorBoard event files in ``logdir`` as ``{tag: [(step,
    value)]}``, parsed from the TFRecord framing (length, CRC, Event protobuf, CRC)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    out = {}
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name), "rb") as f:
            data = f.read()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


# ----------------------------------------------------------------------------- writers


def test_jsonl_and_csv_writers_write_one_row_per_call(tmp_path):
    rows = [(1, {"loss": jnp.float32(0.5), "acc": np.float64(0.25)}),
            (2, {"loss": 0.125, "lr": jnp.array(0.1), "acc": float("nan")}),
            (3, {"step": 3, "loss": 1.0})]
    with JsonlWriter(tmp_path / "m.jsonl") as j, CsvWriter(tmp_path / "sub" / "m.csv") as c:
        for step, scalars in rows:
            j.write_scalars(step, scalars)
            c.write_scalars(step, scalars)
    back = read_jsonl(tmp_path / "m.jsonl")
    assert back[0] == {"step": 1, "loss": 0.5, "acc": 0.25}
    assert back[1]["lr"] == pytest.approx(0.1) and np.isnan(back[1]["acc"])
    assert back[2] == {"step": 3, "loss": 1.0}
    table = _read_csv(tmp_path / "sub" / "m.csv")  # the header widened when "lr" came
    assert list(table[0]) == ["step", "loss", "acc", "lr"]
    assert table[0] == {"step": "1", "loss": "0.5", "acc": "0.25", "lr": ""}
    assert table[1]["lr"] == str(np.float32(0.1).item()) and table[1]["acc"] == "nan"
    assert table[2] == {"step": "3", "loss": "1.0", "acc": "", "lr": ""}
    with JsonlWriter(tmp_path / "m.jsonl", append=True) as j:
        j.write_scalars(4, {"loss": 2.0})
    assert [r["step"] for r in read_jsonl(tmp_path / "m.jsonl")] == [1, 2, 3, 4]


def test_history_files_name_what_is_wrong(tmp_path):
    from jtricks.train import write_csv, write_jsonl

    path = tmp_path / "h.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')  # a run killed mid-line
    with pytest.raises(ValueError, match=r"h\.jsonl, line 2: not JSON"):
        read_jsonl(path)
    path.write_text('{"step": 1}\n\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 3: a JSON list, not an object"):
        read_jsonl(path)
    for write in (write_jsonl, write_csv):
        out = tmp_path / f"out.{write.__name__}"
        with pytest.raises(TypeError, match=r"rows\[1\] is a float, not a dict"):
            write([{"loss": 1.0}, 0.5], out)
        assert not out.exists() and not os.path.exists(f"{out}.tmp")


def test_writers_refuse_a_step_that_disagrees_and_objects_that_are_not_writers(tmp_path):
    with JsonlWriter(tmp_path / "m.jsonl") as j:
        with pytest.raises(ValueError, match=r"step=2 and scalars\['step'\]=3"):
            j.write_scalars(2, {"step": 3})
    with pytest.raises(TypeError, match=r"writers\[1\]=.* is not a metric writer"):
        MultiWriter([JsonlWriter(tmp_path / "a.jsonl"), "runs/x"])


def test_tensorboard_writer_events_read_back(tmp_path):
    pytest.importorskip("tensorboardX")
    with MultiWriter([TensorBoardWriter(tmp_path / "tb"), JsonlWriter(tmp_path / "m.jsonl")]) as w:
        for step in range(1, 4):
            w.write_scalars(step, {"batch/loss": 1.0 / step, "lr": jnp.float32(0.1 * step),
                                   "note": "text", "none": None})
    events = read_events(tmp_path / "tb")
    assert set(events) == {"batch/loss", "lr"}  # strings and None are left out
    assert [s for s, _ in events["batch/loss"]] == [1, 2, 3]
    np.testing.assert_allclose([v for _, v in events["batch/loss"]], [1, 0.5, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in events["lr"]], [0.1, 0.2, 0.3], rtol=1e-6)


def test_tensorboard_writer_names_its_extra_when_tensorboardx_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"^jtricks.train.TensorBoardWriter needs tensorboardX: "
                                          r"pip install 'jtricks\[tensorboard\]'$"):
        TensorBoardWriter(tmp_path)
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- learning rate


def test_learning_rate_of_reads_injected_rates_and_plateau_scales_as_optax():
    params = jnp.zeros(2)
    schedule = optax.cosine_decay_schedule(0.1, 10)
    for inject in (optax.inject_hyperparams, jo.inject_hyperparams):  # optax's and jtricks'
        tx = optax.chain(inject(optax.sgd)(learning_rate=schedule),
                         optax.contrib.reduce_on_plateau(factor=0.5, patience=1))
        state, update = tx.init(params), jax.jit(tx.update)
        for step in range(4):
            _, state = update(jnp.ones(2), state, params, value=jnp.float32(1.0))
            expected = schedule(step) * state[1].scale
            assert float(learning_rate_of(state)) == pytest.approx(float(expected))
        assert float(state[1].scale) < 1  # the plateau has cut the rate
    # without inject_hyperparams: the schedule at the step, or the number
    state = jo.chain(jo.sgd(schedule), jo.reduce_on_plateau(0.5, 1)).init(params)
    assert float(learning_rate_of(state, schedule, 3)) == pytest.approx(float(schedule(3)))
    assert float(learning_rate_of(state, 0.1)) == pytest.approx(0.1)
    assert learning_rate_of(optax.adam(1e-3).init(params)) is None
    with pytest.raises(ValueError, match="no step"):
        learning_rate_of(state, schedule)


# ----------------------------------------------------------------------------- fit


def _problem():
    model = jtricks.nn.mlp([16, 3])
    params, model_state = model.init(jax.random.key(0), (4,))
    x = jax.random.normal(jax.random.key(2), (60, 4))
    y = (x[:, 0] > 0).astype(jnp.int32)
    return model, params, model_state, (x[:40], y[:40]), (x[40:], y[40:])


def test_fit_logs_epochs_and_steps_with_the_learning_rate(tmp_path):
    pytest.importorskip("tensorboardX")
    model, params, model_state, train, val = _problem()
    schedule = optax.cosine_decay_schedule(0.05, 15)  # 3 epochs of 5 steps
    tx = jo.adam(schedule)
    state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
    steps = JsonlWriter(tmp_path / "all.jsonl")
    result = fit(state, train, loss_fn=classifier_loss(model), tx=tx, epochs=3, batch_size=8,
                 val_data=val, eval_fn=classifier_eval(model), progress=False,
                 history_dir=str(tmp_path / "hist"), learning_rate=schedule, log_steps=True,
                 writers=[steps, board := TensorBoardWriter(tmp_path / "tb")])
    steps.close()
    board.close()  # tensorboardX writes from a background thread: complete once closed
    history = result.history
    # the history files hold the rows fit returns, learning rate included
    assert read_jsonl(tmp_path / "hist" / "history.jsonl") == history
    table = _read_csv(tmp_path / "hist" / "history.csv")
    assert [float(r["learning_rate"]) for r in table] == [r["learning_rate"] for r in history]
    # an epoch's rate is its last step's: schedule(4), schedule(9), schedule(14)
    np.testing.assert_allclose([r["learning_rate"] for r in history],
                               [schedule(4), schedule(9), schedule(14)], rtol=1e-5, atol=1e-8)
    # the writers got every step (batch/*, numbered 1..15) and every epoch row
    rows = read_jsonl(tmp_path / "all.jsonl")
    per_step = [r for r in rows if "batch/loss" in r]
    assert [r["step"] for r in per_step] == list(range(1, 16))
    assert [r for r in rows if "epoch" in r] == history
    np.testing.assert_allclose([r["batch/learning_rate"] for r in per_step],
                               [schedule(i) for i in range(15)], rtol=1e-5, atol=1e-8)
    for epoch, row in enumerate(history):  # the epoch's mean is the mean of its steps
        losses = [r["batch/loss"] for r in per_step[5 * epoch:5 * epoch + 5]]
        assert row["train_loss"] == pytest.approx(np.mean(losses), rel=1e-6)
    events = read_events(tmp_path / "tb")
    assert [s for s, _ in events["batch/grad_norm"]] == list(range(1, 16))
    assert [s for s, _ in events["val_accuracy"]] == [5, 10, 15]
    np.testing.assert_allclose([v for _, v in events["val_loss"]],
                               [r["val_loss"] for r in history], rtol=1e-6)


def test_fit_finds_the_rate_in_inject_hyperparams_and_follows_the_plateau(tmp_path):
    model, params, model_state, train, val = _problem()
    # the plateau watches the mean loss of 5 steps (one epoch); patience 1 with a
    # threshold no epoch can meet: the rate halves after every epoch
    tx = jo.chain(jo.inject_hyperparams(jo.sgd)(learning_rate=0.2),
                  jo.reduce_on_plateau(0.5, 1, rtol=1.0, accumulation_size=5))
    state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
    result = fit(state, train, loss_fn=classifier_loss(model), tx=tx, epochs=3, batch_size=8,
                 progress=False, history_dir=str(tmp_path))
    np.testing.assert_allclose([r["learning_rate"] for r in result.history],
                               [0.1, 0.05, 0.025], rtol=1e-6)
    assert float(learning_rate_of(result.state.opt_state)) == pytest.approx(0.025)


def test_fit_refuses_steps_without_writers_and_a_negative_rate():
    model, params, model_state, train, _ = _problem()
    tx = jo.sgd(0.1)
    state = TrainState.create(params=params, tx=tx, key=1, model_state=model_state)
    kw = dict(loss_fn=classifier_loss(model), tx=tx, epochs=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"log_steps=True\) needs writers="):
        fit(state, train, log_steps=True, **kw)
    with pytest.raises(ValueError, match="learning_rate=-0.1"):
        fit(state, train, learning_rate=-0.1, **kw)
    with pytest.raises(TypeError, match="writers=.* is not a metric writer"):
        fit(state, train, writers=open, **kw)

