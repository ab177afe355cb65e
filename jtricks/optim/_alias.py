"""Optimizers: short chains of the building blocks, equal to optax's of the same name.

Every optimizer takes ``learning_rate`` first: a non-negative number, a JAX
array (also a traced one, so a jitted step does not recompile when it changes
and ``jax.vmap`` over a vector of learning rates runs a sweep), or a schedule
``step -> value``; ``None`` is refused (it would scale nothing, so applying the
updates would climb the loss), except by :func:`adadelta`, where it is optax's
default. State dtypes keep optax's names (``mu_dtype``, ``nu_dtype``,
``accumulator_dtype``: the dtype of that buffer; default the params' dtype,
except float32 for squared-gradient averages of float16 / bfloat16 params, see
:func:`scale_by_adam`). Every hyperparameter is checked when the optimizer is
built (finite real scalars, bools for flags, floating dtypes), and every misuse
at ``init`` / ``update`` is named by :mod:`._checks`.
"""

from typing import Any, Optional

import jax

from .. import _validate as v
from ._base import GradientTransformation, chain, identity
from ._checks import check_mask
from ._adaptive import scale_by_adadelta, scale_by_adagrad, scale_by_adam, scale_by_rms
from ._transforms import (
    ScalarOrSchedule,
    add_decayed_weights,
    scale_by_learning_rate,
    trace,
)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: Optional[jax.typing.ArrayLike] = None,
    nesterov: bool = False,
    accumulator_dtype: Optional[jax.typing.DTypeLike] = None,
) -> GradientTransformation:
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    :math:`t \leftarrow g + \gamma t`, :math:`w \leftarrow w - \eta t`
    (Nesterov: :math:`w \leftarrow w - \eta (g + \gamma t)`); without momentum
    :math:`w \leftarrow w - \eta g`.

    Args:
      learning_rate: :math:`\eta`, number, array or schedule.
      momentum: :math:`\gamma` in ``[0, 1)``, or ``None`` for none.
      nesterov: whether to use Nesterov momentum.
      accumulator_dtype: dtype of the momentum buffer (default: the params' dtype).

    Returns:
      ``chain(trace(momentum, nesterov, accumulator_dtype),
      scale_by_learning_rate(learning_rate))``.

    Raises:
      ValueError: for a negative or infinite ``learning_rate`` or ``momentum`` outside ``[0, 1)``.
      TypeError: for ``learning_rate=None``, a non-bool ``nesterov`` or a bad dtype.

    References:
      Robbins, Monro, "A Stochastic Approximation Method",
      https://doi.org/10.1214/aoms/1177729586, 1951.

    Example:
      >>> tx = sgd(0.1, momentum=0.9, nesterov=True)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]   # -lr * (g + 0.9 * g)
      Array([-0.19,  0.38], dtype=float32)
    """
    v.check_non_negative("learning_rate", learning_rate)  # None would mean no descent
    v.check_unit_interval("momentum", momentum, allow_none=True)
    v.check_bool("nesterov", nesterov)
    v.check_dtype("accumulator_dtype", accumulator_dtype)
    return chain(
        trace(momentum, nesterov, accumulator_dtype) if momentum is not None else identity(),
        scale_by_learning_rate(learning_rate),
    )


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: jax.typing.ArrayLike = 0.1,
    eps: jax.typing.ArrayLike = 1e-7,
) -> GradientTransformation:
    r"""Adagrad: :math:`w \leftarrow w - \eta g / \sqrt{\sum g^2 + \epsilon}`.

    Args:
      learning_rate: :math:`\eta`, number, array or schedule.
      initial_accumulator_value: starting value of the sum of squares.
      eps: added inside the square root, ``>= 0`` (where the sum is zero the update is zero).

    Returns:
      ``chain(scale_by_adagrad(...), scale_by_learning_rate(learning_rate))``.

    Raises:
      ValueError: for negative arguments.

    References:
      Duchi, Hazan, Singer, "Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization", https://jmlr.org/papers/v12/duchi11a.html, 2011.

    Example:
      >>> tx = adagrad(0.1)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]
      Array([-0.09534625,  0.09877297], dtype=float32)
    """
    v.check_non_negative("learning_rate", learning_rate)
    return chain(
        scale_by_adagrad(initial_accumulator_value, eps),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-8,
    initial_scale: jax.typing.ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Optional[jax.typing.ArrayLike] = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""RMSprop: divides by the root of a moving average of squared gradients.

    The momentum (if any) is applied after the learning rate, as in optax. The
    arguments are optax's, in optax's order.

    Args:
      learning_rate: number, array or schedule.
      decay: moving-average decay in ``[0, 1)``.
      eps: see :func:`scale_by_rms` (``eps_in_sqrt=False`` matches PyTorch).
      initial_scale: starting value of the average of squares.
      eps_in_sqrt: where ``eps`` goes.
      centered: whether to divide by the root of the variance instead.
      momentum: optional momentum in ``[0, 1)``.
      nesterov: whether to use Nesterov momentum.
      bias_correction: whether to debias the moving averages (see :func:`scale_by_rms`).

    Returns:
      ``chain(scale_by_rms(...), scale_by_learning_rate(lr), trace(momentum))``.

    Raises:
      ValueError: for bad arguments.

    References:
      Hinton, Srivastava, Swersky, "Neural Networks for Machine Learning, lecture 6e",
      https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf, 2012.

    Example:
      >>> tx = rmsprop(1e-3, centered=True, momentum=0.9)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]
      Array([-0.00333333,  0.00333333], dtype=float32)

      Positionally, in optax's order (``initial_scale`` fourth, ``centered`` sixth):

      >>> import optax
      >>> ours, theirs = rmsprop(1e-3, 0.9, 1e-8, 0.1), optax.rmsprop(1e-3, 0.9, 1e-8, 0.1)
      >>> ours.update(g, ours.init(g))[0], theirs.update(g, theirs.init(g))[0]
      (Array([-0.00229416,  0.00285714], dtype=float32), Array([-0.00229416,  0.00285714], dtype=float32))
    """
    v.check_non_negative("learning_rate", learning_rate)
    v.check_bool("bias_correction", bias_correction)
    v.check_unit_interval("momentum", momentum, allow_none=True)
    v.check_bool("nesterov", nesterov)
    return chain(
        scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction,
                     centered=centered),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov) if momentum is not None else identity(),
    )


