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
    # syntax: argparse
    (["train", "--lr", "abc"], "argument --lr: 'abc' is not a number"),
    (["train", "--epochs", "1.5"], "argument --epochs: '1.5' is not an integer"),
    (["train", "--optimizer", "adamx"], "invalid choice: 'adamx'"),
    (["train", "--hidden", "128,x"], "comma-separated"),
    (["train", "--model", "vgg"], "choose from 'mlp', 'cnn', 'resnet'"),
    (["train", "--data", "cifar"], "accepted: digits, mnist1d, mnist:DIR"),
    (["train", "--no-such-flag"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
    (["sweep", "--lr", "1e-3,x"], "comma-separated list of numbers"),
    # ranges: the library's own checks, named by the flag and the value
    (["train", "--lr", "-0.1"], "error: --lr -0.1: learning_rate=-0.1 must be >= 0"),
    (["train", "--lr", "-0.1", "--schedule", "cosine"],
     "error: --lr -0.1: learning_rate=-0.1 must be >= 0"),
    (["train", "--dropout", "1.5"], "error: --dropout 1.5: dropout=1.5 must be <= 1"),
    (["train", "--model", "resnet", "--drop-path", "-0.5"],
     "error: --drop-path -0.5: drop_path=-0.5 must be >= 0"),
    (["train", "--optimizer", "momentum", "--momentum", "1"],
     "error: --momentum 1: momentum=1.0 must be < 1"),
    (["train", "--b2", "1"], "error: --b2 1: b2=1.0 must be < 1"),
    (["train", "--optimizer", "rmsprop", "--rho", "1.5"], "error: --rho 1.5: decay=1.5 must be < 1"),
    (["train", "--eps", "-1"], "error: --eps -1: eps=-1.0 must be >= 0"),
    (["train", "--init", "uniform", "--init-scale", "-1"],
     "error: --init-scale -1: scale=-1.0 must be >= 0"),
    (["train", "--hidden", "64,0"], "error: --hidden 64,0: features=0 must be >= 1"),
    (["train", "--clip-norm", "0"], "error: --clip-norm 0: max_norm=0.0 must be > 0"),
    (["train", "--clip-value", "-1"], "error: --clip-value -1: max_delta=-1.0 must be > 0"),
    (["train", "--l1", "-1"], "error: --l1 -1: l1=-1.0 must be >= 0"),
    (["train", "--weight-decay", "-1"], "error: --weight-decay -1: weight_decay=-1.0 must be >= 0"),
    (["train", "--ema", "-0.1"], "error: --ema -0.1: decay=-0.1 must be >= 0"),
    (["train", "--early-stopping", "-1"], "error: --early-stopping -1: patience=-1"),
    (["train", "--reduce-lr-on-plateau", "1.5"],
     "error: --reduce-lr-on-plateau 1.5: factor=1.5 must be < 1"),
    (["train", "--reduce-lr-on-plateau", "0.5", "--plateau-patience", "-1"],
     "error: --plateau-patience -1: patience=-1 must be >= 1"),
    (["train", "--data", "mnist:/no/such/dir"],
     "error: --data mnist:/no/such/dir: cannot load it: path='/no/such/dir' is not a directory"),
    # flags that feed no library constructor: jtricks._validate's checks
    (["train", "--epochs", "0"], "error: --epochs 0: epochs=0 must be >= 1"),
    (["train", "--batch-size", "-3"], "error: --batch-size -3: batch_size=-3 must be >= 1"),
    (["train", "--seed", "-1"], "error: --seed -1: seed=-1 must be >= 0"),
    (["train", "--devices", "0"], "error: --devices 0: devices=0 must be >= 1"),
    (["train", "--checkpoint-every", "0"],
     "error: --checkpoint-every 0: checkpoint_every=0 must be >= 1"),
    (["train", "--warmup-epochs", "-1"], "error: --warmup-epochs -1: warmup_epochs=-1 must be >= 0"),
    # non-finite numbers never reach training
    (["train", "--lr", "inf"], "error: --lr inf: lr=inf must be finite"),
    (["train", "--lr", "nan"], "error: --lr nan: lr=nan must not be NaN"),
    (["train", "--weight-decay", "inf"], "error: --weight-decay inf: weight_decay=inf must be finite"),
    (["train", "--init", "normal", "--init-scale", "inf"],
     "error: --init-scale inf: init_scale=inf must be finite"),
    (["train", "--clip-norm=-inf"], "error: --clip-norm -inf: clip_norm=-inf must be finite"),
    (["train", "--resume"], "--checkpoint-dir"),
    (["train", "--restart"], "--restart needs --checkpoint-dir"),
    (["train", "--max-bad-steps", "3"], "--max-bad-steps 3: needs --apply-if-finite"),
    (["train", "--apply-if-finite", "--max-bad-steps", "-1"],
     "--max-bad-steps -1: max_bad_steps=-1 must be >= 0"),
    (["demo", "--only", "dropout,nope"], "unknown experiment nope"),
    (["demo", "--seed", "-2"], "error: --seed -2: seed=-2 must be >= 0"),
    (["sweep", "--dropout", "0,1.5"], "error: --dropout 0,1.5: dropout=1.5 must be <= 1"),
    (["sweep", "--lr", "1e-3,-1"], "error: --lr 0.001,-1: learning_rate=-1.0 must be >= 0"),
    (["sweep", "--lr", "1e-3,inf"], "error: --lr 0.001,inf: lr=inf must be finite"),
    (["sweep", "--weight-decay", "0,nan"], "error: --weight-decay 0,nan: weight_decay=nan must not"),
    (["sweep", "--init-scale", "1,0"], "error: --init-scale 1,0: init_scale=0.0 must be > 0"),
    (["sweep", "--hidden", "0"], "error: --hidden 0: features=0 must be >= 1"),
    (["sweep", "--epochs", "0"], "error: --epochs 0: epochs=0 must be >= 1"),
    (["sweep", "--patience", "-1"], "error: --patience -1: patience=-1 must be >= 0"),
    # a flag that does not apply to the configuration is refused, not ignored
    (["train", "--lr-decay", "0.9"],
     "error: --lr-decay 0.9: applies only to --schedule per-epoch (this run: --schedule constant)"),
    (["train", "--drop-path", "0.2"],
     "error: --drop-path 0.2: applies only to --model resnet (this run: --model mlp)"),
    (["train", "--model", "resnet", "--hidden", "64,32"],
     "error: --hidden 64,32: applies only to --model mlp (this run: --model resnet)"),
    (["train", "--momentum", "0.5"], "error: --momentum 0.5: applies only to --optimizer "
                                     "momentum and nesterov (this run: --optimizer adam)"),
    (["train", "--optimizer", "sgd", "--eps", "1e-3"], "error: --eps 0.001: applies only to "
                                                       "the adaptive optimizers (this run: --optimizer sgd)"),
    (["train", "--init-scale", "2"], "error: --init-scale 2.0: applies only to --init uniform "
                                     "and normal (this run: --init he_normal)"),
    (["train", "--schedule", "warmup-cosine", "--warmup-epochs", "40", "--epochs", "30"],
     "error: --warmup-epochs 40: must be fewer than --epochs 30"),
    (["train", "--plateau-patience", "2"], "error: --plateau-patience 2: applies only to "
                                           "--reduce-lr-on-plateau (this run: no --reduce-lr-on-plateau)"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_values_exit_2_with_one_clear_line(argv, expected, capsys, tmp_path):
    code, out, err = run(argv + ["--out", str(tmp_path / "out")] if argv[0] != "frobnicate"
                         else argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line: nothing was trained (no "jtricks train: digits")
    assert lines[0].startswith(("jtricks: error: ", f"jtricks {argv[0]}: error: "))
    assert expected in lines[0]
    assert "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--dropout", "1.0"], ["--lr", "0"],
                                  ["--optimizer", "momentum", "--momentum", "0"],
                                  ["--early-stopping", "0"], ["--ema", "0"]])
def test_values_the_library_accepts_are_accepted(argv):
    """The command line refuses no value that the library accepts (e.g. dropout 1.0)."""
    import jtricks.data as jd
    from jtricks.cli import _train

    args = build_parser().parse_args(["train", *argv])
    _train.check_args(args)
    data = jd.load_split("digits", 0)
    built = _train.build(args, data)
    assert built.model is not None and built.tx is not None


def test_library_errors_names_the_flag_and_its_docstring_runs():
    import doctest

    from jtricks.cli import _common

    with pytest.raises(_common.CliError, match=r"^--a 1, --b x: no argument named here$"):
        with _common.library_errors({"p": ("--a", 1), "q": ("--b", "x")}):
            raise ValueError("no argument named here")
    with pytest.raises(_common.CliError, match=r"^--b x: q\[0\]=2 must be"):
        with _common.library_errors({"p": ("--a", 1), "q": ("--b", "x")}):
            raise TypeError("q[0]=2 must be 1")
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(_common.library_errors, "library_errors",
                                             globs=vars(_common).copy()):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted == 2


def test_no_hand_written_ranges_are_left():
    from jtricks.cli import _common

    for name in ("positive_float", "non_negative_float", "rate", "unit_open", "decay_factor",
                 "positive_int", "non_negative_int", "load_dataset"):
        assert not hasattr(_common, name), name


def test_unreadable_mnist_files_exit_2(tmp_path, capsys):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"not an idx file")
    code, _, err = run(["train", "--data", f"mnist:{tmp_path}", "--quiet"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(
        f"jtricks train: error: --data mnist:{tmp_path}: cannot load it: ")
    assert "wrong magic number" in err
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
    assert summary["config"]["lr"] == 1e-3 and summary["config"]["batch_norm"] is False  # resolved
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


def test_resume_continues_from_the_checkpoint(tiny_run, tmp_path, capsys):
    ck, out = _copy_of(tiny_run, tmp_path)  # 3 epochs, a checkpoint after each
    code, stdout, err = run(TINY + ["--epochs", "4", "--checkpoint-dir", str(ck), "--out",
                                    str(out), "--resume"], capsys)
    assert code == 0 and stdout.startswith("test accuracy"), err
    history = (out / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [1, 2, 3, 4]
    assert max(int(p.name) for p in ck.iterdir() if p.name.isdigit()) == 4


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


# ---------------------------------------------------------------- optional packages
# Nothing is uninstalled: a prelude sets sys.modules[name] = None for the blocked
# packages, which makes every import of them fail as if they were missing.

DEMO_HINT = "pip install 'jtricks[demo]'"


def _without(modules, argv, cwd):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prelude = (f"import sys\nfor m in {list(modules)!r}:\n    sys.modules[m] = None\n"
               "from jtricks.cli import main\nsys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", prelude, *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_line_exit_2(proc, line):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [line]
    assert proc.stdout == ""


def _mnist_files(directory):
    import numpy as np

    rng = np.random.default_rng(0)
    directory.mkdir()
    for prefix, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n) % 10
        _write_idx(directory / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)
    return directory


def test_demo_without_its_extra_exits_2_naming_it(tmp_path):
    proc = _without(["sklearn", "matplotlib"], ["demo", "--quick"], tmp_path)
    _one_line_exit_2(proc, "jtricks demo: error: jtricks demo needs scikit-learn, matplotlib: "
                           + DEMO_HINT)
    proc = _without(["tqdm"], ["demo", "--quick"], tmp_path)
    _one_line_exit_2(proc, "jtricks demo: error: jtricks demo needs tqdm: " + DEMO_HINT)
    assert not (tmp_path / "jtricks-report").exists()


def test_train_and_sweep_on_digits_need_scikit_learn(tmp_path):
    for command in ("train", "sweep"):
        proc = _without(["sklearn"], [command, "--epochs", "1"], tmp_path)
        _one_line_exit_2(proc, f"jtricks {command}: error: jtricks {command} needs "
                               "scikit-learn: " + DEMO_HINT)


def test_train_on_mnist_needs_neither_scikit_learn_nor_matplotlib_nor_orbax(tmp_path):
    mnist = _mnist_files(tmp_path / "mnist")
    argv = ["train", "--data", f"mnist:{mnist}", "--epochs", "1", "--hidden", "8", "--quiet",
            "--out", str(tmp_path / "out")]
    # nor tqdm (all four missing at once, in one process): fit shows its progress bar only
    # when tqdm is installed (not --quiet: the progress is on); checkpoints need orbax
    proc = _without(["sklearn", "matplotlib", "orbax", "orbax.checkpoint", "tqdm", "tqdm.auto"],
                    [a for a in argv if a != "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("test accuracy: ")
    proc = _without(["orbax", "orbax.checkpoint"], argv + ["--checkpoint-dir",
                                                           str(tmp_path / "ck")], tmp_path)
    _one_line_exit_2(proc, "jtricks train: error: jtricks train needs orbax-checkpoint: "
                           + DEMO_HINT)


def test_bench_without_flax_exits_2_before_any_row(tmp_path):
    proc = _without(["flax"], ["bench", "--quick", "--out", "-"], tmp_path)
    _one_line_exit_2(proc, "jtricks bench: error: jtricks bench needs flax: "
                           "pip install 'jtricks[bench]'")


# ------------------------------------------------------- checkpoints, paths and data
# Each refusal is one line with exit 2 before the first step ("jtricks train: digits"
# is printed just before training starts).

TINY = ["train", "--hidden", "16", "--batch-size", "64", "--quiet", "--checkpoint-every", "1"]


def _refused(code, out, err, *expected):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("jtricks train: error: "), err
    assert not [line for line in lines[:-1] if not line.startswith(
        ("jtricks train: digits", "skipping"))], err  # what it did, then why it stops
    for text in expected:
        assert text in lines[-1], lines[-1]
    assert "Traceback" not in err and out == ""
    return lines[-1]


def _summary(out_dir):
    return json.loads((out_dir / "summary.json").read_text())


def _truncate_arrays(step_dir):
    import os

    for root, _, files in os.walk(step_dir / "state"):
        if os.path.basename(root) == "d":
            for name in files:
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(8)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One uninterrupted ``TINY`` run of 3 epochs with a checkpoint after each, shared by
    the tests that only read it or work on a copy (``_copy_of``): its checkpoint folder
    and its ``--out`` folder."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    root = tmp_path_factory.mktemp("tiny-run")
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
        code = main(TINY + ["--epochs", "3", "--checkpoint-dir", str(root / "ck"), "--out",
                            str(root / "out")])
    assert code == 0, err.getvalue()
    return root / "ck", root / "out"


def _copy_of(tiny_run, tmp_path):
    """A copy of ``tiny_run``'s checkpoint and ``--out`` folders under ``tmp_path``."""
    import shutil

    ck, out = (shutil.copytree(src, tmp_path / src.name) for src in tiny_run)
    return ck, out


def test_resume_after_a_corrupt_checkpoint_and_when_none_is_usable(tiny_run, tmp_path, capsys):
    ck, a = _copy_of(tiny_run, tmp_path)
    base = TINY + ["--epochs", "3", "--checkpoint-dir", str(ck)]
    _truncate_arrays(ck / "3")
    code, out, err = run(base + ["--out", str(tmp_path / "b"), "--resume"], capsys)
    assert code == 0, err
    assert f"checkpoint {ck}/3 is unreadable" in err and f"moved to {ck}/3.corrupt-1" in err
    assert _summary(tmp_path / "b")["test_loss"] == _summary(a)["test_loss"]
    assert run(base + ["--out", str(tmp_path / "b"), "--resume"], capsys)[0] == 0  # again
    for epoch in (1, 2, 3):
        _truncate_arrays(ck / str(epoch))
    code, out, err = run(base + ["--out", str(tmp_path / "c"), "--resume"], capsys)
    _refused(code, out, err, "no usable checkpoint", "--restart")
    code, out, err = run(base + ["--out", str(tmp_path / "c"), "--resume", "--restart"],
                         capsys)
    assert code == 0, err
    assert _summary(tmp_path / "c")["test_loss"] == _summary(a)["test_loss"]
    assert (ck / "archived-1").is_dir()


def test_resume_with_other_flags_refuses_naming_the_difference(tiny_run, tmp_path, capsys):
    ck, out = _copy_of(tiny_run, tmp_path)
    base = TINY + ["--epochs", "3", "--checkpoint-dir", str(ck), "--out", str(out)]
    for flags, difference in ((["--seed", "1"], "--seed: 0 -> 1"),
                              (["--optimizer", "sgd"], '--optimizer: "adam" -> "sgd"'),
                              (["--hidden", "32"], "--hidden: [16] -> [32]")):
        code, out, err = run(base + ["--resume"] + flags, capsys)
        _refused(code, out, err, "written by another run configuration", difference,
                        "--restart")
    code, out, err = run(base, capsys)  # a fresh run does not overwrite them either
    _refused(code, out, err, "already holds checkpoints", "--resume", "--restart")
    assert sorted(p.name for p in ck.iterdir()) == ["1", "2", "3"]


def test_a_second_writer_is_refused(tmp_path, capsys):
    from jtricks.train import Checkpointer

    holder = Checkpointer(tmp_path / "ck")
    holder.acquire()
    try:
        code, out, err = run(TINY + ["--epochs", "2", "--checkpoint-dir", str(tmp_path / "ck"),
                                     "--out", str(tmp_path / "o")], capsys)
    finally:
        holder.close()
    _refused(code, out, err, "is in use by this process", ".jtricks-checkpoint.lock")


def test_ctrl_c_during_a_save_is_one_line_and_resumable(tiny_run, tmp_path, capsys,
                                                        monkeypatch):
    import orbax.checkpoint as ocp

    ck = tmp_path / "ck"
    base = TINY + ["--epochs", "3", "--checkpoint-dir", str(ck)]
    original = ocp.handlers.JsonCheckpointHandler.async_save
    calls = []

    async def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "async_save", interrupted)
    code, out, err = run(base + ["--out", str(tmp_path / "b")], capsys)
    monkeypatch.undo()
    assert code == 130
    assert err.strip().splitlines()[-1] == (f"jtricks train: interrupted; the checkpoints in "
                                            f"{ck} are intact: continue with --resume")
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err
    code, out, err = run(base + ["--out", str(tmp_path / "b"), "--resume"], capsys)
    assert code == 0, err
    assert _summary(tmp_path / "b")["test_loss"] == _summary(tiny_run[1])["test_loss"]


def test_unusable_paths_are_refused_before_training(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for flags, expected in ((["--out", str(a_file)], "--out"),
                            (["--checkpoint-dir", str(a_file)], "--checkpoint-dir"),
                            (["--checkpoint-dir", str(a_file / "ck")], "--checkpoint-dir")):
        argv = TINY + ["--epochs", "1", "--out", str(tmp_path / "o")] + flags
        line = _refused(*run(argv, capsys), expected, "is a file")
        assert line.startswith(f"jtricks train: error: {expected} ")


def _idx(path, array, code=0x08):
    import struct

    import numpy as np

    array = np.asarray(array)
    dtype = {0x08: np.uint8, 0x0D: ">f4"}[code]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(dtype).tobytes())


@pytest.mark.parametrize("damage, expected", [
    ("label 255", "train-labels-idx1-ubyte: label 255 at index 4 is not a class index"),
    ("nan label", "train-labels-idx1-ubyte: label nan at index 4 is not a class index"),
    ("nan image", "training image"),
    ("test size", "the test images are 20x20 but the training images are 28x28"),
    ("empty", "the training part is empty"),
])
def test_data_training_cannot_use_is_refused_before_training(tmp_path, capsys, damage,
                                                             expected):
    import numpy as np

    rng = np.random.default_rng(0)
    d = tmp_path / "mnist"
    d.mkdir()
    for prefix, n in (("train", 0 if damage == "empty" else 60), ("t10k", 20)):
        labels, code = (np.arange(n) % 10).astype(np.float32), 0x08
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.float32)
        if prefix == "train" and damage == "label 255":
            labels[4] = 255
        if prefix == "train" and damage == "nan label":
            labels[4], code = np.nan, 0x0D
        if prefix == "train" and damage == "nan image":
            images[3, 1, 1] = np.nan
        if prefix == "t10k" and damage == "test size":
            images = images[:, :20, :20]
        _idx(d / f"{prefix}-images-idx3-ubyte", images, 0x0D if damage == "nan image" else 0x08)
        _idx(d / f"{prefix}-labels-idx1-ubyte", labels, code)
    code, out, err = run(TINY + ["--epochs", "1", "--data", f"mnist:{d}", "--out",
                                 str(tmp_path / "o")], capsys)
    _refused(code, out, err, f"--data mnist:{d}: cannot load it", expected)
    assert "jtricks train: mnist" not in err


def test_apply_if_finite_skips_for_the_whole_run_unless_limited(tmp_path, capsys):
    exploding = ["train", "--hidden", "128,128,128,128", "--init", "normal", "--init-scale",
                 "3", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "2", "--quiet",
                 "--apply-if-finite", "--out", str(tmp_path)]
    code, out, err = run(exploding, capsys)
    assert code == 0, err  # every non-finite step skipped, for the whole run
    assert out.startswith("test accuracy")
    assert sum(json.loads(line).get("skipped_steps", 0) for line in
               (tmp_path / "history.jsonl").read_text().splitlines()) > 5
    code, out, err = run(exploding + ["--max-bad-steps", "2"], capsys)
    assert code == 1
    assert "diverged in epoch 1" in err and "apply_if_finite was on" in err
    assert "--max-bad-steps" in err and "or apply_if_finite to skip" not in err
