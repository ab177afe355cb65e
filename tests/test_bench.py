"""``jtricks bench``: a quick run end to end, ``--only`` keeping the other tables, the per-row
time limit, the targets computed from the figures, PyTorch optional, and where the harness lives
(``benchmarks/`` in the source checkout, not in the package)."""

import importlib
import os
import subprocess
import sys

import pytest

import benchmarks as bench
from benchmarks import _report, _run, _step
from benchmarks._measure import parse_shape, summarize
from benchmarks._worker_io import TAG, run_worker, worker_env
from jtricks.cli import main as cli_main

cli_bench = importlib.import_module("jtricks.cli._bench")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
META = dict(command="jtricks bench", commit="abc", quick=False, date="d", load=[1.0, 1.0],
            wall_s=1.0)


def _step_row(shape="1024 x 1K", leaves=1024, size=1024, **ms):
    ms = {"optax_tree": 10.0, "jtricks_tree": 9.0, "optax_ravel": 2.0, "jtricks_flat": 1.0,
          "jtricks_flatten": 3.0, "optax_flatten": 3.5, **ms}
    return dict(shape=shape, leaves=leaves, size=size, ms=ms,
                spread={k: [v, v] for k, v in ms.items()},
                compile_s={k: 1.0 for k in ms if not k.startswith("torch")}, skipped=[],
                compile_limit_s={}, timed_out=None)


def _data():
    model = dict(model="resnet", description="ResNet", leaves=263, flax_leaves=263,
                 torch_leaves=263, params=1000, ms=dict(grad=5.0, flax=8.0, jtricks=7.0),
                 spread=dict(grad=[5, 5], flax=[8, 8], jtricks=[7, 7]),
                 compile_s=dict(grad=2.0, flax=4.0, jtricks=3.0))
    cold_runs = dict(flax=[dict(seconds=10.0, epoch=3)], fit=[dict(seconds=8.0, epoch=3)],
                     cli=[dict(epoch=30, val_accuracy=0.95)])
    return {
        "machine": {"cpu": "x", "devices": "cpu:cpu"},
        "optimizer": dict(rows=[_step_row()], rounds=3, meta=META),
        "models": dict(rows=[model], rounds=3, meta=META),
        "cold": dict(target=0.97, max_epochs=30, runs={"mlp": cold_runs}, rounds=1,
                     throughput={"mlp": {"flax": [1000.0, [900, 1100]],
                                         "fit": [2000.0, [1900, 2100]]}}, meta=META),
        "sweep": dict(k=16, epochs=5, features=[256, 128, 10], member_steps=3120, batch=32,
                      whole_s=dict(sweep=[2.0], flax_seq=[20.0], torch_seq=[6.0]),
                      steps_per_s=dict(sweep=[900.0], shared=[1000.0], optax_vmap=[800.0]),
                      rounds=1, meta=META),
    }


