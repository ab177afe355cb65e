"""What every initializer shares: dtypes, shapes and the types of the API."""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._numeric import compute_dtype
from jtricks._validate import check_shape, show

Initializer = Callable[..., jax.Array]
#: An axis or several axes of a kernel, as in :mod:`jax.nn.initializers`.
Axes = Union[int, Sequence[int]]

# Standard deviation of a standard normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


def _canonical_shape(shape) -> tuple[int, ...]:
    return check_shape("shape", shape)


def _float_dtype(dtype):
    try:
        as_dtype = jnp.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype={show(dtype)} is not a dtype") from None
    if not jnp.issubdtype(as_dtype, jnp.floating):
        raise TypeError(f"dtype={as_dtype} must be a floating-point dtype")
    return as_dtype


def _default_dtype(dtype) -> Any:
    """The ``dtype`` default of an initializer: the factory's, or float32."""
    return jnp.float32 if dtype is None else _float_dtype(dtype)


def _start(shape, dtype) -> tuple[tuple[int, ...], np.dtype, np.dtype]:
    """Canonical shape, the returned dtype and the dtype draws are made in (>= float32)."""
    dtype = _float_dtype(dtype)
    return _canonical_shape(shape), dtype, compute_dtype(dtype)
