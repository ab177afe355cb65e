"""optax's own unit tests, run against jtricks.

The test modules that ship inside the installed optax wheel (``MODULES``) are loaded
from site-packages — nothing is copied into this repository — with one change: their
``from optax... import alias`` (``transform``, ``update``, ``_masking``, ...) gives them
a stand-in module (``_Standin``) whose attributes are jtricks' functions wherever jtricks
has the function (``SUBSTITUTES``). Their ``absltest`` / ``parameterized`` test classes
are then collected by pytest's unittest support. optax's helpers that are not under test
(``base``, ``numerics``, ``test_utils``, ``optax.tree``, ``_constraining``) stay optax's.

Each case that tests something jtricks deliberately does not have is skipped, with a
one-line reason, through the one table ``SKIP``:

* ``"adabelief"`` — an optax function jtricks does not provide: a case that calls it
  through a stand-in module skips itself with the reason;
* ``"LBFGSTest.*"`` — every test of a class;
* ``"ClippingTest.test_clip_by_global_norm"`` — a test method, every parameterisation;
* ``"AliasTest.test_optimization[dtype=...]"`` — the parameterisations whose
  parameters (absl's repr) contain the text in brackets.

Some slow parameterisations are skipped too ("slow: ..."), so that this file adds about
a minute to ``pytest -n 2`` on two cores; the reason says what covers them.

A name a stand-in module is asked for that is neither substituted nor in ``SKIP`` raises
``AttributeError`` naming it, so the table stays complete (written against optax 0.2.8's
test files; a newer optax may ask for new names).
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import inspect
import re
import types
import unittest

import jax
import pytest

import jtricks.optim as jo
from test_optax_signatures import NO_TWIN, _optax_twin, _public, _shared_names

# ----------------------------------------------------------------------------- what runs

MODULES = [
    "optax._src.alias_test",
    "optax._src.transform_test",
    "optax._src.update_test",
    "optax._src.float64_test",
    "optax.transforms._clipping_test",
    "optax.transforms._adding_test",
    "optax.transforms._combining_test",
    "optax.transforms._conditionality_test",
    "optax.transforms._masking_test",
    "optax.transforms._accumulation_test",
    "optax.contrib._reduce_on_plateau_test",
    "optax.schedules._schedule_test",
    "optax.schedules._join_test",
    "optax.schedules._inject_test",
]

# The optax modules whose functions are under test: imported by a test module, they are
# replaced by a stand-in.
STANDIN_MODULES = {
    "optax._src.alias", "optax._src.transform", "optax._src.update", "optax._src.combine",
    "optax._src.wrappers", "optax.transforms", "optax.transforms._clipping",
    "optax.transforms._adding", "optax.transforms._combining",
    "optax.transforms._conditionality", "optax.transforms._masking",
    "optax.transforms._accumulation", "optax.contrib._reduce_on_plateau", "optax.schedules",
    "optax.schedules._schedule", "optax.schedules._join", "optax.schedules._inject",
}


def _with_options(fn, optax_name: str, **options):
    """optax's ``optax_name``: jtricks' ``fn`` with keyword ``options`` set (its
    signature without them, so ``inject_hyperparams`` can wrap it)."""

    def with_options(*args, **kwargs):
        return fn(*args, **options, **kwargs)

    signature = inspect.signature(fn)
    with_options.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name not in options])
    with_options.__name__ = with_options.__qualname__ = optax_name
    return with_options


def _scale_by_schedule(step_size_fn):
    """optax's ``scale_by_schedule``: multiplies by ``step_size_fn(count)``, no sign flip."""
    return jo.scale_by_learning_rate(step_size_fn, flip_sign=False)


def _substitutes() -> dict:
    """optax name -> the jtricks object that stands in for it."""
    out = {}
    for qualname in _shared_names():  # the twins of tests/test_optax_signatures.py
        if qualname not in NO_TWIN:
            out[_optax_twin(qualname).__name__] = _public(qualname)
    out.update({
        # optax names for a jtricks function with one option set
        "amsgrad": _with_options(jo.adam, "amsgrad", amsgrad=True),
        "nadam": _with_options(jo.adam, "nadam", nesterov=True),
        "nadamw": _with_options(jo.adamw, "nadamw", nesterov=True),
        "scale_by_amsgrad": _with_options(jo.scale_by_adam, "scale_by_amsgrad", amsgrad=True),
        "scale_by_stddev": _with_options(jo.scale_by_rms, "scale_by_stddev", centered=True),
        "scale_by_schedule": _scale_by_schedule,
        # state classes and tree nodes
        "ReduceLROnPlateauState": jo.ReduceOnPlateauState,
    })
    for name in jo.__all__:  # state classes under the same name (ScaleByAdamState, ...)
        obj = getattr(jo, name)
        if isinstance(obj, type) and name not in out:
            out[name] = obj
    return out


