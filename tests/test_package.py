"""Package-level checks: every public package's ``__all__`` is complete and importable."""

import importlib
import inspect
import pkgutil

import pytest

import jtricks

PUBLIC_MODULES = [f"jtricks.{name}" for name in jtricks._SUBMODULES] + [
    "jtricks.optim.schedules",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_importable_and_complete(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
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
    unlisted = sorted(exposed - set(module.__all__))
    assert not unlisted, f"{name} exposes names not in __all__: {unlisted}"


def test_lazy_submodules_resolve():
    for name in jtricks._SUBMODULES:
        assert getattr(jtricks, name).__name__ == f"jtricks.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jtricks.nope  # noqa: B018


def test_every_module_imports():
    for info in pkgutil.walk_packages(jtricks.__path__, "jtricks."):
        if not info.name.endswith(".__main__"):  # these run a command when imported
            importlib.import_module(info.name)
