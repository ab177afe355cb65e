"""Construction-time checks shared by every module: the one validation layer.

Each check raises ``ValueError`` (a value out of range) or ``TypeError`` (a value
of the wrong kind) naming the argument and the value as the user gave it, e.g.
``learning_rate=inf must be finite`` or ``nesterov='no' must be a bool``.
Checks that need a concrete value are skipped for tracers and for schedules
(callables), so hyperparameters may be traced (``jit`` arguments, ``vmap``
sweeps).

What every numeric check enforces unless told otherwise:

* a real number: not a string, ``None``, a complex number or a ``bool``
  (``True`` is a flag, not the number 1);
* a scalar: a list or an array of several values is refused (``scalar=False``
  admits arrays, checked element-wise);
* not NaN, and finite (``finite=False`` admits ``±inf`` where it means
  something, e.g. "no limit");
* inside the bounds.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import jax
import jax.core
import jax.numpy as jnp
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


def show(value: Any) -> str:
    """The value as the user gave it, for an error message.

    Python objects keep their ``repr`` (``-1``, ``inf``, ``'no'``, ``[0.9]``);
    arrays print in their own dtype's shortest form (``jnp.array(-0.1)`` is
    ``-0.1``, not ``-0.10000000149011612``), with their shape when not scalar.
    """
    if isinstance(value, np.generic):
        return str(value)  # np.float32(-0.1) as -0.1
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # inf, -inf, nan: as typed, not float('inf')
    if isinstance(value, (bool, int, float, complex, str, bytes, list, tuple, type(None))):
        return repr(value)
    arr = concrete_value(value)
    if arr is None:
        return repr(value)
    if arr.ndim == 0:
        return str(arr)
    text = np.array2string(arr, separator=", ", threshold=8)
    return f"array{arr.shape} {text}"


def _is_bool(value: Any, arr) -> bool:
    return isinstance(value, (bool, np.bool_)) or (arr is not None and arr.dtype == np.bool_)


def check_number(name: str, value: Any, *, lo=None, hi=None, lo_open=False, hi_open=False,
                 allow_none=False, finite=True, scalar=True) -> None:
    """Checks a real-number hyperparameter: kind, shape, NaN, finiteness, bounds.

    Args:
      name: the argument's name, used in the message.
      value: a Python number, array, tracer or schedule (the last two are skipped).
      lo, hi: bounds; ``None`` for unbounded.
      lo_open, hi_open: whether the bound itself is excluded.
      allow_none: whether ``None`` is accepted.
      finite: reject ``inf`` and ``-inf`` (the default); ``False`` where an
        infinite value means something (e.g. "no limit").
      scalar: require a single value (the default); ``False`` admits arrays.

    Raises:
      ValueError: if a concrete value is NaN, infinite (with ``finite``) or outside
        the bounds.
      TypeError: if the value is not a real number (``None``, a string, a bool,
        a complex number, a non-numeric array) or not a scalar where one is meant.

    Example:
      >>> check_number("learning_rate", float("inf"), lo=0)
      Traceback (most recent call last):
      ...
      ValueError: learning_rate=inf must be finite
    """
    if value is None:
        if allow_none:
            return
        raise TypeError(f"{name}=None must be a number")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}={value!r} must be a number, got {type(value).__name__}")
    if isinstance(value, jax.core.Tracer) or callable(value):
        return
    arr = concrete_value(value)
    if arr is None or _is_bool(value, arr):
        kind = "bool" if arr is not None else type(value).__name__
        raise TypeError(f"{name}={show(value)} must be a number, got {kind}")
    if arr.dtype == object or not jnp.issubdtype(arr.dtype, jnp.number):
        raise TypeError(f"{name}={show(value)} must be a number, got {type(value).__name__}"
                        + (f" of dtype {arr.dtype}" if arr.dtype != object else ""))
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{name}={show(value)} must be a real number, got a complex value")
    if scalar and arr.ndim != 0:
        raise TypeError(f"{name}={show(value)} must be a single number, got shape {arr.shape}")
    as_float = arr.astype(np.float64)
    if np.isnan(as_float).any():
        raise ValueError(f"{name}={show(value)} must not be NaN")
    if finite and np.isinf(as_float).any():
        raise ValueError(f"{name}={show(value)} must be finite")
    if lo is not None:
        bad = as_float <= lo if lo_open else as_float < lo
        if bad.any():
            raise ValueError(f"{name}={show(value)} must be {'>' if lo_open else '>='} {lo}")
    if hi is not None:
        bad = as_float >= hi if hi_open else as_float > hi
        if bad.any():
            raise ValueError(f"{name}={show(value)} must be {'<' if hi_open else '<='} {hi}")


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
def check_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None,
              allow_none: Literal[False] = False) -> int: ...
@overload
def check_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None,
              allow_none: bool = ...) -> int | None: ...
def check_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None,
              allow_none: bool = False) -> int | None:
    """Checks that ``value`` is an integer (not a bool, not ``2.5``) in ``[lo, hi]``.

    Python and NumPy integers are accepted, and so are 0-d integer arrays.

    Returns:
      The value as a Python ``int`` (or ``None`` where allowed).

    Example:
      >>> check_int("patience", 2.5, lo=0)
      Traceback (most recent call last):
      ...
      TypeError: patience=2.5 must be an integer, got float
    """
    if value is None and allow_none:
        return None
    arr = None if isinstance(value, (int, np.integer)) else concrete_value(value)
    integral_array = (arr is not None and arr.ndim == 0 and arr.dtype != np.bool_
                      and jnp.issubdtype(arr.dtype, jnp.integer))
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, (int, np.integer))
                                                     or integral_array):
        raise TypeError(f"{name}={show(value)} must be an integer, got {type(value).__name__}")
    assert value is not None  # refused above
    number = int(value)
    if lo is not None and number < lo:
        raise ValueError(f"{name}={show(value)} must be >= {lo}")
    if hi is not None and number > hi:
        raise ValueError(f"{name}={show(value)} must be <= {hi}")
    return number


def check_bool(name: str, value: Any) -> bool:
    """Checks that a flag is a ``bool`` (``'no'`` and ``1`` are not flags).

    Example:
      >>> check_bool("nesterov", "no")
      Traceback (most recent call last):
      ...
      TypeError: nesterov='no' must be a bool, got str
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={show(value)} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_choice(name: str, value: Any, choices) -> None:
    """Checks that ``value`` is one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:  # unhashable against a set, or an array
        ok = False
    if not ok:
        raise ValueError(f"{name}={show(value)} must be one of {', '.join(map(repr, choices))}")


def check_dtype(name: str, value: Any, *, kind: str = "float", allow_none: bool = True):
    """Checks a dtype argument and returns it as a ``jnp.dtype`` (or ``None``).

    Args:
      name: the argument's name.
      value: anything ``jnp.dtype`` accepts (``jnp.float32``, ``'bfloat16'``, ...).
      kind: ``'float'`` (floating point or complex: state dtypes), ``'number'`` or ``'any'``.
      allow_none: whether ``None`` (meaning "the default") is accepted.

    Raises:
      TypeError: if ``value`` is not a dtype.
      ValueError: if it is a dtype of another kind (e.g. an integer moment dtype).

    Example:
      >>> check_dtype("mu_dtype", "float33")
      Traceback (most recent call last):
      ...
      TypeError: mu_dtype='float33' is not a dtype
    """
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name}=None must be a dtype")
    try:
        dtype = jnp.dtype(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={show(value)} is not a dtype") from None
    if kind == "float" and not jnp.issubdtype(dtype, jnp.inexact):  # complex states too
        raise ValueError(f"{name}={show(value)} must be a floating-point (or complex) dtype, "
                         f"got {dtype}")
    if kind == "number" and not jnp.issubdtype(dtype, jnp.number):
        raise ValueError(f"{name}={show(value)} must be a numeric dtype, got {dtype}")
    return dtype


def check_axis(name: str, axis: Any, ndim: int) -> int:
    """Checks an axis index against ``ndim`` dimensions; returns it non-negative.

    Example:
      >>> check_axis("in_axis", 5, 2)
      Traceback (most recent call last):
      ...
      ValueError: in_axis=5 is out of range for 2 dimensions (must be in [-2, 2))
    """
    axis = check_int(name, axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for {ndim} dimensions "
                         f"(must be in [{-ndim}, {ndim}))")
    return axis % ndim


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """Checks a shape: a sequence of non-negative integers (or one integer).

    Example:
      >>> check_shape("shape", (3, -1))
      Traceback (most recent call last):
      ...
      ValueError: shape=(3, -1) must have non-negative sizes
    """
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{name}={show(shape)} must be a tuple of integers") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{name}={show(shape)} must be a tuple of integers")
    if any(d < 0 for d in dims):
        raise ValueError(f"{name}={show(shape)} must have non-negative sizes")
    return tuple(int(d) for d in dims)


def check_callable(name: str, value: Any, *, allow_none: bool = False) -> None:
    """Checks that ``value`` is callable (a function, a model's ``apply``, ...).

    Example:
      >>> check_callable("fn", "square")
      Traceback (most recent call last):
      ...
      TypeError: fn='square' must be callable, got str
    """
    if value is None and allow_none:
        return
    if not callable(value):
        raise TypeError(f"{name}={show(value)} must be callable, got {type(value).__name__}")


def check_array(name: str, value: Any, *, kind: str = "number", min_ndim: int = 0) -> jax.Array:
    """Checks an array argument (data, logits, a parameter) and returns it as a JAX array.

    Shapes and dtypes are static, so tracers are checked too.

    Args:
      name: the argument's name (or path, e.g. ``params['w']``).
      value: anything ``jnp.asarray`` accepts.
      kind: ``'number'`` (integer or floating, not bool) or ``'float'``
        (floating point, e.g. what is differentiated).
      min_ndim: the fewest axes it may have.

    Raises:
      TypeError: if ``value`` is not an array of numbers, or not of ``kind``.
      ValueError: if it has fewer than ``min_ndim`` axes.

    Example:
      >>> check_array("x", jnp.array([1, 2]), kind="float")
      Traceback (most recent call last):
      ...
      TypeError: x has dtype int32, it must be a floating-point array
    """
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}={show(value)} must be an array of numbers")
    try:
        arr = jnp.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={show(value)} must be an array of numbers") from None
    if kind == "float" and not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{name} has dtype {arr.dtype}, it must be a floating-point array")
    if arr.dtype == jnp.bool_ or not jnp.issubdtype(arr.dtype, jnp.number):
        raise TypeError(f"{name} has dtype {arr.dtype}, it must be an array of numbers")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} has shape {arr.shape}, it needs at least {min_ndim} "
                         f"ax{'i' if min_ndim == 1 else 'e'}s")
    return arr


def is_mask_fn(mask: Any) -> bool:
    """Whether ``mask`` is a function of the params (rather than a tree of bools)."""
    leaves = jax.tree.leaves(jax.tree.map(callable, mask))
    return bool(leaves) and all(leaves)


def _mask_leaf(name: str, path, leaf: Any) -> bool:
    where = f"{name}{jax.tree_util.keystr(tuple(path))}"
    if isinstance(leaf, (bool, np.bool_)):
        return bool(leaf)
    if isinstance(leaf, jax.core.Tracer):
        raise TypeError(
            f"{where} is a traced value: a mask must be known when tracing (Python bools, "
            "or a function computing them from the params' shapes and dtypes)")
    if getattr(leaf, "dtype", None) == np.bool_ and np.shape(leaf) == ():
        return bool(leaf)
    raise TypeError(f"{where}={show(leaf)} must be a bool (True: this leaf is selected)")


def check_mask(name: str, mask: Any) -> None:
    """Construction-time check of a mask: ``None``, a function, or a tree of bools.

    The one mask rule of jtricks (optax's): a mask is a tree of bools whose
    structure is a prefix of the parameters' (one bool per leaf, or per
    subtree), or a function of the parameters returning one; see
    :func:`static_mask` for the check against the parameters.

    Raises:
      TypeError: for a leaf that is not a boolean scalar (``1`` and ``'yes'``
        are not flags).

    Example:
      >>> check_mask("mask", {"w": True, "b": 1})
      Traceback (most recent call last):
      ...
      TypeError: mask['b']=1 must be a bool (True: this leaf is selected)
    """
    if mask is None or is_mask_fn(mask):
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(mask)[0]:
        _mask_leaf(name, path, leaf)


def static_mask(name: str, mask: Any, tree: Any) -> Any:
    """The mask for ``tree`` as a tree of Python bools (a prefix of ``tree``'s structure).

    A mask function is called on ``tree`` with compile-time evaluation, so
    ``lambda p: jax.tree.map(lambda x: jnp.asarray(x.ndim > 1), p)`` gives
    concrete bools under ``jit``; ``jnp`` boolean scalars become Python bools.

    Raises:
      TypeError: for a leaf that is not a boolean scalar, or is traced.
      ValueError: for a mask whose structure is not a prefix of ``tree``'s.

    Example:
      >>> static_mask("mask", lambda p: {k: k != "b" for k in p}, {"w": 1.0, "b": 0.0})
      {'b': False, 'w': True}
      >>> static_mask("mask", {"w": True}, {"w": 1.0, "b": 0.0})
      Traceback (most recent call last):
      ...
      ValueError: mask={'w': True} does not match the parameters' structure ...
    """
    if is_mask_fn(mask):
        with jax.ensure_compile_time_eval():
            mask = mask(tree)
    flat, treedef_ = jax.tree_util.tree_flatten_with_path(mask)
    treedef: Any = treedef_
    bools = treedef.unflatten([_mask_leaf(name, p, leaf) for p, leaf in flat])
    try:
        treedef.flatten_up_to(tree)
    except (ValueError, TypeError):
        raise ValueError(
            f"{name}={show(mask)} does not match the parameters' structure "
            f"{jax.tree.structure(tree)}: give one bool per leaf (or per subtree)") from None
    return bools


__all__ = [
    "check_array",
    "check_axis",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_dtype",
    "check_int",
    "check_mask",
    "check_non_negative",
    "check_number",
    "check_positive",
    "check_shape",
    "check_unit_interval",
    "concrete_value",
    "is_mask_fn",
    "show",
]
