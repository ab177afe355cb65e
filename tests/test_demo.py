"""`jtricks demo --quick` end to end: the report folder exists and its numbers are sane."""

import csv
import json
import os
import subprocess
import sys

import numpy as np

from jtricks.demo import EXPERIMENTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_quick_writes_a_sane_report(tmp_path):
    """One test, so that pytest-xdist runs the demo once."""
    report = _run_demo(tmp_path)
    _check_report_files(report)
    _check_metrics_files(report)
    _check_numbers(report)


def _run_demo(out):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", "jtricks", "demo", "--quick", "--out",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def _check_report_files(report):
    out, proc = report
    assert "report written to" in proc.stderr
    readme = (out / "README.md").read_text()
    results = json.loads((out / "results.json").read_text())
    assert set(results["experiments"]) == set(EXPERIMENTS)
    for name, info in results["experiments"].items():
        png = out / info["figure"]
        assert png.exists() and png.stat().st_size > 10_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({info['figure']})" in readme  # the plot is shown in the summary
        assert info["verdict"] and info["seconds"] > 0
    assert readme.count("**Verdict:**") == len(EXPERIMENTS)
    assert "| experiment | verdict | time (s) |" in readme
    assert str(results["machine"]["cpu_count"]) in readme


def _check_metrics_files(report):
    out, _ = report
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with open(out / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    by_experiment = {}
    for row in rows:
        by_experiment.setdefault(row["experiment"], set()).add(row["config"])
    assert set(by_experiment) == set(EXPERIMENTS)
    assert by_experiment["dropout"] == {f"dropout {r:.1f}" for r in (0, .1, .2, .3, .4, .5)}
    assert {"with batch norm seed 0", "without batch norm seed 0"} <= by_experiment["batch_norm"]
    assert len(by_experiment["optimizers"]) == 9
    for row in rows:  # validation accuracy is a probability wherever it is finite
        value = row.get("val_accuracy")
        if value is not None and np.isfinite(value):
            assert 0.0 <= value <= 1.0


def _check_numbers(report):
    out, _ = report
    numbers = {k: v["numbers"] for k, v in
               json.loads((out / "results.json").read_text())["experiments"].items()}
    opt = numbers["optimizers"]["val_accuracy"]
    assert opt["Adam"] > opt["SGD"]  # at equal steps, with their usual learning rates
    assert opt["Adam"] > 0.9
    assert max(numbers["dropout"]["val_accuracy"].values()) > 0.9
    assert numbers["initializers"]["val_accuracy"]["zeros"] < 0.2  # all-zero weights: chance
    assert numbers["initializers"]["val_accuracy"]["He normal"] > 0.8
    relu = numbers["initializers"]["relu_std_last"]
    assert not relu["N(0, 1)"] < 1e3  # explodes (or overflows to inf)
    assert 0.1 < relu["He normal"] < 10
    assert numbers["clipping"]["diverged"]["no clipping"]
    assert not numbers["clipping"]["diverged"]["clip ‖∇‖ at θ = 1"]
    rare = numbers["imbalance"]["rare_recall"]
    assert rare["class-weighted cross-entropy"] > rare["plain cross-entropy"]
    decay = numbers["weight_decay"]
    assert decay["l2_norm"]["L2 0.05"] < decay["l2_norm"]["none"]
    assert decay["sparsity"]["L1 0.005"] > decay["sparsity"]["none"]
    assert numbers["averaging"]["ensemble"] >= numbers["averaging"]["single"] - 0.01
