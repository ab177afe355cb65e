"""Construction-time checks shared by every module.

Each check raises ``ValueError`` (or ``TypeError``) naming the argument and the
value received, e.g. ``learning_rate=-0.1 must be >= 0``. Checks that need a
concrete value are skipped for tracers and for schedules (callables), so
hyperparameters may be traced (``jit`` arguments, ``vmap`` sweeps).
"""

from __future__ import annotations

from typing import Any, Literal, overload

import jax
import numpy as np


def concrete_value(value: Any):
    """Returns ``value`` as a NumPy scalar/array, or ``None`` if it is not concrete.

    Tracers, callables (schedules) and ``None`` are not concrete.
    """
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        return None


def _fmt(value) -> str:
    arr = np.asarray(value)
    return repr(arr.item()) if arr.ndim == 0 else f"array{arr.shape} with values {arr.tolist()}"


def check_number(name: str, value: Any, *, lo=None, hi=None, lo_open=False, hi_open=False,
                 allow_none=False, finite=False) -> None:
    """Checks ``lo <= value <= hi`` (``<`` where open) for every element, and not NaN.

    Args:
      name: the argument's name, used in the message.
      value: a Python number, array, tracer or schedule (the last two are skipped).
      lo, hi: bounds; ``None`` for unbounded.
      lo_open, hi_open: whether the bound itself is excluded.
      allow_none: whether ``None`` is accepted.
      finite: also reject ``inf`` and ``-inf``.

    Raises:
      ValueError: if a concrete value is NaN, infinite (with ``finite``) or outside
        the bounds.
      TypeError: if the value is not numeric.
    """
    if value is None:
        if allow_none:
            return
        raise TypeError(f"{name}=None must be a number")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}={value!r} must be a number, got {type(value).__name__}")
    arr = concrete_value(value)
    if arr is None:
        return
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name}={value!r} must be a number, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name}={_fmt(arr)} must not be NaN")
    if finite and np.isinf(arr).any():
        raise ValueError(f"{name}={_fmt(arr)} must be finite")
    if lo is not None:
        bad = arr <= lo if lo_open else arr < lo
        if bad.any():
            raise ValueError(f"{name}={_fmt(arr)} must be {'>' if lo_open else '>='} {lo}")
    if hi is not None:
        bad = arr >= hi if hi_open else arr > hi
        if bad.any():
            raise ValueError(f"{name}={_fmt(arr)} must be {'<' if hi_open else '<='} {hi}")


def check_non_negative(name: str, value: Any, **kw) -> None:
    """``value >= 0``."""
    check_number(name, value, lo=0, **kw)


def check_positive(name: str, value: Any, **kw) -> None:
    """``value > 0``."""
    check_number(name, value, lo=0, lo_open=True, **kw)


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False, **kw) -> None:
    """``0 <= value < 1`` (``<= 1`` with ``closed_right``), e.g. decay rates and betas."""
    check_number(name, value, lo=0, hi=1, hi_open=not closed_right, **kw)


@overload
def check_int(name: str, value: Any, *, lo: int | None = None,
              allow_none: Literal[False] = False) -> int: ...
@overload
def check_int(name: str, value: Any, *, lo: int | None = None,
              allow_none: bool = ...) -> int | None: ...
def check_int(name: str, value: Any, *, lo: int | None = None, allow_none: bool = False) -> int | None:
    """Checks that ``value`` is a Python/NumPy integer (not bool) and ``>= lo``.

    Returns:
      The value as a Python ``int`` (or ``None`` where allowed).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}={value!r} must be an integer, got {type(value).__name__}")
    if lo is not None and value < lo:
        raise ValueError(f"{name}={value!r} must be >= {lo}")
    return int(value)


def check_choice(name: str, value: Any, choices) -> None:
    """Checks that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}")


__all__ = [
    "check_choice",
    "check_int",
    "check_non_negative",
    "check_number",
    "check_positive",
    "check_unit_interval",
    "concrete_value",
]

