"""Package-level checks: every public package's ``__all__`` is complete and importable."""

import doctest
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys

import pytest

import jtricks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PUBLIC_MODULES = [f"jtricks.{name}" for name in jtricks._SUBMODULES] + [
    "jtricks.optim.schedules",
]
# The command-line packages: their __all__ must resolve, but they keep helpers public.
COMMAND_MODULES = ["jtricks.cli", "jtricks.demo"]


@pytest.mark.parametrize("name", PUBLIC_MODULES + COMMAND_MODULES)
def test_all_is_importable_and_complete(name):
    """The one ``__all__`` test of the package (no test file repeats it for its module)."""
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    dupes = sorted({n for n in module.__all__ if module.__all__.count(n) > 1})
    assert not dupes, f"{name}.__all__ lists names twice: {dupes}"
    missing = [n for n in module.__all__ if getattr(module, n, None) is None]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    if name in COMMAND_MODULES:
        return
    # Every public function or class the module defines (itself or in its
    # private submodules) is listed in __all__; helpers it imports are not.
    def defined_here(obj):
        owner = getattr(obj, "__module__", "") or ""
        return owner == name or owner.startswith(name + ".")

    exposed = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and defined_here(obj)
    }
    if hasattr(module, "__path__"):  # a package's __init__ only re-exports: all of it public
        exposed |= {n for n in vars(module) if not n.startswith("_") and n != "annotations"}
    unlisted = sorted(exposed - set(module.__all__))
    assert not unlisted, f"{name} exposes names not in __all__: {unlisted}"
    # ... and the package's lazy attribute is this module
    if name.count(".") == 1:
        assert getattr(jtricks, name.split(".")[1]) is module


def test_lazy_submodules_resolve():
    for name in jtricks._SUBMODULES:
        assert getattr(jtricks, name).__name__ == f"jtricks.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jtricks.nope  # noqa: B018


def test_every_module_imports():
    for info in pkgutil.walk_packages(jtricks.__path__, "jtricks."):
        if not info.name.endswith(".__main__"):  # these run a command when imported
            importlib.import_module(info.name)


def test_every_docstring_example_is_collected_as_a_doctest():
    """Every docstring with an ``Example:`` section is a doctest that ``python -m pytest``
    collects (so an example cannot silently drop out of the suite)."""
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        options = tomllib.load(f)["tool"]["pytest"]["ini_options"]
    assert "jtricks" in options["testpaths"] and "--doctest-modules" in options["addopts"]
    expected = set()
    for info in pkgutil.walk_packages(jtricks.__path__, "jtricks."):
        if info.name.endswith(".__main__"):
            continue
        module = importlib.import_module(info.name)
        path = os.path.relpath(module.__file__, ROOT).replace(os.sep, "/")
        for test in doctest.DocTestFinder().find(module, info.name):
            if test.docstring and "Example:" in test.docstring:
                assert test.examples, f"{test.name}: an Example: section without >>> lines"
                expected.add(f"{path}::{test.name}")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", "jtricks"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    collected = {line.strip() for line in done.stdout.splitlines() if "::" in line}
    missing = sorted(expected - collected)
    assert not missing, f"docstring examples not collected as doctests: {missing}\n{done.stderr}"
    assert len(expected) >= 120, len(expected)  # 128 when every module's examples ran
