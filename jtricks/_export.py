"""``jax.export`` serialization of jtricks' pytree classes.

``jax.export`` serializes the input and output trees of an exported function, and
a ``NamedTuple`` node (``TrainState``, ``ScaleByAdamState``, ``BatchNormState``,
...) only with a registered name. Each subpackage holding such classes calls
:func:`register_namedtuples` at the end of its ``__init__``, so after
``import jtricks.train`` a training step exports, serializes and deserializes
without user code::

    exported = jax.export.export(jax.jit(step))(state, batch)
    again = jax.export.deserialize(exported.serialize())
    new_state, metrics = again.call(state, batch)

The serialized name is ``<package>.<ClassName>`` (``jtricks.train.TrainState``),
independent of the private module that defines the class, so moving a class
between files keeps old serialized artifacts loadable.
"""

from __future__ import annotations

import sys

import jax

# class -> its serialized name, for every class registered here.
REGISTERED: dict[type, str] = {}


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")


def register_namedtuples(package: str) -> list[type]:
    """Registers for ``jax.export`` every ``NamedTuple`` class defined in the
    imported modules of ``package`` (e.g. ``"jtricks.optim"``).

    Idempotent: a class registered before is skipped.

    Args:
      package: the dotted name of an imported jtricks package.

    Returns:
      The classes registered by this call.

    Raises:
      ValueError: when two classes of ``package`` share a name (their serialized
        names would collide).
    """
    modules = [m for name, m in list(sys.modules.items())
               if m is not None and (name == package or name.startswith(package + "."))]
    classes = {obj for m in modules for obj in vars(m).values()
               if _is_namedtuple(obj) and obj.__module__ == m.__name__}
    done = []
    for cls in sorted(classes, key=lambda c: (c.__qualname__, c.__module__)):
        if cls in REGISTERED:
            continue
        name = f"{package}.{cls.__qualname__}"
        if name in REGISTERED.values():
            other = next(c for c, n in REGISTERED.items() if n == name)
            raise ValueError(f"cannot register {cls.__module__}.{cls.__qualname__} for "
                             f"jax.export as {name!r}: {other.__module__}.{other.__qualname__} "
                             "has that name; rename one of them")
        jax.export.register_namedtuple_serialization(cls, serialized_name=name)
        REGISTERED[cls] = name
        done.append(cls)
    return done