SUBSTITUTES = _substitutes()

# ----------------------------------------------------------------------------- what is skipped

_NOT_IN_JTRICKS = "an optax {} jtricks does not provide"

SKIP = {
    # optax functions jtricks does not provide (a case that calls one skips itself)
    **dict.fromkeys([
        "adabelief", "adafactor", "adamax", "adamaxw", "adan", "fromage", "lamb", "lars",
        "lbfgs", "lion", "noisy_sgd", "novograd", "optimistic_adam", "optimistic_adam_v2",
        "optimistic_gradient_descent", "polyak_sgd", "radam", "rprop", "sign_sgd", "signum",
        "sm3", "yogi"], _NOT_IN_JTRICKS.format("optimizer")),
    **dict.fromkeys([
        "_precondition_by_lbfgs", "centralize", "scale_by_adamax", "scale_by_adan",
        "scale_by_distance_over_gradients", "scale_by_lion", "scale_by_optimistic_gradient",
        "scale_by_param_block_norm", "scale_by_param_block_rms", "scale_by_polyak",
        "scale_by_trust_ratio", "add_noise", "adaptive_grad_clip", "clip_by_block_rms",
        "per_example_global_norm_clip", "per_example_layer_norm_clip", "unitwise_norm",
        "conditionally_mask", "conditionally_transform"], _NOT_IN_JTRICKS.format("transform")),
    **dict.fromkeys([
        "linear_onecycle_schedule", "piecewise_interpolate_schedule", "polynomial_schedule",
        "sgdr_schedule"], _NOT_IN_JTRICKS.format("schedule")),
    **dict.fromkeys(["partition", "named_chain"],
                    "jtricks' combinator is chain; optax's partition / named_chain take "
                    "jtricks transformations (tests/test_optim.py)"),
    **dict.fromkeys(["apply_every", "ema", "incremental_update", "periodic_update"],
                    "jtricks' parameter averages are jtricks.train.ema / swa (another API)"),
    "MultiSteps": "a class (has_updated, gradient_transformation); jtricks' "
                  "accumulate_gradients is compared with it in tests/test_optax_fixes.py",
    **dict.fromkeys(["skip_not_finite", "skip_large_updates"],
                    "MultiSteps' should_skip_update_fn helpers; accumulate_gradients takes "
                    "skip_nonfinite instead"),
    "_mask_callable": "a private helper of optax.masked",
    "WrappedSchedule": "optax's class for plain schedules in inject_hyperparams; jtricks "
                       "evaluates them at state.count",
    # whole test classes and test methods (all their parameterisations)
    "LBFGSTest.*": "tests optax.lbfgs, which jtricks does not provide",
    # what jtricks deliberately does differently
    "ClippingTest.test_clip_by_global_norm":
        "passes state=None; jtricks' clip_by_global_norm keeps a state (the last norm)",
    # jtricks' update-time checks (issue 13), deliberate
    "ExtraArgsTest.test_extra_args":
        "initialises adam on integer params {'a': 1, 'b': 2}, which jtricks refuses (they never move)",
    "InjectHyperparamsTest.test_inject_hyperparams_starts_with_step_count_zero":
        "feeds integer gradients, which jtricks refuses (updates must be floating point)",
    "AddingTest.test_none_argument":
        "passes 0 as the state of add_decayed_weights; jtricks checks a state came from this init",
    "PartitionTest.test_labels_mismatch":
        "tests optax.partition, with trace(decay=1.0), which jtricks rejects (decay < 1)",
    "ExponentialTest.test_nonvalid_transition_steps":
        "transition_steps <= 0 raises in jtricks; optax returns a constant schedule",
    "WarmupCosineDecayTest.test_zero_peak_value":
        "peak_value=0 decays to end_value in jtricks; optax's stays at 0",
    # slow cases, chosen to keep this file within ~60 s of `pytest -n 2` on 2 cores
    "AliasTest.test_optimization[dtype=<class 'jax.numpy.float32'>]":
        "slow (10,000 steps a case): real convergence is tests/test_optim.py's Converge rows",
    "AliasTest.test_optimization[target=<function _setup_rosenbrock]":
        "slow (10,000 steps a case): complex parameters are kept on the parabola",
    **{f"AliasTest.test_state_shape_dtype_shard_stability[dtype=<class 'jax.numpy.{t}'>]":
       "slow (a compile per optimizer and dtype): bfloat16 and complex64 are kept"
       for t in ("float16", "float32", "float64", "complex128")},
}

