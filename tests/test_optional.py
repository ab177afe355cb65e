"""Optional packages: a missing one gives one ImportError naming the extra to install."""

import doctest
import sys

import pytest

from jtricks import _optional


def test_require_returns_the_module_or_names_the_extra(monkeypatch):
    assert _optional.require("tqdm.auto", "me").__name__ == "tqdm.auto"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"^my plot needs matplotlib: "
                                          r"pip install 'jtricks\[demo\]'$"):
        _optional.require("matplotlib", "my plot")
    with pytest.raises(ValueError, match="not an optional dependency"):
        _optional.require("numpy", "me")


def test_missing_finds_blocked_packages_without_importing(monkeypatch):
    assert _optional.missing(["tqdm", "sklearn"]) == []
    monkeypatch.setitem(sys.modules, "orbax", None)
    monkeypatch.setitem(sys.modules, "flax", None)
    assert _optional.missing(["tqdm", "orbax.checkpoint", "flax"]) == ["orbax.checkpoint",
                                                                       "flax"]
    assert _optional.install_hint(["orbax.checkpoint", "flax"], "x") == (
        "x needs orbax-checkpoint, flax: pip install 'jtricks[demo,bench]'")
    assert _optional.install_hint(["flax", "sklearn"], "x", extra="bench") == (
        "x needs flax, scikit-learn: pip install 'jtricks[bench]'")


def test_run_demo_names_the_demo_extra_before_running(monkeypatch, tmp_path):
    from jtricks.demo import run_demo

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"^jtricks.demo.run_demo needs matplotlib: "
                                          r"pip install 'jtricks\[demo\]'$"):
        run_demo(str(tmp_path / "report"))
    assert not (tmp_path / "report").exists()


def test_bench_flax_model_names_the_bench_extra(monkeypatch):
    from benchmarks import _jax_models

    monkeypatch.setitem(sys.modules, "flax", None)
    monkeypatch.setitem(sys.modules, "flax.linen", None)
    with pytest.raises(ImportError, match=r"needs flax: pip install 'jtricks\[bench\]'$"):
        _jax_models.flax_mlp((4, 2), 0.0)


def test_docstring_examples_run():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(_optional, globs=vars(_optional).copy()):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 2


_CORE_ONLY = r'''
import sys
for name in ("tqdm", "orbax", "matplotlib", "sklearn", "flax", "chex", "keras", "pandas"):
    sys.modules[name] = None      # the core install: jax, numpy, optax only
import jax, jax.numpy as jnp
import jtricks
from jtricks.train import TrainState, classifier_eval, classifier_loss, fit
model = jtricks.nn.mlp([16, 2], dropout=0.1)
params, model_state = model.init(jax.random.key(0), (4,))
tx = jtricks.optim.adam(1e-2)
state = TrainState.create(params=params, tx=tx, key=jax.random.key(1), model_state=model_state)
x = jax.random.normal(jax.random.key(2), (64, 4))
y = (x[:, 0] > 0).astype(jnp.int32)
kw = dict(loss_fn=classifier_loss(model), tx=tx, epochs=3, batch_size=16)
result = fit(state, (x, y), val_data=(x, y), eval_fn=classifier_eval(model), **kw)
print("trained", len(result.history), result.history[-1]["val_accuracy"] > 0.7)
for extra in (dict(progress=True), dict(checkpoint_dir="ckpt")):
    try:
        fit(state, (x, y), **kw, **extra)
    except ImportError as e:
        print("refused:", e)
'''


def test_fit_trains_with_the_core_install_only(tmp_path):
    """Without tqdm, orbax, matplotlib, scikit-learn (and the test extras) fit trains;
    asking for a progress bar or checkpoints names the extra that adds them."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _CORE_ONLY], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "trained 3 True"
    assert lines[1] == ("refused: fit(progress=True) needs tqdm: pip install 'jtricks[demo]'")
    assert lines[2] == ("refused: jtricks.train.Checkpointer needs orbax-checkpoint: "
                        "pip install 'jtricks[demo]'")
    assert not (tmp_path / "ckpt").exists()
