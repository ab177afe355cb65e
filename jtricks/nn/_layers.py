"""Dense and 2-D convolution layers as ``init`` / ``apply`` pairs of pure functions.

Parameters are plain dicts ``{"kernel": ..., "bias": ...}``; convolutions use
NHWC inputs and HWIO kernels, like flax, so fans of a conv kernel follow
:func:`jtricks.init.compute_fans`. dtype arguments follow flax's names:
``param_dtype`` is the dtype of the parameters; the layers compute in the
input's dtype (flax's ``dtype``), casting the parameters to it.
"""

from __future__ import annotations

from typing import Any, Sequence, cast

import jax
import jax.numpy as jnp
from jax import lax

from jtricks import init as _init
from jtricks.nn import _conv
from jtricks._validate import check_bool, check_choice, check_dtype, check_int


def _pair(name: str, value) -> tuple[int, int]:
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = (value, value)
    value = tuple(cast(Any, value))
    if len(value) != 2:
        raise ValueError(f"{name}={value!r} must be an int or a pair of ints")
    first, second = (check_int(name, v, lo=1) for v in value)
    return first, second


def init_dense(
    key: jax.Array,
    in_features: int,
    out_features: int,
    *,
    kernel_init=_init.he_normal(),
    bias_init=_init.zeros,
    param_dtype=jnp.float32,
) -> dict:
    """Parameters of a dense layer ``y = x @ kernel + bias``.

    Args:
      key: a PRNG key.
      in_features: size of the input's last axis.
      out_features: number of outputs.
      kernel_init: initializer of the ``(in_features, out_features)`` kernel
        (default :func:`jtricks.init.he_normal`).
      bias_init: initializer of the ``(out_features,)`` bias (default zeros).
      param_dtype: dtype of the parameters (flax's name; passed to the
        initializers as their ``dtype``).

    Returns:
      ``{"kernel": (in_features, out_features), "bias": (out_features,)}``.

    Example:
      >>> p = init_dense(jax.random.key(0), 64, 10)
      >>> dense(p, jnp.ones((2, 64))).shape
      (2, 10)
    """
    in_features = check_int("in_features", in_features, lo=1)
    out_features = check_int("out_features", out_features, lo=1)
    param_dtype = check_dtype("param_dtype", param_dtype, allow_none=False)
    k_key, b_key = jax.random.split(key)
    return {
        "kernel": kernel_init(k_key, (in_features, out_features), param_dtype),
        "bias": bias_init(b_key, (out_features,), param_dtype),
    }


def dense(params: dict, x: jax.Array) -> jax.Array:
    """Applies a dense layer to the last axis of ``x``: ``x @ kernel + bias``."""
    y = jnp.matmul(x, params["kernel"].astype(x.dtype))
    if params.get("bias") is not None:
        y = y + params["bias"].astype(x.dtype)
    return y


def init_conv2d(
    key: jax.Array,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int] = 3,
    *,
    use_bias: bool = True,
    kernel_init=_init.he_normal(),
    bias_init=_init.zeros,
    param_dtype=jnp.float32,
) -> dict:
    """Parameters of a 2-D convolution with an HWIO kernel.

    Args:
      key: a PRNG key.
      in_channels: channels of the NHWC input.
      out_channels: channels of the output.
      kernel_size: ``kh`` = ``kw`` or a pair ``(kh, kw)``.
      use_bias: whether to add a bias (leave it out before batch norm).
      kernel_init: initializer of the ``(kh, kw, in, out)`` kernel (default
        :func:`jtricks.init.he_normal`: fan-in ``kh * kw * in``).
      bias_init: initializer of the ``(out_channels,)`` bias.
      param_dtype: dtype of the parameters (flax's name; passed to the
        initializers as their ``dtype``).

    Returns:
      ``{"kernel": (kh, kw, in_channels, out_channels)}`` plus ``"bias"`` when
      ``use_bias``.

    Example:
      >>> p = init_conv2d(jax.random.key(0), 1, 8)
      >>> conv2d(p, jnp.ones((2, 8, 8, 1))).shape
      (2, 8, 8, 8)
    """
    in_channels = check_int("in_channels", in_channels, lo=1)
    out_channels = check_int("out_channels", out_channels, lo=1)
    param_dtype = check_dtype("param_dtype", param_dtype, allow_none=False)
    check_bool("use_bias", use_bias)
    kh, kw = _pair("kernel_size", kernel_size)
    k_key, b_key = jax.random.split(key)
    params = {"kernel": kernel_init(k_key, (kh, kw, in_channels, out_channels), param_dtype)}
    if use_bias:
        params["bias"] = bias_init(b_key, (out_channels,), param_dtype)
    return params


def conv2d(
    params: dict,
    x: jax.Array,
    *,
    stride: int | Sequence[int] = 1,
    padding: str = "SAME",
) -> jax.Array:
    """Applies a 2-D convolution to an NHWC input.

    Args:
      params: from :func:`init_conv2d`.
      x: input of shape ``(batch, height, width, in_channels)``.
      stride: ``s`` or ``(sh, sw)``.
      padding: ``"SAME"`` or ``"VALID"``.

    Returns:
      ``(batch, height', width', out_channels)`` in ``x``'s dtype.

    The value and every derivative are those of ``lax.conv_general_dilated``;
    the gradients are laid out so that XLA:CPU runs them in its fast
    convolution kernels inside loops too (a compiled epoch, ``lax.scan``), see
    ``jtricks/nn/_conv.py``.
    """
    check_choice("padding", padding, ("SAME", "VALID"))
    strides = _pair("stride", stride)
    kernel = params["kernel"].astype(x.dtype)
    pads = tuple(lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides, padding))
    y = _conv.conv(x, kernel, strides, pads)
    if params.get("bias") is not None:
        y = y + params["bias"].astype(x.dtype)
    return y


def max_pool(x: jax.Array, window: int = 2, stride: int | None = None) -> jax.Array:
    """Max pooling over H and W of an NHWC input (``"SAME"`` padding, never empty)."""
    window = check_int("window", window, lo=1)
    stride = window if stride is None else check_int("stride", stride, lo=1)
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), "SAME"
    )


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over H and W of an NHWC input: ``(batch, channels)``."""
    return jnp.mean(x, axis=(1, 2))
