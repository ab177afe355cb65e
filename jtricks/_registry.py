"""The one table of jtricks' optimizers and gradient transformations.

One :class:`Entry` per public factory of :mod:`jtricks.optim`: its keyword
arguments for a typical valid configuration, valid variations of them, the
optax counterpart the numbers are checked against, invalid hyperparameters
with the error they raise, the learning rates with which it converges on a
quadratic and on Rosenbrock's function, and — for the command line — its
``jtricks train --optimizer`` name and default learning rate.

The tests (``tests/test_optim.py``, ``tests/test_optim_transforms.py``) and
the command line (``jtricks train`` / ``jtricks sweep``) read this table, so
adding an optimizer is adding one row.

The module imports neither JAX nor optax: the command line builds its parser
from it and must stay fast (``jtricks --help`` does not import JAX). Factories,
optax counterparts and argument values that are JAX objects (schedules, inner
transformations, dtypes) are named here and resolved when a configuration is
built (:meth:`Config.build`, :meth:`Config.build_optax`).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

__all__ = ["ENTRIES", "Call", "Cli", "Config", "Converge", "Entry", "Invalid", "Variation",
           "cli_configs", "cli_default_lr", "cli_names", "configs", "entry", "matrices_only",
           "resolve"]


def resolve(path: str) -> Any:
    """The object at a dotted ``path``: ``"optax.adamw"``, ``"jtricks.optim.sgd"``."""
    module, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):  # a nested attribute: "optax.contrib.x" is a module path
        parent = resolve(module)
        return getattr(parent, attr)


class Call(NamedTuple):
    """An argument value built when the configuration is built: ``resolve(path)(*args, **kwargs)``.

    Arguments may themselves be ``Call``s. ``Call("jax.numpy.float32")`` with no
    arguments and ``call=False`` is the object itself.
    """

    path: str
    args: tuple = ()
    kwargs: Mapping = {}
    call: bool = True

    def value(self) -> Any:
        obj = resolve(self.path)
        if not self.call:
            return obj
        return obj(*[_value(a) for a in self.args],
                   **{k: _value(v) for k, v in self.kwargs.items()})


def _value(v):
    return v.value() if isinstance(v, Call) else v


def _ref(path: str) -> Call:
    return Call(path, call=False)


def _jo(name: str, *args, **kwargs) -> Call:
    return Call(f"jtricks.optim.{name}", args, kwargs)


def _ox(name: str, *args, **kwargs) -> Call:
    return Call(f"optax.{name}", args, kwargs)


def matrices_only(params):
    """A decay mask: ``True`` for the leaves of two or more dimensions (weights, not biases)."""
    import jax

    return jax.tree.map(lambda x: x.ndim > 1, params)


class Converge(NamedTuple):
    """Learning rates with which a configuration reaches the minimum of a quadratic (500
    steps from 0) and of Rosenbrock's function (``steps`` steps from ``(-1, 1.5)``)."""

    quadratic: Any
    rosenbrock: Any
    steps: int
    kwargs: Mapping = {}  # overrides of the configuration's other arguments for both runs


class Cli(NamedTuple):
    """A ``jtricks train --optimizer`` choice: the factory with ``learning_rate=--lr``
    (default ``lr``) and ``kwargs`` (the CLI's defaults of its other flags)."""

    name: str
    lr: float
    kwargs: Mapping = {}
    sweep: bool = False  # also a `jtricks sweep --optimizer` choice


class Invalid(NamedTuple):
    """Arguments (over the typical ones) that raise ``error`` naming the argument and value."""

    kwargs: Mapping
    error: type = ValueError


@dataclasses.dataclass(frozen=True)
class Variation:
    """A valid variation of an entry's typical arguments (merged over them).

    ``optax`` / ``optax_kwargs`` replace the entry's counterpart or its arguments
    where optax spells the same configuration differently; ``optax=None`` means
    optax has no counterpart of this variation.
    """

    id: str
    kwargs: Mapping
    optax: Any = "same"
    optax_kwargs: Optional[Mapping] = None
    converge: Optional[Converge] = None
    cli: Optional[Cli] = None


