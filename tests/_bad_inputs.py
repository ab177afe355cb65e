"""The bad-input sweep: one table of bad arguments across the public API.

Each package's cases live in ``tests/test_bad_inputs_<package>.py`` as a list
``CASES`` built with :func:`bad` (a keyword argument given a bad value) or
:class:`Bad` (any call, e.g. a misuse at ``update`` time). Every case asserts
the exception type and that the message names the argument and shows the value
as the user gave it. A case that jtricks does not yet answer clearly carries a
``remaining`` reason: it runs as a strict ``xfail`` (so it fails loudly once
fixed) and counts against the clear-error rate.

``python tests/_bad_inputs.py`` prints the clear-error rate per package;
``tests/test_bad_inputs_summary.py`` requires at least 375 cases and 98%.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import pytest

from jtricks._validate import show


@dataclasses.dataclass(frozen=True)
class Bad:
    """One bad input.

    Attributes:
      package: the public package it belongs to (``optim``, ``schedules``, ``init``,
        ``nn``, ``data``, ``losses``, ``regularize``, ``diagnose``, ``train``,
        ``sweep``, ``parallel``).
      label: what is called, as a user would write it (the test id).
      call: runs the bad call.
      arg: the argument's name, which the message must contain.
      shown: the value's text, which the message must contain.
      exc: the exception type expected.
      remaining: why this case does not give a clear error yet (``None`` if it does).
    """

    package: str
    label: str
    call: Callable[[], Any]
    arg: str
    shown: str
    exc: type[BaseException] = ValueError
    remaining: str | None = None


def _short(value: Any) -> str:
    """A value as a short, deterministic part of a test id (no addresses, no newlines)."""
    if isinstance(value, type) or (callable(value) and hasattr(value, "__name__")):
        return getattr(value, "__name__", repr(value))
    if type(value) in (tuple, list):
        one = len(value) == 1 and type(value) is tuple
        inner = ", ".join(map(_short, value)) + ("," if one else "")
        return f"({inner})" if type(value) is tuple else f"[{inner}]"
    if not isinstance(value, (bool, int, float, complex, str, bytes, type(None), dict,
                              np.ndarray, np.generic, jax.Array)):
        return type(value).__name__  # a Mesh, a GradientTransformation, ...
    text = show(value)
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and np.ndim(value) == 0:
        text = f"{type(value).__name__}({text})"  # jnp.array(2.5) apart from 2.5
    if "\n" in text or " at 0x" in text or len(text) > 40:
        shape = getattr(value, "shape", None)
        return f"array{tuple(shape)}" if shape is not None else type(value).__name__
    return text


def bad(package: str, fn: Callable, arg: str, value: Any, *args, exc=ValueError,
        shown: str | None = None, remaining: str | None = None, **kwargs) -> Bad:
    """A case calling ``fn(*args, **kwargs, arg=value)``.

    Example: ``bad("optim", optim.adam, "learning_rate", float("inf"))``.
    """
    def call():
        return fn(*args, **{**kwargs, arg: value})

    name = getattr(fn, "__name__", repr(fn))
    pos = ", ".join([*map(_short, args), *(f"{k}={_short(v)}" for k, v in kwargs.items())])
    label = f"{name}({pos + ', ' if pos else ''}{arg}={_short(value)})"
    return Bad(package, label, call, arg, show(value) if shown is None else shown, exc, remaining)


def on(fn: Callable, *args, given: str) -> Callable:
    """``fn`` with leading arguments bound, named ``fn[given]`` in case labels.

    For arguments (arrays, keys, parameter trees) whose ``repr`` would make an
    unreadable test id: ``bad("nn", on(nn.dropout, KEY, X, given="key, x"),
    "rate", 1.5, training=True)`` is labelled ``dropout[key, x](training=True, rate=1.5)``.
    """
    def bound(*more, **kwargs):
        return fn(*args, *more, **kwargs)

    bound.__name__ = f"{getattr(fn, '__name__', repr(fn))}[{given}]"
    return bound


def clear_error(case: Bad) -> None:
    """Asserts that ``case`` raises ``case.exc`` naming the argument and the value."""
    with pytest.raises(case.exc) as info:
        case.call()
    message = str(info.value)
    assert case.arg in message, f"{case.label}: message {message!r} does not name {case.arg!r}"
    assert case.shown in message, f"{case.label}: message {message!r} does not show {case.shown!r}"


def as_params(cases: list[Bad]) -> list:
    """``pytest.param``s of ``cases``, the remaining ones as strict xfails."""
    return [pytest.param(c, id=c.label,
                         marks=[pytest.mark.xfail(strict=True, reason=c.remaining)]
                         if c.remaining else [])
            for c in cases]


def all_cases() -> list[Bad]:
    """Every case of every ``tests/test_bad_inputs_*.py`` module."""
    cases: list[Bad] = []
    here = Path(__file__).parent
    if str(here) not in sys.path:  # run as a script: the test modules import `_bad_inputs`
        sys.path.insert(0, str(here))
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if info.name.startswith("test_bad_inputs_") and info.name != "test_bad_inputs_summary":
            cases += importlib.import_module(info.name).CASES
    return cases


def rates(cases: list[Bad]) -> dict[str, tuple[int, int]]:
    """``{package: (clear, total)}`` over ``cases`` (by their ``remaining`` marks)."""
    out: dict[str, tuple[int, int]] = {}
    for c in cases:
        clear, total = out.get(c.package, (0, 0))
        out[c.package] = (clear + (c.remaining is None), total + 1)
    return out


def main() -> None:
    cases = all_cases()
    table = rates(cases)
    print(f"{'package':<12} {'clear':>6} {'cases':>6} {'rate':>7}")
    for pkg, (clear, total) in sorted(table.items()):
        print(f"{pkg:<12} {clear:>6} {total:>6} {clear / total:>7.1%}")
    clear = sum(c for c, _ in table.values())
    print(f"{'all':<12} {clear:>6} {len(cases):>6} {clear / max(len(cases), 1):>7.1%}")
    for c in cases:
        if c.remaining:
            print(f"remaining: [{c.package}] {c.label}: {c.remaining}")


if __name__ == "__main__":
    main()
