"""``inject_hyperparams``: an optimizer whose numeric hyperparameters live in its state."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._numeric import safe_increment, zero_count
from ._base import GradientTransformation
from ._checks import transformation
from ._common import call_update


class InjectHyperparamsState(NamedTuple):
    """The state of an :func:`inject_hyperparams` optimizer (the fields of optax's
    ``InjectStatefulHyperparamsState``).

    Attributes:
      count: steps taken (int32, saturating); fed to schedules.
      hyperparams: ``{name: array}``, the values used by the last step (schedules
        evaluated at that step). Replace an entry between steps to change it:
        ``state._replace(hyperparams={**state.hyperparams, "learning_rate": lr})``.
      hyperparams_states: ``{name: state}`` of the stateful schedules (objects with
        ``init()``, ``update(state, **extra_args)`` and ``__call__(state, **extra_args)``,
        as ``optax.StatefulSchedule``).
      inner_state: the wrapped optimizer's state.
    """

    count: jax.Array  # type: ignore[assignment]  # optax's name; shadows tuple.count
    hyperparams: dict
    hyperparams_states: dict
    inner_state: Any


def _is_stateful_schedule(value) -> bool:
    """optax's ``StatefulSchedule`` protocol: ``init``, ``update`` and ``__call__``."""
    return callable(value) and all(callable(getattr(value, m, None)) for m in ("init", "update"))


def _is_mask(name: str) -> bool:
    """Masks are never schedules, even when they are functions of the params."""
    return name == "mask" or name.endswith("_mask")


def _convert_floats(x, dtype):
    """A floating hyperparameter in ``dtype`` unless it is a strongly typed JAX array
    (whose dtype the user chose); integers, booleans and PRNG keys are left alone."""
    if isinstance(x, jax.Array) and not getattr(x, "weak_type", False):
        return x
    current = x.dtype if hasattr(x, "dtype") else type(x)
    if jnp.issubdtype(current, jnp.floating):
        return jnp.asarray(x, dtype)
    return x


def _hyperparam_dtype(params, hyperparam_dtype):
    if hyperparam_dtype is not None:
        return hyperparam_dtype
    return optax.tree.dtype(params, "highest") if jax.tree.leaves(params) else None


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: Union[str, Iterable[str]] = (),
    hyperparam_dtype: Optional[jax.typing.DTypeLike] = None,
) -> Callable[..., GradientTransformation]:
    """Wraps an optimizer factory so that its numeric hyperparameters are state
    (``optax.inject_hyperparams``, same arguments and meaning).

    Numbers and arrays (given or default) become arrays in ``state.hyperparams``:
    floating ones in ``hyperparam_dtype`` (default: the params' widest floating dtype),
    except JAX arrays of an explicit dtype, which keep it; integers and PRNG keys keep
    theirs. Schedules (callables ``step -> value``) are evaluated at ``state.count``
    every step, stateful schedules (``init`` / ``update`` / ``__call__``, as
    ``optax.StatefulSchedule``) at their own state, which is updated with the
    ``extra_args`` of ``update``; their current values are stored in
    ``state.hyperparams`` too. Booleans, strings, ``None``, masks (``mask`` and
    ``*_mask`` arguments) and ``static_args`` stay fixed. The state can then be
    inspected (log the current learning rate) or edited between steps (a manual
    decay) inside one compiled step.

    Args:
      inner_factory: e.g. :func:`adam`.
      static_args: a name or names of arguments never injected.
      hyperparam_dtype: the dtype of the floating hyperparameters (default: the
        params' widest floating dtype, as optax).

    Returns:
      A factory with ``inner_factory``'s signature returning a ``GradientTransformation``
      with state :class:`InjectHyperparamsState`.

    Raises:
      ValueError: if ``static_args`` names an argument ``inner_factory`` does not have.
      TypeError: if the arguments do not fit ``inner_factory``'s signature (at call time).

    Example:
      >>> import jtricks.optim as jo
      >>> tx = jo.inject_hyperparams(jo.sgd)(learning_rate=jo.schedules.cosine_decay(0.1, 2))
      >>> params = jnp.ones(2)
      >>> state = tx.init(params)
      >>> state.hyperparams["learning_rate"]             # the rate of the next step
      Array(0.1, dtype=float32)
      >>> updates, state = tx.update(jnp.ones(2), state)
      >>> updates, state = tx.update(jnp.ones(2), state)
      >>> updates                                        # the rate of the last step: 0.05
      Array([-0.05, -0.05], dtype=float32)
      >>> state = state._replace(hyperparams={**state.hyperparams, "learning_rate": 0.5})
    """
    if not callable(inner_factory):
        raise TypeError(f"inner_factory={inner_factory!r} must be an optimizer factory "
                        "such as adam")
    static = frozenset({static_args} if isinstance(static_args, str) else static_args)
    signature = inspect.signature(inner_factory)
    unknown = static - set(signature.parameters)
    if unknown:
        raise ValueError(
            f"static_args={static_args!r} names {sorted(unknown)!r}, which "
            f"{getattr(inner_factory, '__name__', 'inner_factory')} does not take; its "
            f"parameters are {list(signature.parameters)}")

    def wrapped(*args, **kwargs) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()  # default hyperparameters are state too
        fixed, numbers, schedules, stateful = {}, {}, {}, {}
        for name, value in bound.arguments.items():
            if name in static or _is_mask(name) or isinstance(value, (bool, str)):
                fixed[name] = value
            elif _is_stateful_schedule(value):
                stateful[name] = value
            elif callable(value):
                schedules[name] = value
            elif isinstance(value, (int, float, jax.Array, np.ndarray, np.number)):
                numbers[name] = value
            else:  # None, pytrees, ...
                fixed[name] = value

        def values(count, stored, states, dtype, extra_args):
            out = {k: _convert_floats(v, dtype) for k, v in stored.items()}
            out.update({k: _convert_floats(s(count), dtype) for k, s in schedules.items()})
            out.update({k: _convert_floats(s(states[k], **extra_args), dtype)
                        for k, s in stateful.items()})
            return out

        inner_factory(**bound.arguments)  # validate the concrete values now

        def init_fn(params):
            dtype = _hyperparam_dtype(params, hyperparam_dtype)
            stored = {k: jnp.asarray(_convert_floats(v, dtype)) for k, v in numbers.items()}
            states = {k: s.init() for k, s in stateful.items()}
            hp = values(zero_count(), stored, states, dtype, {})
            return InjectHyperparamsState(zero_count(), hp, states,
                                          inner_factory(**fixed, **hp).init(params))

        def update_fn(updates, state, params=None, **extra_args):
            dtype = _hyperparam_dtype(params, hyperparam_dtype)
            hp = values(state.count, state.hyperparams, state.hyperparams_states, dtype,
                        extra_args)
            states = {k: s.update(state.hyperparams_states[k], **extra_args)
                      for k, s in stateful.items()}
            tx = inner_factory(**fixed, **hp)
            updates, inner = call_update(tx, updates, state.inner_state, params, extra_args)
            return updates, InjectHyperparamsState(safe_increment(state.count), hp, states,
                                                   inner)

        return transformation(name, init_fn, update_fn, (InjectHyperparamsState,))

    name = f"inject_hyperparams({getattr(inner_factory, '__name__', 'factory')})"
    wrapped.__name__ = name
    wrapped.__doc__ = inner_factory.__doc__
    return wrapped