@dataclasses.dataclass(frozen=True)
class Config:
    """One buildable configuration of an entry (its typical arguments or a variation)."""

    id: str
    entry: "Entry"
    kwargs: Mapping
    optax: Any
    optax_kwargs: Optional[Mapping]
    converge: Optional[Converge]
    cli: Optional[Cli]

    def build(self, **overrides):
        """The jtricks transformation: ``factory(**kwargs, **overrides)``."""
        return self.entry.factory(**_values({**self.kwargs, **overrides}))

    def build_optax(self):
        """optax's transformation of the same configuration, or ``None`` where it has none."""
        if self.optax is None:
            return None
        kwargs = _values(self.kwargs if self.optax_kwargs is None else self.optax_kwargs)
        make = resolve(self.optax) if isinstance(self.optax, str) else self.optax
        return make(**kwargs)

    def build_cli(self, learning_rate):
        """What ``jtricks train --optimizer NAME --lr learning_rate`` builds for this choice."""
        assert self.cli is not None
        return self.entry.cli_factory(learning_rate, **_values(self.cli.kwargs))


def _values(kwargs):
    return {k: _value(v) for k, v in kwargs.items()}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One public factory of :mod:`jtricks.optim`.

    Attributes:
      name: the factory's name in ``jtricks.optim``.
      kind: ``"optimizer"`` (``learning_rate`` first, checked on an MLP against
        optax's optimizer) or ``"transform"`` (a building block, clipping or
        wrapper, checked on a stream of gradients against optax's twin).
      kwargs: a typical valid configuration.
      optax: optax's counterpart: a dotted name (``"optax.adamw"``) called with
        the same keyword arguments, a callable taking them, or ``None``.
      variations: valid variations, each checked like the typical configuration.
      invalid: bad hyperparameters and the error they raise.
      converge: learning rates with which the typical configuration converges.
      cli: the command line's choice for the typical configuration.
      extra_args: names of the extra ``update`` arguments it needs (``value``).
      cli_build: what the command line builds for a choice of this entry,
        ``(learning_rate, **kwargs) -> tx`` (default: the factory itself).
    """

    name: str
    kind: str
    kwargs: Mapping
    optax: Any
    variations: Sequence[Variation] = ()
    invalid: Sequence[Invalid] = ()
    converge: Optional[Converge] = None
    cli: Optional[Cli] = None
    extra_args: Sequence[str] = ()
    cli_build: Optional[Callable] = None

    @property
    def factory(self) -> Callable:
        return resolve(f"jtricks.optim.{self.name}")

    @property
    def cli_factory(self) -> Callable:
        if self.cli_build is not None:
            return self.cli_build
        return lambda learning_rate, **kwargs: self.factory(learning_rate, **kwargs)

    def configs(self) -> list:
        """The typical configuration (id ``name``) and every variation (``name_id``)."""
        out = [Config(self.name, self, dict(self.kwargs), self.optax, None, self.converge,
                      self.cli)]
        for v in self.variations:
            optax = self.optax if v.optax == "same" else v.optax
            out.append(Config(f"{self.name}_{v.id}", self, {**self.kwargs, **v.kwargs}, optax,
                              v.optax_kwargs, v.converge, v.cli))
        return out


def _normalized(learning_rate, **kwargs):
    """The command line's "normalized" optimizer: ``w - lr * g / |g|``."""
    import jtricks.optim as jo

    return jo.chain(jo.normalize_by_norm(**kwargs), jo.scale_by_learning_rate(learning_rate))


def _optax_apply_if_finite(inner, max_consecutive_errors):
    del inner  # its optax twin: the inner jtricks adam(1e-2) of the typical configuration
    return resolve("optax.apply_if_finite")(resolve("optax.adam")(1e-2), max_consecutive_errors)


def _optax_apply_if_finite_accumulate(inner, max_consecutive_errors):
    del inner  # accumulate_gradients(adam(1e-2), 2) of the variation
    optax = importlib.import_module("optax")
    inner = optax.MultiSteps(optax.adam(1e-2), 2).gradient_transformation()
    return optax.apply_if_finite(inner, max_consecutive_errors)


def _optax_accumulate(tx, every_k):
    del tx  # the inner jtricks sgd(0.1) of the typical configuration
    optax = importlib.import_module("optax")
    return optax.MultiSteps(optax.sgd(0.1), every_k).gradient_transformation()


def _optax_masked(inner, mask):
    del inner  # the inner jtricks adam(1e-2) of the typical configuration
    return resolve("optax.masked")(resolve("optax.adam")(1e-2), mask)


def _optax_flatten(tx):
    del tx  # flat state, same numbers as optax's adam(1e-2) on the tree
    return resolve("optax.adam")(1e-2)


_F32 = _ref("jax.numpy.float32")

ENTRIES: tuple = (
    # ------------------------------------------------------------------ optimizers
    Entry(
        "sgd", "optimizer", {"learning_rate": 0.1}, "optax.sgd",
        variations=(
            Variation("momentum", {"learning_rate": 0.05, "momentum": 0.9},
                      converge=Converge(0.05, 4e-4, 5000),
                      cli=Cli("momentum", 0.03, {"momentum": 0.9}, sweep=True)),
            Variation("nesterov", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
                      converge=Converge(0.05, 4e-4, 5000),
                      cli=Cli("nesterov", 0.03, {"momentum": 0.9, "nesterov": True})),
            Variation("schedule", {"learning_rate": _jo("schedules.exponential_decay",
                                                        0.05, 20, 0.5), "momentum": 0.9},
                      optax_kwargs={"learning_rate": _ox("exponential_decay", 0.05, 20, 0.5),
                                    "momentum": 0.9}),
        ),
        invalid=(Invalid({"learning_rate": -0.1}), Invalid({"momentum": 1.0})),
        converge=Converge(0.1, 2e-3, 5000),
        cli=Cli("sgd", 0.1, sweep=True),
    ),
    Entry(
        "adagrad", "optimizer", {"learning_rate": 0.1}, "optax.adagrad",
        invalid=(Invalid({"eps": -1.0}), Invalid({"initial_accumulator_value": -0.5})),
        converge=Converge(0.5, 0.3, 10_000),
        cli=Cli("adagrad", 0.05),
    ),
    Entry(
        "rmsprop", "optimizer", {"learning_rate": 0.01}, "optax.rmsprop",
        variations=(
            Variation("centered", {"centered": True}, converge=Converge(0.01, 1e-3, 5000)),
            Variation("momentum", {"momentum": 0.9, "nesterov": True},
                      converge=Converge(1e-3, 1e-4, 5000, {"nesterov": False})),
            Variation("eps_outside", {"eps": 1e-6, "eps_in_sqrt": False},
                      converge=Converge(0.01, 2e-3, 5000, {"eps": 1e-8})),
        ),
        invalid=(Invalid({"momentum": -0.5}), Invalid({"decay": 1.5})),
        converge=Converge(0.01, 2e-3, 5000),
        cli=Cli("rmsprop", 1e-3),
    ),
    Entry(
        "adadelta", "optimizer", {"learning_rate": 1.0}, "optax.adadelta",
        variations=(
            # optax's L2 decay, added before the rescaling
            Variation("weight_decay", {"weight_decay": 0.01, "weight_decay_mask": matrices_only}),
        ),
        invalid=(Invalid({"rho": 1.0}), Invalid({"eps": -1e-6}),
                 Invalid({"weight_decay": -0.1})),
        # on Rosenbrock adadelta needs its step annealed
        converge=Converge(10.0, _jo("schedules.cosine_decay", 0.2, 10_000), 10_000),
        cli=Cli("adadelta", 1.0),
    ),
    Entry(
        "adam", "optimizer", {"learning_rate": 1e-2}, "optax.adam",
        variations=(
            Variation("amsgrad", {"amsgrad": True}, optax="optax.amsgrad",
                      optax_kwargs={"learning_rate": 1e-2}, converge=Converge(0.1, 0.2, 10_000)),
            # optax's keyword-only NAdam
            Variation("nesterov", {"nesterov": True}),
            # every positional argument, in optax's order (eps_root, mu_dtype after eps)
            Variation("eps_root", {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-9}),
            # an f32 array (not weakly typed) learning rate must not promote bf16 / f16 updates
            Variation("f32_lr", {"learning_rate": Call("jax.numpy.float32", (1e-2,))}),
            Variation("amsgrad_f32_moments",
                      {"amsgrad": True, "mu_dtype": _F32, "nu_dtype": _F32},
                      optax="optax.amsgrad",
                      optax_kwargs={"learning_rate": 1e-2, "mu_dtype": _F32}),
        ),
        invalid=(Invalid({"learning_rate": -1e-3}), Invalid({"b1": 1.0}), Invalid({"b2": -0.1}),
                 Invalid({"eps": -1e-8})),
        converge=Converge(0.1, 0.02, 5000),
        cli=Cli("adam", 1e-3, sweep=True),
    ),
    Entry(
        "adamw", "optimizer", {"learning_rate": 1e-2, "weight_decay": 0.1}, "optax.adamw",
        variations=(
            Variation("mask", {"mask": matrices_only}),
            Variation("schedule", {"learning_rate": _jo("schedules.cosine_decay", 1e-3, 10),
                                   "weight_decay": 1e-2},
                      optax_kwargs={"learning_rate": _ox("cosine_decay_schedule", 1e-3, 10),
                                    "weight_decay": 1e-2}),
        ),
        invalid=(Invalid({"weight_decay": -1.0}), Invalid({"learning_rate": -1e-3})),
        converge=Converge(0.1, 0.02, 5000, {"weight_decay": 1e-4}),
        cli=Cli("adamw", 1e-3, {"weight_decay": 0.0}, sweep=True),
    ),
    # ------------------------------------------------------------------ building blocks
    Entry("scale", "transform", {"step_size": -0.3}, "optax.scale"),
    Entry(
        "scale_by_learning_rate", "transform", {"learning_rate": 0.1},
        "optax.scale_by_learning_rate",
        variations=(
            Variation("schedule", {"learning_rate": _jo("schedules.cosine_decay", 0.1, 10)},
                      optax_kwargs={"learning_rate": _ox("cosine_decay_schedule", 0.1, 10)}),
        ),
    ),
    Entry(
        "trace", "transform", {"decay": 0.9}, "optax.trace",
        variations=(Variation("nesterov", {"decay": 0.5, "nesterov": True}),),
        invalid=(Invalid({"decay": 2.0}),),
    ),
    Entry(
        "scale_by_adagrad", "transform", {"initial_accumulator_value": 0.0, "eps": 1e-7},
        "optax.scale_by_rss",
        invalid=(Invalid({"eps": -1.0}),),
    ),
    Entry(
        "scale_by_rms", "transform", {"decay": 0.9, "eps": 1e-8}, "optax.scale_by_rms",
        variations=(
            Variation("eps_outside", {"decay": 0.8, "eps": 1e-3, "eps_in_sqrt": False}),
            Variation("initial_scale", {"initial_scale": 0.1}),
            Variation("centered", {"eps": 1e-3, "centered": True}, optax="optax.scale_by_stddev",
                      optax_kwargs={"decay": 0.9, "eps": 1e-3}),
        ),
        invalid=(Invalid({"decay": 1.5}),),
    ),
    Entry(
        "scale_by_adadelta", "transform", {"rho": 0.9, "eps": 1e-6}, "optax.scale_by_adadelta",
        invalid=(Invalid({"rho": 1.0}),),
    ),
    Entry(
        "scale_by_adam", "transform", {"b1": 0.8, "b2": 0.99, "eps": 1e-6}, "optax.scale_by_adam",
        variations=(
            Variation("eps_root", {"eps_root": 1e-8}),
            Variation("nesterov", {"nesterov": True}),
            Variation("amsgrad", {"amsgrad": True}, optax="optax.scale_by_amsgrad",
                      optax_kwargs={"b1": 0.8, "b2": 0.99, "eps": 1e-6}),
        ),
        invalid=(Invalid({"b1": 1.0}), Invalid({"eps_root": -1.0})),
    ),
    Entry(
        "normalize_by_norm", "transform", {}, "optax.normalize_by_update_norm",
        variations=(Variation("scaled", {"scale_factor": 2.0, "eps": 0.0}),),
        cli=Cli("normalized", 0.1),
        cli_build=_normalized,
    ),
    Entry(
        "add_decayed_weights", "transform", {"weight_decay": 0.1}, "optax.add_decayed_weights",
        variations=(
            Variation("mask", {"mask": matrices_only}),
            Variation("schedule", {"weight_decay": _jo("schedules.linear", 0.1, 0.0, 10)},
                      optax_kwargs={"weight_decay": _ox("linear_schedule", 0.1, 0.0, 10)}),
        ),
        invalid=(Invalid({"weight_decay": -1.0}),),
    ),
    # no optax twin: closed forms in tests/test_optim_transforms.py
    Entry(
        "add_l1_decay", "transform", {"l1": 0.01}, None,
        variations=(Variation("mask", {"mask": matrices_only}),),
        invalid=(Invalid({"l1": -0.01}),),
    ),
    Entry("identity", "transform", {}, "optax.identity"),
    # ------------------------------------------------------------------ clipping
    Entry("clip", "transform", {"max_delta": 0.5}, "optax.clip",
          invalid=(Invalid({"max_delta": 0}),)),
    Entry("clip_by_global_norm", "transform", {"max_norm": 1.0}, "optax.clip_by_global_norm",
          invalid=(Invalid({"max_norm": 0.0}),)),
    # per leaf; no optax twin (tests/test_optim_clipping.py checks the closed form)
    Entry("clip_by_norm", "transform", {"max_norm": 1.0}, None,
          invalid=(Invalid({"max_norm": -1.0}),)),
    # ------------------------------------------------------------------ wrappers
    Entry(
        "apply_if_finite", "transform",
        {"inner": _jo("adam", 1e-2), "max_consecutive_errors": 3}, _optax_apply_if_finite,
        variations=(  # wrappers nest
            Variation("accumulate", {"inner": _jo("accumulate_gradients", _jo("adam", 1e-2), 2)},
                      optax=_optax_apply_if_finite_accumulate),
        ),
        invalid=(Invalid({"max_consecutive_errors": -1}),),
    ),
    Entry(
        "accumulate_gradients", "transform", {"tx": _jo("sgd", 0.1), "every_k": 2},
        _optax_accumulate,
        invalid=(Invalid({"every_k": 0}),),
    ),
    Entry("masked", "transform", {"inner": _jo("adam", 1e-2), "mask": matrices_only},
          _optax_masked),
    Entry("flatten", "transform", {"tx": _jo("adam", 1e-2)}, _optax_flatten),
    Entry(
        "reduce_on_plateau", "transform", {"factor": 0.5, "patience": 2},
        "optax.contrib.reduce_on_plateau",
        invalid=(Invalid({"factor": 1.5}), Invalid({"patience": -1})),
        extra_args=("value",),
    ),
)


def entry(name: str) -> Entry:
    """The row of the factory ``name``."""
    for e in ENTRIES:
        if e.name == name:
            return e
    raise KeyError(f"no registry entry {name!r}; entries: {[e.name for e in ENTRIES]}")


def configs(kind: Optional[str] = None) -> list:
    """Every configuration (typical and variations) of every entry, or of one ``kind``."""
    return [c for e in ENTRIES if kind in (None, e.kind) for c in e.configs()]


def cli_configs(sweep: bool = False) -> list:
    """The configurations that are ``jtricks train`` (or ``jtricks sweep``) choices."""
    return [c for c in configs() if c.cli is not None and (c.cli.sweep or not sweep)]


def cli_names(sweep: bool = False) -> tuple:
    """The ``--optimizer`` choices of ``jtricks train`` (``sweep=True``: ``jtricks sweep``)."""
    return tuple(c.cli.name for c in cli_configs(sweep))


def cli_default_lr() -> dict:
    """``{--optimizer choice: its default --lr}``."""
    return {c.cli.name: c.cli.lr for c in cli_configs()}
