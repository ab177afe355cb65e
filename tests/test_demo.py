"""`jtricks demo` end to end: every experiment at a test-only size, one test each (the
report, the metrics, verdicts built from the statistics), and one at --quick size from the
command line (seed agreement)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jtricks.demo import EXPERIMENTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The experiments moved off the saturated digits, which must say to which regime.
REGIME = {"dropout", "overfitting", "schedules", "averaging", "augmentation", "architecture",
          "evaluation"}
# The configurations every experiment writes metrics rows for.
CONFIGS = {"dropout": {f"dropout {r:.1f}" for r in (0, .1, .3, .5, .7)},
           "batch_norm": {"with batch norm", "without batch norm"},
           "normalization": 8,  # 4 normalisations at batch 64 and at batch 4
           "imbalance": 4, "initializers": 14,  # 7 initializers × ReLU, tanh
           "optimizers": 9, "gradients": 4, "architecture": 3,
           "evaluation": 16}  # 4 learning rates × 4 weight decays


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_experiment_at_smoke_size(name, tmp_path):
    """Each experiment at the test-only size (two epochs; compilation dominates), in this
    process, one test each so that xdist spreads them: its plot, table, metrics and a
    verdict built from the statistics."""
    from jtricks.demo import SMOKE, run_demo

    results = run_demo(str(tmp_path), quick=SMOKE, only=[name], progress=False)
    assert [r.name for r in results] == [name] and results[0].table[1]  # a table with rows
    _check_report_files(tmp_path, [name])
    _check_metrics_files(tmp_path, name)
    _check_numbers(tmp_path, name)
    _check_verdicts(tmp_path, seeds=list(range(8)))


@pytest.mark.slow
def test_demo_cli_quick_and_seed_agreement(tmp_path):
    """One cheap experiment at --quick size, from the command line with --seed 1 and in
    this process with seed 0: its effects must not flip where both are clear."""
    from jtricks.demo import run_demo

    names = ["imbalance"]
    run_demo(str(tmp_path / "seed0"), quick=True, only=names, progress=False)
    _, proc = _run_demo(tmp_path / "seed1", "--only", ",".join(names), "--seed", "1")
    assert "report written to" in proc.stderr
    _check_report_files(tmp_path / "seed1", names)
    _check_verdicts(tmp_path / "seed1", seeds=list(range(8, 16)))
    _check_seed_agreement(tmp_path / "seed0", tmp_path / "seed1", names)


def _run_demo(out, *args):
    cache = out.parent / "xla"
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", JTRICKS_COMPILE_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-m", "jtricks", "demo", "--quick", "--out",
                           str(out), "--quiet", "--no-compile-cache", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not cache.exists() or not os.listdir(cache)  # --no-compile-cache: nothing written
    return out, proc


def _check_report_files(out, names):
    readme = (out / "README.md").read_text()
    results = json.loads((out / "results.json").read_text())
    assert list(results["experiments"]) == list(names)
    for name, info in results["experiments"].items():
        png = out / info["figure"]
        assert png.exists() and png.stat().st_size > 10_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({info['figure']})" in readme  # the plot is shown in the summary
        assert info["verdict"] and info["seconds"] > 0
    assert readme.count("**Verdict:**") == len(names)
    assert readme.count("**Setup:**") == len(names)
    assert "| experiment | verdict | effects: mean [95% CI] | seeds | time (s) |" in readme
    assert str(results["machine"]["cpu_count"]) in readme
    assert readme.count("**Setup:** Regime: ") == len(REGIME.intersection(names))


def _check_metrics_files(out, name):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with open(out / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert rows and {row["experiment"] for row in rows} == {name}
    configs = {row["config"] for row in rows}
    expected = CONFIGS.get(name)
    assert expected is None or configs == expected or len(configs) == expected, configs
    if name != "averaging":  # averaging names seed and member in config
        assert len({row["seed"] for row in rows}) >= 8  # every row carries its run's seed
    for row in rows:  # accuracies are probabilities wherever they are finite
        for key in ("val_accuracy", "avg_val_accuracy", "swa_val_accuracy"):
            value = row.get(key)
            if value is not None and np.isfinite(value):
                assert 0.0 <= value <= 1.0


def _check_numbers(out, name):
    """What holds after two epochs already (the effects themselves need the real sizes)."""
    numbers = json.loads((out / "results.json").read_text())["experiments"][name]["numbers"]
    if name == "initializers":
        assert numbers["val_accuracy"]["ReLU: zeros"] < 0.2  # all-zero weights: chance
        assert numbers["val_accuracy"]["ReLU: He normal"] > 0.5
        relu = numbers["relu_std_last"]
        assert not relu["N(0, 1)"] < 1e3  # explodes (or overflows to inf)
        assert 0.1 < relu["He normal"] < 10
    elif name == "clipping":
        assert numbers["diverged"]["clip ‖∇‖ at θ = 1"] == 0
    elif name == "imbalance":
        rare = numbers["rare_recall"]
        assert rare["class-weighted cross-entropy"] > rare["plain cross-entropy"]
    elif name == "weight_decay":
        assert numbers["l2_norm"]["L2 0.05"] < numbers["l2_norm"]["none"]
    elif name == "averaging":
        assert all(0.1 < numbers[k] < 1 for k in ("single", "ema", "swa", "ensemble"))
    elif name == "gradients":  # measured at initialisation: no training needed
        ratio, total = numbers["log_ratio"], numbers["log_total"]
        assert ratio["sigmoid, N(0, 1/n)"] < -5 < ratio["ReLU, He N(0, 2/n)"]  # vanishes
        assert total["ReLU, N(0, 1)"] > total["ReLU, He N(0, 2/n)"] + 5  # explodes
        assert numbers["diverged"]["ReLU, N(0, 1)"] > 0 == numbers["diverged"]["ReLU, He N(0, 2/n)"]
    elif name == "architecture":  # the plain stack is slower from the first epochs
        loss = numbers["train_loss"]
        assert loss["plain, 20 layers"] > loss["residual, 20 layers"]
    elif name == "evaluation":  # choosing on the test set can only raise its score
        assert numbers["best_test"] >= numbers["test"] and 0.1 < numbers["val"] < 1
        assert abs(sum(numbers["chosen"].values()) - 1) < 1e-6


def _check_verdicts(out, seeds):
    """Every verdict is built from its effects: the headline follows from the outcomes,
    and every effect's numbers (mean and 95% interval) appear in the verdict and the
    README; every experiment ran its 8 seeds."""
    from jtricks.demo._stats import Effect, headline, outcome_of

    readme = (out / "README.md").read_text()
    results = json.loads((out / "results.json").read_text())["experiments"]
    assert readme.count("**Statistics:**") == len(results)
    assert "paired Student t over seeds" in readme
    for name, info in results.items():
        assert info["seeds"] == seeds, name
        effects = [Effect(**e) for e in info["effects"]]
        assert effects, name
        assert info["verdict"].startswith(headline(effects) + ": "), name
        for e in effects:
            assert e.n >= 8 - e.dropped and e.low <= e.mean <= e.high, (name, e)
            assert e.outcome == outcome_of(e.low, e.high, e.claim), (name, e)
            assert e.interval() in info["verdict"], (name, e.interval(), info["verdict"])
            assert e.interval() in readme, (name, e)


def _check_seed_agreement(first_dir, second_dir, names):
    """Another --seed (another split, disjoint training seeds) must not flip an effect
    whose interval is clear of zero in both runs; at least two effects are clear in
    both, so the check cannot pass vacuously."""
    from jtricks.demo._stats import NOT_SHOWN

    first = json.loads((first_dir / "results.json").read_text())["experiments"]
    second = json.loads((second_dir / "results.json").read_text())
    assert second["seed"] == 1
    compared = 0
    for name in names:
        one, two = first[name], second["experiments"][name]
        assert set(one["seeds"]).isdisjoint(two["seeds"]) and len(two["seeds"]) >= 8
        assert one["effects"] != two["effects"]  # other seeds, other numbers
        for a, b in zip(one["effects"], two["effects"]):
            assert a["label"] == b["label"]
            if NOT_SHOWN not in (a["outcome"], b["outcome"]):
                assert a["outcome"] == b["outcome"], (name, a, b)
                assert np.sign(a["mean"]) == np.sign(b["mean"])
                compared += 1
    assert compared >= 2


# --- the statistics helper (jtricks/demo/_stats.py) ---------------------------------


def test_t_quantiles_match_the_table_and_the_expansion():
    from jtricks.demo._stats import t975

    assert t975(1) == 12.7062 and t975(7) == 2.3646 and t975(30) == 2.0423
    assert abs(t975(40) - 2.0211) < 2e-4 and abs(t975(120) - 1.9799) < 2e-4
    assert all(t975(d) > t975(d + 1) for d in range(1, 60))  # decreasing toward 1.96


def test_paired_interval_by_hand():
    from jtricks.demo._stats import SHOWN, paired

    # differences 1, 2, 3, 4: mean 2.5, sd = sqrt(5/3), t(0.975, 3) = 3.1824
    e = paired("a - b", [2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0], claim="greater")
    half = 3.1824 * np.sqrt(5 / 3) / 2
    assert e.n == 4 and e.mean == 2.5
    assert np.isclose(e.low, 2.5 - half) and np.isclose(e.high, 2.5 + half)
    assert e.outcome == SHOWN
    assert "+2.500 [+0.446, +4.554]" in e.text()


def test_the_three_verdict_outcomes():
    from jtricks.demo._stats import CONTRADICTED, NOT_SHOWN, SHOWN, headline, paired, verdict

    base = np.array([0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97])
    noise = np.array([0.01, -0.01, 0.02, -0.02, 0.005, -0.005, 0.015, -0.015])
    up = paired("up", base + 0.05 + noise, base, claim="greater")
    flat = paired("flat", base + noise, base, claim="greater")
    down = paired("down", base - 0.05 + noise, base, claim="greater")
    assert (up.outcome, flat.outcome, down.outcome) == (SHOWN, NOT_SHOWN, CONTRADICTED)
    assert up.low > 0 and flat.low < 0 < flat.high and down.high < 0
    # the claimed direction flips the reading
    assert paired("less", base - 0.05 + noise, base, claim="less").outcome == SHOWN
    assert paired("less", base + 0.05 + noise, base, claim="less").outcome == CONTRADICTED
    assert headline([up]) == "Shown" and headline([flat]) == "Not shown on this data"
    assert headline([down]) == "Contradicted" and headline([up, flat]) == "Partly shown"
    assert headline([up, down]) == "Mixed"
    text = verdict([up, flat])
    assert text.startswith("Partly shown: ") and up.interval() in text and flat.interval() in text
    # non-finite seeds are dropped and counted; fewer than two: nothing is shown
    e = paired("nan", [1.0, np.nan, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])
    assert e.n == 3 and e.dropped == 1
    assert paired("one", [1.0], [0.0]).outcome == NOT_SHOWN
