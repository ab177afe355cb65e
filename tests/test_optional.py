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
    from jtricks.bench import _train

    monkeypatch.setitem(sys.modules, "flax", None)
    monkeypatch.setitem(sys.modules, "flax.linen", None)
    with pytest.raises(ImportError, match=r"needs flax: pip install 'jtricks\[bench\]'$"):
        _train._flax_mlp((4, 2), 0.0)


def test_docstring_examples_run():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(_optional, globs=vars(_optional).copy()):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 2
