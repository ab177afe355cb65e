"""``jtricks train``'s logging: the learning rate in history.csv, --tensorboard DIR with
--log-steps, and early stopping saying when and why it stopped (terminal and summary.json)."""

import csv
import json
import re
import sys

import numpy as np
import pytest
from test_cli import run
from test_metrics import read_events


def test_train_logs_the_rate_to_tensorboard_and_reports_early_stopping(tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    # adam at a high rate decaying ×0.9 per epoch: val_loss turns up before epoch 8
    code, out, err = run(["train", "--epochs", "8", "--early-stopping", "0", "--hidden", "32",
                          "--dropout", "0", "--lr", "0.05", "--schedule", "per-epoch",
                          "--lr-decay", "0.9", "--batch-size", "64", "--quiet",
                          "--tensorboard", str(tmp_path / "tb"), "--log-steps",
                          "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    with open(tmp_path / "out" / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    epochs = len(history)
    assert summary["epochs_run"] == epochs < 8
    # the rate each epoch used: 0.05 × 0.9^(epoch - 1)
    np.testing.assert_allclose([float(r["learning_rate"]) for r in history],
                               0.05 * 0.9 ** np.arange(epochs), rtol=1e-6)
    # when and why it stopped, from the history itself
    val_loss = [float(r["val_loss"]) for r in history]
    best = int(np.argmin(val_loss)) + 1
    report = summary["early_stopping"]
    assert report["stopped"] and report["stopped_after_epoch"] == epochs
    assert report["best_epoch"] == best and report["patience"] == 0
    assert report["best_value"] == pytest.approx(min(val_loss), rel=1e-6)
    assert report["epochs_without_improvement"] == epochs - best
    line = next(s for s in err.splitlines() if "early stopping after" in s)
    assert re.fullmatch(
        rf"jtricks train: early stopping after epoch {epochs} of 8: val_loss has not improved "
        rf"on its best, {min(val_loss):.4g} at epoch {best}, for {epochs - best} epochs? "
        rf"\(--early-stopping 0\); testing the weights of epoch {best}", line), line
    # TensorBoard: every epoch at its last step, every step's rate
    steps = int(history[0]["step"])
    events = read_events(tmp_path / "tb")
    assert [s for s, _ in events["learning_rate"]] == [steps * e for e in range(1, epochs + 1)]
    np.testing.assert_allclose([v for _, v in events["val_loss"]], val_loss, rtol=1e-6)
    per_step = events["batch/learning_rate"]
    assert [s for s, _ in per_step] == list(range(1, steps * epochs + 1))
    np.testing.assert_allclose([v for _, v in per_step],
                               0.05 * 0.9 ** (np.arange(steps * epochs) // steps), rtol=1e-6)
    assert len(events["batch/loss"]) == steps * epochs


@pytest.mark.parametrize("argv, message", [
    (["--log-steps"], "--log-steps: applies only to --tensorboard DIR (this run: no "
                      "--tensorboard)"),
])
def test_logging_flags_that_do_not_apply_are_refused(argv, message, capsys):
    code, _, err = run(["train", *argv], capsys)
    assert code == 2 and err.strip().endswith(f"error: {message}"), err


def test_tensorboard_without_tensorboardx_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    code, _, err = run(["train", "--tensorboard", str(tmp_path / "tb"), "--out",
                        str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.strip() == ("jtricks train: error: jtricks train needs tensorboardX: "
                           "pip install 'jtricks[tensorboard]'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "tb").exists()
