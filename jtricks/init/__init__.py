"""Weight initializers: keep the variance of the signal through every layer.

An initializer is a function ``init(key, shape, dtype=jnp.float32,
out_sharding=None) -> Array``, exactly as in :mod:`jax.nn.initializers`, so
every initializer here is usable as a flax ``kernel_init`` (linen and nnx).
Factories are called to get the initializer (``he_normal()``); ``zeros`` and
``ones`` are initializers themselves. Factories shared with JAX take JAX's
arguments in JAX's order (``he_normal(in_axis, out_axis, batch_axis, dtype)``)
and give JAX's values for a float32 kernel, bit for bit; jtricks' own options
(``truncated``) are keyword-only.

Fan-in and fan-out follow :mod:`jax.nn.initializers`: for a kernel of shape
``(..., n_in, n_out)`` the last axis holds the outputs, the second-to-last the
inputs and every other axis is receptive field, so a dense kernel ``(n_in,
n_out)`` has ``fan_in = n_in`` and a convolution kernel ``(kh, kw, c_in,
c_out)`` (HWIO) has ``fan_in = kh * kw * c_in`` and ``fan_out = kh * kw *
c_out``. ``in_axis`` / ``out_axis`` / ``batch_axis`` name other layouts
(equinox's ``(out, in)`` weights: ``he_normal(in_axis=-1, out_axis=-2)``).

``dtype`` is the dtype of the returned array, as in
:mod:`jax.nn.initializers` (flax passes its ``param_dtype`` there). The random
draws are computed in at least float32 and cast: a bfloat16 kernel is JAX's
float32 kernel rounded once (JAX draws 16-bit numbers: 128 distinct values).
``out_sharding`` places the result (a ``NamedSharding``, or a
``PartitionSpec`` under ``jax.set_mesh``), as in JAX.

Every random initializer is one case of :func:`variance_scaling`, which draws
weights of mean 0 and variance exactly ``scale / n`` with ``n`` the fan chosen
by ``mode``. Normal distributions are plain (not truncated) unless
``truncated=True`` (JAX's ``he_normal`` and friends are truncated); a
truncated normal is rescaled so that its variance is still exactly
``scale / n``.

Example:
  >>> import jax, jtricks
  >>> w = jtricks.init.he_normal()(jax.random.key(0), (784, 256))
  >>> w.shape
  (784, 256)
"""

from ._common import Axes as Axes
from ._common import Initializer as Initializer
from ._basic import constant as constant
from ._basic import normal as normal
from ._basic import ones as ones
from ._basic import orthogonal as orthogonal
from ._basic import uniform as uniform
from ._basic import zeros as zeros
from ._variance import compute_fans as compute_fans
from ._variance import gaussian as gaussian
from ._variance import glorot_normal as glorot_normal
from ._variance import glorot_uniform as glorot_uniform
from ._variance import he_normal as he_normal
from ._variance import he_uniform as he_uniform
from ._variance import kaiming_normal as kaiming_normal
from ._variance import kaiming_uniform as kaiming_uniform
from ._variance import lecun_normal as lecun_normal
from ._variance import lecun_uniform as lecun_uniform
from ._variance import variance_scaling as variance_scaling
from ._variance import xavier_normal as xavier_normal
from ._variance import xavier_uniform as xavier_uniform

# The private constant tests compare with JAX's truncated normal.
from ._common import _TRUNCATED_STD as _TRUNCATED_STD  # noqa: F401

__all__ = [
    "Axes",
    "Initializer",
    "compute_fans",
    "constant",
    "gaussian",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
