"""The command line: usage errors are one line with exit status 2; train runs and
reports a test accuracy; a diverging run stops naming the epoch and gradient norm."""

import json

import pytest

from jtricks.cli import build_parser, main


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse exits on its own
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


BAD_FLAGS = [
    (["train", "--lr", "-0.1"], "--lr"),
    (["train", "--lr", "abc"], "--lr"),
    (["train", "--optimizer", "adamx"], "invalid choice: 'adamx'"),
    (["train", "--dropout", "1.5"], "[0, 1)"),
    (["train", "--momentum", "1"], "(0, 1)"),
    (["train", "--epochs", "0"], ">= 1"),
    (["train", "--batch-size", "-3"], ">= 1"),
    (["train", "--hidden", "128,x"], "comma-separated"),
    (["train", "--model", "vgg"], "choose from 'mlp', 'cnn', 'resnet'"),
    (["train", "--data", "cifar"], "accepted: digits, mnist:DIR"),
    (["train", "--data", "mnist:/no/such/dir"], "does not exist"),
    (["train", "--resume"], "--checkpoint-dir"),
    (["train", "--no-such-flag"], "unrecognized arguments"),
    (["demo", "--only", "dropout,nope"], "unknown experiment nope"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_values_exit_2_with_one_clear_line(argv, expected, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and expected in lines[0]
    assert "Traceback" not in err


def test_unreadable_mnist_files_exit_2(tmp_path, capsys):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"not an idx file")
    code, _, err = run(["train", "--data", f"mnist:{tmp_path}", "--quiet"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("jtricks train: error: cannot read MNIST")
    assert "Traceback" not in err


def test_every_trick_is_a_flag():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for action in train._actions for s in action.option_strings}
    for flag in ("--init", "--optimizer", "--lr", "--momentum", "--b1", "--b2", "--eps",
                 "--rho", "--schedule", "--lr-decay", "--clip-norm", "--clip-value",
                 "--dropout", "--batch-norm", "--weight-decay", "--l1", "--early-stopping",
                 "--reduce-lr-on-plateau", "--class-weights", "--augment", "--model",
                 "--data", "--seed", "--epochs", "--batch-size", "--checkpoint-dir",
                 "--resume", "--apply-if-finite", "--ema"):
        assert flag in flags


def test_train_runs_and_reports_test_accuracy(tmp_path, capsys):
    code, out, err = run(["train", "--epochs", "3", "--quiet", "--hidden", "64",
                          "--schedule", "per-epoch", "--clip-norm", "1", "--early-stopping",
                          "5", "--ema", "0.9", "--class-weights", "--out", str(tmp_path)],
                         capsys)
    assert code == 0, err
    assert out.startswith("test accuracy: ")
    accuracy = float(out.split()[2])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert 0.5 < accuracy <= 1.0  # 3 epochs on digits are far above chance (0.1)
    assert summary["epochs_run"] == 3
    assert (tmp_path / "history.jsonl").exists() and (tmp_path / "history.csv").exists()


def test_diverging_run_stops_naming_epoch_and_gradient_norm(tmp_path, capsys):
    # four ReLU layers with N(0, 9) weights: the signal and the gradients explode
    code, out, err = run(["train", "--hidden", "128,128,128,128", "--init", "normal",
                          "--init-scale", "3", "--optimizer", "sgd", "--lr", "0.1",
                          "--epochs", "3", "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 1
    assert "test accuracy" not in out
    assert "diverged in epoch 1" in err and "last finite gradient norm" in err
    assert err.count("diverged") == 1
    assert "Traceback" not in err


def test_resume_continues_from_the_checkpoint(tmp_path, capsys):
    common = ["train", "--hidden", "32", "--quiet", "--checkpoint-dir", str(tmp_path / "ck"),
              "--checkpoint-every", "1", "--out", str(tmp_path / "out")]
    assert run(common + ["--epochs", "2"], capsys)[0] == 0
    code, out, err = run(common + ["--epochs", "3", "--resume"], capsys)
    assert code == 0 and out.startswith("test accuracy"), err
    history = (tmp_path / "out" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [1, 2, 3]


def _write_idx(path, array):
    import struct

    import numpy as np

    array = np.asarray(array, np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def test_train_on_mnist_idx_files(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 30)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 50, (n, 28, 28))
        images[np.arange(n), labels, :] = 255  # a learnable stripe: row = class
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    code, out, err = run(["train", "--data", f"mnist:{tmp_path}", "--epochs", "8",
                          "--hidden", "32", "--quiet", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert "100 train / 20 validation / 30 test" in err
    assert float(out.split()[2]) > 0.5
