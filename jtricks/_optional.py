"""Optional dependencies: one clear ``ImportError`` naming the extra that installs them.

The core install is ``jax``, ``numpy`` and ``optax``. Everything else comes with an
extra of ``pyproject.toml``: ``demo`` (scikit-learn, matplotlib, orbax-checkpoint,
tqdm), ``bench`` (flax) and ``tensorboard`` (tensorboardX). Code that needs one of
them calls :func:`require` instead of a bare ``import``, so a missing package gives
one line that says what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

# import name -> (distribution name, the extra that installs it)
PACKAGES = {
    "sklearn": ("scikit-learn", "demo"),
    "matplotlib": ("matplotlib", "demo"),
    "orbax.checkpoint": ("orbax-checkpoint", "demo"),
    "tqdm": ("tqdm", "demo"),
    "mnist1d": ("mnist1d", "demo"),
    "flax": ("flax", "bench"),
    "tensorboardX": ("tensorboardX", "tensorboard"),
}


def _package(module: str) -> tuple[str, str]:
    top = module if module in PACKAGES else module.split(".")[0]
    if top not in PACKAGES:
        raise ValueError(f"module={module!r} is not an optional dependency of jtricks; "
                         f"known: {', '.join(PACKAGES)}")
    return PACKAGES[top]


def install_hint(modules, who: str, *, extra: str | None = None) -> str:
    """``"<who> needs scikit-learn, tqdm: pip install 'jtricks[demo]'"`` for ``modules``.

    Args:
      modules: import names (see :data:`PACKAGES`).
      who: what needs them.
      extra: the extra to name (default: the extras of the packages, e.g. ``bench``
        for flax, ``demo`` for scikit-learn); ``bench`` includes ``demo``.
    """
    names = [_package(m) for m in modules]
    dists = ", ".join(dict.fromkeys(d for d, _ in names))
    extras = extra or ",".join(dict.fromkeys(e for _, e in names))
    return f"{who} needs {dists}: pip install 'jtricks[{extras}]'"


def missing(modules) -> list[str]:
    """The import names among ``modules`` that cannot be imported (without importing them).

    A module blocked with ``sys.modules[name] = None`` counts as missing, as ``import``
    would fail on it.
    """
    out = []
    for module in modules:
        _package(module)
        parts = module.split(".")
        if any(sys.modules.get(".".join(parts[:i]), ...) is None for i in range(1, len(parts) + 1)):
            out.append(module)  # blocked (an already imported submodule would hide it)
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a missing parent package, or a blocked module
            found = False
        if not found:
            out.append(module)
    return out


def require(module: str, who: str) -> ModuleType:
    """Imports the optional ``module`` (e.g. ``"sklearn.datasets"``) and returns it.

    Args:
      module: the import name; its top-level package must be one of :data:`PACKAGES`.
      who: what needs it, for the message (e.g. ``"jtricks.data.load_digits"``).

    Raises:
      ImportError: ``"<who> needs scikit-learn: pip install 'jtricks[demo]'"`` when the
        package is not installed.

    Example:
      >>> tqdm = require("tqdm.auto", "my_loop")
      >>> install_hint(["sklearn", "tqdm"], "jtricks demo")
      "jtricks demo needs scikit-learn, tqdm: pip install 'jtricks[demo]'"
    """
    _package(module)
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(install_hint([module], who)) from err


__all__ = ["PACKAGES", "install_hint", "missing", "require"]