def adadelta(
    learning_rate: Optional[ScalarOrSchedule] = None,
    rho: jax.typing.ArrayLike = 0.9,
    eps: jax.typing.ArrayLike = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> GradientTransformation:
    r"""Adadelta:
    :math:`w \leftarrow w - \eta \sqrt{E[\Delta x^2]+\epsilon}/\sqrt{E[g^2]+\epsilon}\, g`.

    Args:
      learning_rate: number, array, schedule or ``None``. With ``None`` the
        updates are Adadelta's rescaled gradients *not negated*, exactly as
        ``optax.adadelta()``, so ``apply_updates`` would climb the loss; pass
        ``learning_rate=1.0`` for Zeiler's descent step.
      rho: moving-average decay in ``[0, 1)``.
      eps: ``> 0``: with ``eps = 0`` the running average of squared updates would
        stay 0 and no parameter would ever move (optax's does exactly that).
      weight_decay: L2 decay :math:`\lambda \ge 0` added to the gradients *before*
        the rescaling (as optax), number, array or schedule. With a concrete ``0``
        (the default) ``update`` needs no params.
      weight_decay_mask: optional pytree of bools (or function of the params)
        selecting the leaves to decay.

    Returns:
      ``chain(add_decayed_weights(weight_decay, weight_decay_mask),
      scale_by_adadelta(rho, eps), scale_by_learning_rate(learning_rate))``.

    Raises:
      ValueError: for bad arguments.

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method",
      https://arxiv.org/abs/1212.5701, 2012.

    Example:
      >>> tx = adadelta(1.0)
      >>> g = jnp.array([1.0, -2.0])
      >>> tx.update(g, tx.init(g), g)[0]
      Array([-0.00316226,  0.00316227], dtype=float32)
    """
    v.check_non_negative("learning_rate", learning_rate, allow_none=True)
    v.check_non_negative("weight_decay", weight_decay)
    check_mask("weight_decay_mask", weight_decay_mask)
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Optional[jax.typing.DTypeLike] = None,
    *,
    nesterov: bool = False,
    amsgrad: bool = False,
    nu_dtype: Optional[jax.typing.DTypeLike] = None,
) -> GradientTransformation:
    r"""Adam (``amsgrad=True``: AMSGrad, equal to ``optax.amsgrad``).

    The positional arguments are ``optax.adam``'s, in optax's order; ``nesterov``
    (optax's, NAdam) and jtricks' ``amsgrad`` and ``nu_dtype`` are keyword-only.

    Args:
      learning_rate: number, array or schedule.
      b1, b2: moment decays in ``[0, 1)``.
      eps: added outside the square root, ``>= 0``.
      eps_root: added inside the square root, ``>= 0`` (with both 0, a zero second
        moment gives a zero update, not ``0/0``).
      mu_dtype: dtype of the first-moment buffer (default: params' dtype).
      nesterov: whether to use NAdam's Nesterov momentum.
      amsgrad: whether to divide by the running maximum of the second moment.
      nu_dtype: dtype of the second-moment buffer (default: params' dtype, but
        float32 for float16 / bfloat16 params, see :func:`scale_by_adam`).

    Returns:
      ``chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))``.

    Raises:
      ValueError: for bad arguments.

    References:
      Kingma, Ba, "Adam: A Method for Stochastic Optimization",
      https://arxiv.org/abs/1412.6980, 2014.

    Example:
      >>> import jtricks.optim as jo
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> tx = jo.adam(1e-3)
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.array([0.5, -0.1])}
      >>> updates, state = tx.update(grads, state)
      >>> updates["w"]            # the first step is -lr * sign(g)
      Array([-0.001,  0.001], dtype=float32)
      >>> jo.apply_updates(params, updates)["w"]
      Array([ 0.999, -1.999], dtype=float32)

      A call ported from optax means the same thing (the fifth argument is ``eps_root``):

      >>> import optax
      >>> ours, theirs = jo.adam(1e-2, 0.8, 0.99, 1e-6, 1e-9), optax.adam(1e-2, 0.8, 0.99, 1e-6, 1e-9)
      >>> ours.update(grads, ours.init(params))[0]["w"], theirs.update(grads, theirs.init(params))[0]["w"]
      (Array([-0.00999998,  0.0099999 ], dtype=float32), Array([-0.00999998,  0.0099999 ], dtype=float32))
    """
    v.check_non_negative("learning_rate", learning_rate)
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, amsgrad=amsgrad,
                      nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Optional[jax.typing.DTypeLike] = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Optional[jax.typing.DTypeLike] = None,
) -> GradientTransformation:
    r"""Adam with decoupled weight decay: :math:`w \leftarrow w - \eta(\text{adam}(g) + \lambda w)`.

    The positional arguments are ``optax.adamw``'s, in optax's order (``weight_decay``
    comes after ``eps_root`` and ``mu_dtype``); ``nesterov`` and ``nu_dtype`` are
    keyword-only.

    Args:
      learning_rate: number, array or schedule.
      b1, b2, eps, eps_root, mu_dtype, nesterov, nu_dtype: as :func:`adam`.
      weight_decay: :math:`\lambda \ge 0`, number, array or schedule.
      mask: optional pytree of bools (or function of the params) selecting the
        leaves to decay, e.g. no decay on biases and norm scales.

    Returns:
      ``chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask),
      scale_by_learning_rate(learning_rate))``.

    Raises:
      ValueError: for bad arguments.

    References:
      Loshchilov, Hutter, "Decoupled Weight Decay Regularization",
      https://arxiv.org/abs/1711.05101, 2019.

    Example:
      >>> tx = adamw(1e-3, weight_decay=1e-2, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
      >>> updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
      >>> updates["w"][0], updates["b"]     # zero gradient: only the masked decay moves w
      (Array([-1.0000001e-05, -1.0000001e-05], dtype=float32), Array([-0., -0.], dtype=float32))
    """
    v.check_non_negative("learning_rate", learning_rate)
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
