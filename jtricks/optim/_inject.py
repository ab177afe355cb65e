"""``inject_hyperparams``: an optimizer whose numeric hyperparameters live in its state."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp

from .._numeric import safe_increment, zero_count
from ._base import GradientTransformation
from ._checks import transformation
from ._common import call_update


class InjectHyperparamsState(NamedTuple):
    """The state of an :func:`inject_hyperparams` optimizer.

    Attributes:
      count: steps taken (int32, saturating); fed to schedules.
      hyperparams: ``{name: array}``, the values used by the last step (schedules
        evaluated at that step). Replace an entry between steps to change it:
        ``state._replace(hyperparams={**state.hyperparams, "learning_rate": lr})``.
      inner_state: the wrapped optimizer's state.
    """

    count: jax.Array
    hyperparams: dict
    inner_state: Any


def inject_hyperparams(
    factory: Callable[..., GradientTransformation], static_args: Iterable[str] = ()
) -> Callable[..., GradientTransformation]:
    """Wraps an optimizer factory so that its numeric hyperparameters are state.

    Numbers and arrays (given or default) become float32 arrays in
    ``state.hyperparams``; schedules
    (callables, except ``mask``) are evaluated at ``state.count`` every step and
    their current value is stored there too. Booleans, strings, ``None`` and
    ``static_args`` stay fixed. The state can then be inspected (log the current
    learning rate) or edited between steps (a manual decay) inside one compiled
    step, as ``optax.inject_hyperparams``.

    Args:
      factory: e.g. :func:`adam`.
      static_args: names of arguments never injected.

    Returns:
      A factory with ``factory``'s signature returning a ``GradientTransformation``
      with state :class:`InjectHyperparamsState`.

    Raises:
      TypeError: if the arguments do not fit ``factory``'s signature (at call time).

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
    if not callable(factory):
        raise TypeError(f"factory={factory!r} must be an optimizer factory such as adam")
    if isinstance(static_args, str):
        raise TypeError(f"static_args={static_args!r} must be a sequence of argument names, "
                        f"e.g. ({static_args!r},)")
    static = frozenset(static_args)
    signature = inspect.signature(factory)
    unknown = sorted(str(n) for n in static if n not in signature.parameters)
    if unknown:
        raise ValueError(f"static_args={tuple(static_args)!r} names {', '.join(unknown)}, "
                         f"which {getattr(factory, '__name__', 'factory')} does not take")

    def wrapped(*args, **kwargs) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()  # default hyperparameters are state too
        fixed, numbers, schedules = {}, {}, {}
        for name, value in bound.arguments.items():
            if name in static or name == "mask" or value is None or isinstance(value, (bool, str)):
                fixed[name] = value
            elif callable(value):
                schedules[name] = value
            else:
                numbers[name] = value
        factory(**bound.arguments)  # validate the concrete values now

        def values_at(count, stored):
            out = dict(stored)
            out.update({k: jnp.asarray(s(count), jnp.float32) for k, s in schedules.items()})
            return out

        def init_fn(params):
            count = zero_count()
            hp = values_at(count, {k: jnp.asarray(v, jnp.float32) for k, v in numbers.items()})
            return InjectHyperparamsState(count, hp, factory(**fixed, **hp).init(params))

        def update_fn(updates, state, params=None, **extra_args):
            hp = values_at(state.count, state.hyperparams)
            tx = factory(**fixed, **hp)
            updates, inner = call_update(tx, updates, state.inner_state, params, extra_args)
            return updates, InjectHyperparamsState(safe_increment(state.count), hp, inner)

        return transformation(name, init_fn, update_fn, (InjectHyperparamsState,))

    name = f"inject_hyperparams({getattr(factory, '__name__', 'factory')})"
    wrapped.__name__ = name
    wrapped.__doc__ = factory.__doc__
    return wrapped