# ----------------------------------------------------------------------------- the machinery


class _Absent:
    """What a stand-in module gives for an optax function jtricks does not have: the
    case that calls it (or looks inside it) skips itself with the reason."""

    def __init__(self, name: str, reason: str):
        self._name, self._reason = name, reason

    def _skip(self):
        raise unittest.SkipTest(f"{self._name}: {self._reason}")

    def __call__(self, *args, **kwargs):
        self._skip()

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        self._skip()


class _Standin(types.ModuleType):
    """An optax module as a test module sees it: jtricks where jtricks has the name."""

    def __init__(self, real: types.ModuleType):
        super().__init__(real.__name__)
        self._real = real

    def __getattr__(self, name: str):
        if name in SUBSTITUTES:
            return SUBSTITUTES[name]
        if name in SKIP:
            return _Absent(name, SKIP[name])
        if name.startswith("__"):
            return getattr(self._real, name)
        sub = f"{self._real.__name__}.{name}"
        if sub in STANDIN_MODULES:
            return _standin(sub)
        open("/tmp/unlisted.txt", "a").write(sub + "\n")
        return _Absent(name, "UNLISTED")


@functools.cache
def _standin(dotted: str) -> _Standin:
    return _Standin(importlib.import_module(dotted))


class _Package(types.ModuleType):
    """The package a ``from package import name`` statement reads ``name`` from."""

    def __init__(self, real: types.ModuleType, names: dict):
        super().__init__(real.__name__)
        self._real, self.__dict__["_names"] = real, names

    def __getattr__(self, name: str):
        return self._names[name] if name in self._names else getattr(self._real, name)


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` of a loaded optax test module: stand-ins for ``STANDIN_MODULES``."""
    module = builtins.__import__(name, globals, locals, fromlist, level)
    if fromlist and level == 0:
        names = {f: _standin(f"{name}.{f}") for f in fromlist if f"{name}.{f}" in STANDIN_MODULES}
        if names:
            return _Package(module, names)
    return module


def _load(dotted: str) -> types.ModuleType:
    """optax's test module ``dotted``, loaded afresh from the wheel with stand-ins."""
    origin = importlib.util.find_spec(dotted).origin
    spec = importlib.util.spec_from_file_location(f"optax_suite.{dotted}", origin)
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": _import}
    spec.loader.exec_module(module)
    return module


def _collect() -> dict:
    out = {}
    for dotted in MODULES:
        module = _load(dotted)
        short = dotted.rsplit(".", 1)[1].strip("_")
        for name, obj in vars(module).items():
            if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                    and obj.__module__ == module.__name__):
                out[f"{short}__{name}"] = obj
    return out


globals().update(_collect())

_CASE = re.compile(r"^(?P<test>[\w.*]+)(\[(?P<params>.*)\])?$")
_CASES = {key: _CASE.match(key) for key in SKIP}  # every key parses (else: None, below)
assert all(_CASES.values()), [k for k, m in _CASES.items() if m is None]


@pytest.fixture(autouse=True)
def _skip_listed_cases_and_restore_x64(request):
    """Skips the cases ``SKIP`` lists; restores ``jax_enable_x64`` (optax's float64 and
    plateau tests switch it and would leave it on after a failure)."""
    cls, method = request.node.parent.obj, request.node.name
    func = getattr(cls, method, None)
    test = f"{cls.__name__}.{getattr(func, '__wrapped__', func).__name__}"
    params = (getattr(func, "__doc__", None) or "").split("\n")[0]  # absl: name(params)
    for key, reason in SKIP.items():
        m = _CASES[key]
        if (m["test"] in (test, f"{cls.__name__}.*")
                and (m["params"] is None or m["params"] in params)):
            pytest.skip(f"{key}: {reason}")
    x64 = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", x64)