def test_quick_run_writes_the_report(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    assert bench.main(["--quick", "--only", "optimizer", "--out", str(out)]) == 0
    text = out.read_text()
    assert "`jtricks bench --quick --only optimizer" in text
    assert "| 32 x 128 | " in text and "## 1. Optimizer step" in text
    for column in ("optax, tree", "jtricks, tree", "optax on `ravel` buffers", "jtricks `flatten`",
                   "optax `flatten`"):
        assert column in text
    assert "## models: not run" in text and "## Machine" in text
    data = _report.read_data(str(out))
    assert set(data["optimizer"]["rows"][0]["ms"]) >= {"optax_tree", "jtricks_tree"}


def test_only_reruns_one_table_and_keeps_the_others(tmp_path, monkeypatch):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(_report.format_report(_data()))
    fresh = dict(rows=[_step_row(jtricks_tree=20.0)], rounds=3)
    monkeypatch.setattr(_run, "RUNNERS", dict(_run.RUNNERS, optimizer=lambda args, r: fresh))
    assert bench.main(["--only", "optimizer", "--out", str(out)]) == 0
    data = _report.read_data(str(out))
    assert data["optimizer"]["rows"][0]["ms"]["jtricks_tree"] == 20.0
    assert data["optimizer"]["meta"]["command"] == "jtricks bench --only optimizer --out " + str(out)
    assert data["sweep"] == _data()["sweep"] and data["models"] == _data()["models"]


def test_the_targets_are_computed_from_the_figures():
    text = _report.format_report(_data())
    assert "never slower than optax on any tree and path" in text
    assert "`flatten` vs `optax.flatten`): met (worst 0.90x, jtricks, tree on 1024 x 1K)" in text
    assert "resnet: step <= 1.0x: met (0.88x)" in text
    assert "resnet: compile <= 0.5x: **not met** (0.75x)" in text
    assert "mlp: jtricks `fit` no slower than the flax + optax loop: met (8.0 s vs 10.0 s)" in text
    assert "mlp: `jtricks train` no slower than the flax + optax loop: **not met** (not reached)" \
        in text
    assert "compiled throughput >= 1.5x the flax + optax loop: met (2.00x)" in text
    assert "at least 4x faster than 16 sequential flax + optax runs (compile included): met " \
           "(10.00x)" in text
    assert "16 sequential PyTorch runs (compile included): **not met** (3.00x)" in text
    assert "sharing one compile: **not met** (0.90x)" in text
    assert "sweep, no validation (less work, reported): 1.12x" in text


def test_the_warm_cache_run_is_reported_without_a_target():
    data = _data()
    data["cold"]["runs"]["mlp"]["cli_warm"] = [dict(seconds=3.0, epoch=3)]
    text = _report.format_report(data)
    assert "| mlp | `jtricks train`, warm cache (reported) | 3.0 (3.0-3.0) | 3 | 0.30 | — |" \
        in text
    assert not any("warm" in line for line in text.splitlines() if line.startswith("- mlp"))


def test_sweep_targets_at_each_k_against_the_like_for_like_hand_written_sweep():
    data = _data()
    by_k = {"8": dict(sweep=[1000.0], shared=[900.0], optax_vmap_val=[950.0],
                      optax_vmap=[1100.0]),
            "16": dict(sweep=[900.0], shared=[1000.0], optax_vmap_val=[800.0],
                       optax_vmap=[1000.0])}
    data["sweep"].update(steps_per_s=by_k["16"], steps_per_s_by_k=by_k, steady_rounds=4)
    text = _report.format_report(data)
    assert "| 8 | hand-written optax + `vmap` sweep, validated every epoch | 950 " in text
    assert "- K = 8: member-step throughput >= 1.0x sequential runs sharing one compile: met " \
           "(1.11x)" in text
    assert "- K = 8: member-step throughput >= 1.0x a hand-written optax + `vmap` sweep doing " \
           "the same work: met (1.05x)" in text
    assert "- K = 8: against hand-written optax + `vmap` sweep, no validation (less work, " \
           "reported): 0.91x" in text
    assert "- K = 16: member-step throughput >= 1.0x sequential runs sharing one compile: " \
           "**not met** (0.90x)" in text
    assert "Once compiled (4 rounds;" in text
    assert "a key per member" not in "".join(line for line in text.splitlines()
                                              if line.startswith("- K"))


def test_a_key_per_member_is_compared_with_its_own_like_for_like_sweep_and_its_cost_marked():
    data = _data()
    by_k = {"32": dict(sweep=[1000.0], sweep_keys=[800.0], shared=[850.0],
                       optax_vmap_val=[900.0], optax_vmap_val_keys=[700.0],
                       optax_vmap=[1100.0]),
            "8": dict(sweep=[1000.0], sweep_keys=[950.0], shared=[900.0],
                      optax_vmap_val=[900.0], optax_vmap_val_keys=[1000.0])}
    data["sweep"].update(steps_per_s=by_k["32"], steps_per_s_by_k=by_k)
    text = _report.format_report(data)
    assert "| 32 | `jtricks.sweep.train`, a key per member | 800 (800-800) | 0.80 |" in text
    assert "- K = 32, a key per member: member-step throughput >= 1.0x sequential runs sharing " \
           "one compile: **not met** (0.94x)" in text
    assert "- K = 32, a key per member: member-step throughput >= 1.0x a hand-written optax + " \
           "`vmap` sweep doing the same work: met (1.14x)" in text
    assert "- K = 32: a key per member costs <= 10% of a step (`jtricks.sweep.train` with one " \
           "key against a key each): **not met** (+25%)" in text
    assert "- K = 8: a key per member costs <= 10% of a step (`jtricks.sweep.train` with one " \
           "key against a key each): met (+5%)" in text
    assert "- K = 8, a key per member: member-step throughput >= 1.0x a hand-written optax + " \
           "`vmap` sweep doing the same work: **not met** (0.95x)" in text


def test_optimizer_targets_mark_a_missing_program_and_the_4096_compile():
    row = _step_row("4096 x 256", 4096, 256)
    del row["ms"]["optax_tree"], row["compile_s"]["jtricks_tree"]
    row["compile_limit_s"] = {"jtricks_tree": 120.0}
    lines = "\n".join(_report.optimizer_targets([row, _step_row("1 x 8M", 1, 8 << 20)]))
    assert "not measured: jtricks, tree on 4096 x 256" in lines
    assert "compile at 4096 x 256 (jtricks, tree) <= 10 s: **not met** (> 120 s)" in lines
    assert "leaves of >= 1M elements (tree path): **not met** (1.11x)" in lines
    slow = _step_row(jtricks_flatten=4.0)  # 4.0 / 3.5: `flatten` compared with optax's flatten
    assert "**not met** (worst 1.14x, jtricks `flatten` on 1024 x 1K)" in "\n".join(
        _report.optimizer_targets([slow]))


def test_a_row_whose_compile_runs_out_of_time_is_run_again_without_it(monkeypatch):
    calls = []

    def fake_isolated(kind, args, timeout):
        calls.append((args, timeout))
        row = _step_row()
        if len(calls) == 1:  # the worker stopped itself while optax compiled: no times yet
            del row["compile_s"]["optax_tree"]
            return dict(row, ms={}, spread={}, timed_out=None, compiling=["optax_tree", 7.1])
        if len(calls) == 2:  # stopped by its own time limit, compiling jtricks' flatten
            del row["compile_s"]["jtricks_flatten"]
            return dict(row, ms={}, spread={}, timed_out=timeout,
                        compiling=["jtricks_flatten", 10.0], ended=50.0)
        return row

    monkeypatch.setattr(_step, "isolated", fake_isolated)
    row = _step.isolated_step_row(1024, 1024, repeats=1, timeout=7.0)
    assert [a[-1] for a, _ in calls] == [
        "--skip=", "--skip=optax_tree", "--skip=optax_tree,jtricks_flatten"]
    assert all("--compile-limit=7.0" in a for a, _ in calls)
    assert all(t == 7.0 * (len(_step.SLOW) + 2) for _, t in calls)
    assert row["compile_limit_s"] == {"optax_tree": 7.1, "jtricks_flatten": 40.0}


def test_a_compile_past_its_limit_ends_the_worker_with_its_row():
    """The real worker: a limit too short for any tree-path compile stops it at the first."""
    cmd = [sys.executable, "-m", "benchmarks._worker", "step", "4", "64", "--repeats=1",
           "--compile-limit=0.001"]
    record, timed_out = run_worker(cmd, timeout=120, env=dict(worker_env(), JAX_PLATFORMS="cpu"))
    assert not timed_out and record is not None
    stuck, ran = record["compiling"]
    assert stuck == _step.SLOW[0] and 0 < ran < 60
    assert record["ms"] == {} and set(record["compile_s"]) == {"jtricks_flat", "optax_ravel"}


def test_a_worker_past_its_time_limit_keeps_what_it_printed():
    script = f"print({TAG!r} + '{{\"flat_ms\": 1.5}}', flush=True); import time; time.sleep(60)"
    record, timed_out = run_worker([sys.executable, "-c", script], timeout=5, heartbeat=1)
    assert timed_out
    assert record == {"flat_ms": 1.5}


def test_a_worker_that_fails_gives_no_record():
    record, timed_out = run_worker([sys.executable, "-c", "raise SystemExit(3)"], timeout=30)
    assert record is None and not timed_out


def test_without_torch_its_columns_are_skipped_with_one_line(monkeypatch, capsys):
    from benchmarks import _torch_models

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(_torch_models, "_warned", [])
    assert _torch_models.torch_or_none() is None
    assert _torch_models.torch_or_none() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'jtricks[bench]'" in err
    assert _step._torch_programs(2, 4) == {}


def test_summarize_gives_the_median_and_quartiles():
    assert summarize([1, 2, 3, 4, 100]) == (3.0, [2.0, 4.0])
    assert summarize([0.002], scale=1e3) == (2.0, [2.0, 2.0])


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
     (["--shapes", "12"], "LEAVESxSIZE"), (["--only", "adam"], "tables are optimizer")],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_the_harness_is_the_checkouts_benchmarks_not_a_jtricks_module():
    assert os.path.dirname(bench.__file__) == os.path.join(ROOT, "benchmarks")
    assert not os.path.exists(os.path.join(ROOT, "jtricks", "bench"))
    assert cli_bench.find_checkout() == ROOT


def test_the_package_does_not_ship_the_benchmarks():
    from setuptools import find_packages

    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        spec = tomllib.load(f)
    found = spec["tool"]["setuptools"]["packages"]["find"]
    shipped = find_packages(ROOT, include=found.get("include", ("*",)),
                            exclude=found.get("exclude", ()))
    assert "jtricks" in shipped and "jtricks.cli" in shipped
    assert not [p for p in shipped if not p.startswith("jtricks")], shipped
    assert "torch==2.13.0" in spec["project"]["optional-dependencies"]["bench"]


def test_jtricks_bench_runs_the_checkouts_benchmarks_with_every_flag(monkeypatch):
    seen = {}
    monkeypatch.setattr(bench, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    assert cli_main(["bench", "--quick", "--only", "sweep"]) == 0
    assert seen["argv"] == ["--quick", "--only", "sweep"]


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
    assert "--quick" in done.stdout and "--only" in done.stdout and "--timeout" in done.stdout
