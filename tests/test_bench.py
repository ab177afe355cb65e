"""``jtricks bench``: a quick run end to end, the per-row time limit, the report's targets,
and where the harness lives (``benchmarks/`` in the source checkout, not in the package)."""

import importlib
import os
import subprocess
import sys

import pytest

import benchmarks as bench
from benchmarks._measure import parse_shape
from benchmarks._report import format_report, targets
from benchmarks._step import _TAG, run_worker
from jtricks.cli import main as cli_main

cli_bench = importlib.import_module("jtricks.cli._bench")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_run_writes_the_report(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "jtricks bench --quick" in text
    assert "| tree | optax ms | jtricks ms | ratio" in text
    assert "| 32 x 128 | " in text and "not compiled" not in text
    assert "Full training step" in text and "flax + optax ms" in text
    assert "## Targets" in text


def test_a_worker_past_its_time_limit_keeps_what_it_printed():
    script = (
        f"print({_TAG!r} + '{{\"flat_ms\": 1.5}}', flush=True); "
        "import time; time.sleep(60)"
    )
    record, timed_out = run_worker([sys.executable, "-c", script], timeout=5, heartbeat=1)
    assert timed_out
    assert record == {"flat_ms": 1.5}


def test_a_worker_that_fails_gives_no_record():
    record, timed_out = run_worker([sys.executable, "-c", "raise SystemExit(3)"], timeout=30)
    assert record is None and not timed_out


def _row(shape, leaves, *, optax=True):
    row = dict(
        shape=shape, leaves=leaves, size=512, params=leaves * 512, copy_bw=2e10,
        flat_ms=1.0, tree_ms=2.0, flat_bw=0.6, tree_bw=0.3,
        flat_compile_s=0.2, tree_compile_s=1.0,
    )
    if optax:
        row.update(optax_ms=5.0, optax_bw=0.12, ratio=0.2, tree_ratio=0.4, optax_compile_s=60.0)
    else:
        row["optax_timeout_s"] = 900.0
    return row


def test_report_marks_a_row_whose_optax_compile_ran_out_of_time():
    section = dict(
        device="cpu: cpu",
        copy_n=1 << 20,
        steps=[_row("2048 x 1K", 2048), _row("8192 x 512", 8192, optax=False)],
        compiles=[dict(leaves=4096, size=1024, flat_s=0.2, tree_s=4.0, optax_timeout_s=900.0)],
    )
    text = format_report("jtricks bench", {"cpu": "x"}, [section], [])
    assert "| 8192 x 512 | not compiled in 900 s | 1.00 | — |" in text
    assert "| 4096 x 1K | > 900 | 0.20 | > 4500x |" in text
    lines = "\n".join(targets([section], []))
    assert "**not measured** on 8192 x 512" in lines
    assert ">= 5x faster to compile: met (least 300x" in lines  # 60 s / 0.2 s on 2048 leaves
    assert ">= 3x faster per step: met (least 5.0x)" in lines


def test_targets_are_computed_not_assumed():
    slow = _row("64 x 256K", 64)
    slow.update(ratio=1.2, flat_bw=0.4)
    section = dict(device="cpu: cpu", copy_n=1 << 20, steps=[slow], compiles=[])
    train = dict(device="cpu: cpu", flat_ms=2.2, tree_ms=2.1, flax_ms=2.0)
    lines = "\n".join(targets([section], [train]))
    assert "never slower than optax (ratio <= 1.0): **not met** (worst 1.20" in lines
    assert "copy bandwidth on every tree: **not met** (lowest 40%" in lines
    assert "no slower than flax + optax: **not met**" in lines
    train.update(tree_ms=1.9)
    assert "no slower than flax + optax: met" in "\n".join(targets([section], [train]))


@pytest.mark.parametrize(
    "text, shape", [("2048x1K", (2048, 1024)), ("1x16M", (1, 16 << 20)), ("8x3", (8, 3))]
)
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["2048", "x1K", "0x4", "axb"])
def test_parse_shape_rejects_bad_text(text):
    with pytest.raises(ValueError, match="LEAVESxSIZE|at least one"):
        parse_shape(text)


@pytest.mark.parametrize(
    "argv, message",
    [(["--repeats", "0"], "--repeats=0"), (["--timeout", "-1"], "--timeout"),
     (["--shapes", "12"], "LEAVESxSIZE"), (["--compile-leaves", "0"], "positive")],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_report_marks_a_row_whose_optax_part_failed():
    failed = _row("8192 x 512", 8192, optax=False)
    del failed["optax_timeout_s"]
    failed["optax_failed"] = True
    section = dict(device="cpu: cpu", copy_n=1 << 20, steps=[_row("2048 x 1K", 2048), failed],
                   compiles=[])
    text = format_report("jtricks bench", {"cpu": "x"}, [section], [])
    assert "| 8192 x 512 | failed (see the log) |" in text
    assert "| 8192 x 512 (step above) | failed | 0.20 | — |" in text
    assert ">= 5x faster to compile: met (least 300x" in text


def test_the_harness_is_the_checkouts_benchmarks_not_a_jtricks_module():
    assert os.path.dirname(bench.__file__) == os.path.join(ROOT, "benchmarks")
    assert not os.path.exists(os.path.join(ROOT, "jtricks", "bench"))
    assert cli_bench.find_checkout() == ROOT


def test_the_package_does_not_ship_the_benchmarks():
    from setuptools import find_packages

    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        spec = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]
    shipped = find_packages(ROOT, include=spec.get("include", ("*",)),
                            exclude=spec.get("exclude", ()))
    assert "jtricks" in shipped and "jtricks.cli" in shipped
    assert not [p for p in shipped if not p.startswith("jtricks")], shipped


def test_jtricks_bench_runs_the_checkouts_benchmarks_with_every_flag(monkeypatch):
    seen = {}
    monkeypatch.setattr(bench, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    assert cli_main(["bench", "--quick", "--only", "adam"]) == 0
    assert seen["argv"] == ["--quick", "--only", "adam"]


def test_jtricks_bench_without_a_checkout_exits_2_saying_how(tmp_path, monkeypatch, capsys):
    installed = tmp_path / "site-packages" / "jtricks"
    installed.mkdir(parents=True)
    assert cli_bench.find_checkout(str(installed)) is None
    monkeypatch.setattr(cli_bench, "find_checkout", lambda: None)
    monkeypatch.setattr(bench, "main", lambda argv: pytest.fail("no checkout, nothing to run"))
    assert cli_main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("jtricks bench: error: the benchmarks run from a source checkout")
    assert "pip install -e" in err and "python -m benchmarks" in err


def test_jtricks_bench_refuses_another_package_named_benchmarks(tmp_path, monkeypatch, capsys):
    other = tmp_path / "benchmarks"
    other.mkdir()
    (other / "__init__.py").write_text("def main(argv):\n    raise SystemExit('wrong one')\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmarks", other / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "benchmarks", module)
    assert cli_main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "another module named 'benchmarks'" in err and str(tmp_path) in err


@pytest.mark.parametrize("command", [["scripts/bench.py"], ["-m", "benchmarks"]])
def test_the_harness_runs_as_a_script_and_as_a_module(command, tmp_path):
    # scripts/bench.py from anywhere; python -m benchmarks from the checkout's root
    script = [os.path.join(ROOT, command[0])] if command[0].endswith(".py") else command
    cwd = tmp_path if command[0].endswith(".py") else ROOT
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, *script, "--help"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--timeout" in done.stdout
