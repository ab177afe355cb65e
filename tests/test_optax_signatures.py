"""Drop-in for optax: every name shared with optax takes optax's positional arguments, in
optax's order, with optax's defaults, and a call ported from optax means the same thing.

One table, two checks per shared name:

(a) ``inspect.signature``: jtricks' positional parameters (names, kinds, defaults) are
    exactly optax's; whatever jtricks adds is keyword-only. ``ALLOWED`` lists, with the
    reason, the deliberate differences.
(b) a *ported* call, every positional argument set to a non-default value, gives optax's
    numbers over a few steps on a small tree (schedules: over a range of steps).

``test_the_check_catches_the_old_adam_order`` shows that both checks fail for the order
``adam`` had before (``adam(lr, b1, b2, eps, amsgrad)``: a ported ``eps_root`` turned
AMSGrad on).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import jtricks.optim as jo
from jtricks.optim import schedules as js

# ----------------------------------------------------------------------------- the twins

# jtricks names whose optax twin has another name (the docstrings say "equal to ...").
RENAMED = {
    "optim.normalize_by_norm": "normalize_by_update_norm",
    "optim.scale_by_adagrad": "scale_by_rss",
    "optim.reduce_on_plateau": "contrib.reduce_on_plateau",
    "schedules.constant": "constant_schedule",
    "schedules.cosine_decay": "cosine_decay_schedule",
    "schedules.warmup_cosine_decay": "warmup_cosine_decay_schedule",
    "schedules.linear": "linear_schedule",
    "schedules.piecewise_constant": "piecewise_constant_schedule",
    "schedules.join": "join_schedules",
    "schedules.one_cycle": "cosine_onecycle_schedule",
}

# Public callables with no optax twin (their closed forms are tested elsewhere).
NO_TWIN = {
    "optim.accumulate_gradients",  # optax.MultiSteps is a class with another protocol
    "optim.add_l1_decay",
    "optim.clip_by_norm",  # per leaf; optax has clip_by_global_norm / clip_by_block_rms
    "optim.ravel",
    "schedules.per_epoch",  # the lesson's decay
}

# Deliberate differences in (a), each with its reason. A ported positional call still
# means the same thing for each of them, or fails loudly (too many arguments).
ALLOWED = {
    # Parameter *name* only (tx vs optax's inner); jtricks/optim/_flat.py belongs to
    # another part of the work. flatten(adam(...)) means the same in both.
    "optim.flatten": "inner is named tx",
}


def _optax_twin(qualname: str):
    group, name = qualname.split(".")
    target = RENAMED.get(qualname, name)
    obj = optax
    for part in target.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    if obj is None and group == "schedules":
        obj = getattr(optax.schedules, name, None)
    return obj


def _public(qualname: str):
    group, name = qualname.split(".")
    return getattr(jo if group == "optim" else js, name)


def _shared_names() -> list[str]:
    names = [f"optim.{n}" for n in jo.__all__
             if callable(getattr(jo, n)) and not isinstance(getattr(jo, n), type)]
    names += [f"schedules.{n}" for n in js.__all__ if n != "Schedule"]
    return sorted(names)


def test_every_public_name_is_classified():
    """A new public name must be given a twin (or be listed as having none)."""
    unclassified = [n for n in _shared_names() if n not in NO_TWIN and _optax_twin(n) is None]
    assert not unclassified, f"no optax twin found and not in NO_TWIN: {unclassified}"
    wrongly_untwinned = [n for n in NO_TWIN if _optax_twin(n) is not None]
    assert not wrongly_untwinned, f"listed in NO_TWIN but optax has them: {wrongly_untwinned}"


TWINNED = [n for n in _shared_names() if n not in NO_TWIN]

# ----------------------------------------------------------------------------- (a) signatures

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _positional(fn) -> list[tuple]:
    """(name, kind, default) of the parameters a positional call can reach."""
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in _POSITIONAL:
            out.append((p.name, "positional", p.default))
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            out.append(("*", "var-positional", None))  # chain(*transforms) vs (*args)
    return out


def signature_differences(ours, theirs) -> list[str]:
    """What a call ported from ``theirs`` would get wrong with ``ours``; [] if nothing."""
    a, b = _positional(ours), _positional(theirs)
    problems = []
    for i in range(max(len(a), len(b))):
        if i >= len(a):
            problems.append(f"optax's positional {b[i][0]}={b[i][2]!r} is missing")
        elif i >= len(b):
            problems.append(f"extra positional {a[i][0]} (jtricks' additions must be "
                            f"keyword-only)")
        elif a[i] != b[i]:
            problems.append(f"position {i}: jtricks {a[i][0]}={a[i][2]!r}, "
                            f"optax {b[i][0]}={b[i][2]!r}")
    # keyword-only options both have: same default
    ka = {p.name: p.default for p in inspect.signature(ours).parameters.values()
          if p.kind is inspect.Parameter.KEYWORD_ONLY}
    kb = {p.name: p.default for p in inspect.signature(theirs).parameters.values()
          if p.kind is inspect.Parameter.KEYWORD_ONLY}
    problems += [f"keyword-only {k}: jtricks default {ka[k]!r}, optax {kb[k]!r}"
                 for k in ka.keys() & kb.keys() if ka[k] != kb[k]]
    return problems


@pytest.mark.parametrize("qualname", TWINNED)
def test_positional_parameters_are_optax_s(qualname):
    problems = signature_differences(_public(qualname), _optax_twin(qualname))
    if qualname in ALLOWED:
        assert problems, f"{qualname} now matches optax: remove it from ALLOWED"
        return
    assert not problems, f"{qualname} vs optax: " + "; ".join(problems)


# ----------------------------------------------------------------------------- (b) numbers

MASK = {"w": True, "b": False}
_W0 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)
_B0 = np.array([0.1, -0.2, 0.3], np.float32)


def _params():
    return {"w": jnp.asarray(_W0), "b": jnp.asarray(_B0)}


def _grads(params, t):
    """Gradients that depend on the params and the step (the trajectories feed back)."""
    return {"w": 0.5 * params["w"] + jnp.sin(t + jnp.arange(6.0).reshape(2, 3)),
            "b": params["b"] - jnp.cos(2.0 * t + jnp.arange(3.0))}


_LOSSES = [1.0, 0.9, 0.9, 0.95, 0.9, 0.92, 0.91, 0.93]


def run_steps(tx, steps=8, value=False):
    """Per-step updates of ``tx`` following its own trajectory; also the final state."""
    params = _params()
    state = tx.init(params)
    out = []
    for t in range(steps):
        extra = {"value": jnp.float32(_LOSSES[t])} if value else {}
        updates, state = tx.update(_grads(params, float(t)), state, params, **extra)
        out.append(updates)
        params = optax.apply_updates(params, updates)
    return out, state


def _state_dtypes(state):
    return sorted(str(x.dtype) for x in jax.tree.leaves(state) if jnp.ndim(x) > 0)


# (qualname, args: module -> positional args, rtol). ``L`` is jtricks.optim or optax, so
# the wrappers get each library's own inner transformation. Every positional argument is
# set to a value other than its default, save those the comments name. ``rtol`` is
# relative to the largest update of the leaf: 0 is bit-identical; Adam's bias
# corrections round differently (a few ulps); a bf16 state buffer rounds in another order
# (optax multiplies the bf16 buffer by the decay in bf16, jtricks upcasts first).
EXACT, ADAM, BF16_TOL = 0.0, 3e-6, 2e-2
BF16 = jnp.bfloat16
TX_CASES = [
    ("optim.sgd", lambda L: (0.05, 0.8, True), EXACT),
    ("optim.sgd", lambda L: (0.05, 0.8, True, BF16), BF16_TOL),
    ("optim.adagrad", lambda L: (0.05, 0.2, 1e-6), EXACT),
    ("optim.rmsprop", lambda L: (0.01, 0.8, 1e-6, 0.1, False, True, 0.7, True), EXACT),
    ("optim.rmsprop", lambda L: (0.01, 0.8, 1e-6, 0.1, False, False, 0.7, True), EXACT),
    ("optim.rmsprop", lambda L: (0.01, 0.8, 1e-6, 0.1, False, True, 0.7, True, True), ADAM),
    ("optim.rmsprop", lambda L: (0.01, 0.8, 1e-6, 0.1, False, False, None, False, True),
     ADAM),
    ("optim.adadelta", lambda L: (0.5, 0.8, 1e-5, 0.05, MASK), EXACT),
    ("optim.adam", lambda L: (1e-2, 0.8, 0.99, 1e-6, 1e-9), ADAM),
    ("optim.adam", lambda L: (1e-2, 0.8, 0.99, 1e-6, 1e-9, BF16), BF16_TOL),
    ("optim.adamw", lambda L: (1e-2, 0.8, 0.99, 1e-6, 1e-9, None, 0.05, MASK), ADAM),
    ("optim.adamw", lambda L: (1e-2, 0.8, 0.99, 1e-6, 1e-9, BF16, 0.05, MASK), BF16_TOL),
    ("optim.scale", lambda L: (-0.3,), EXACT),
    ("optim.scale_by_learning_rate", lambda L: (0.05,), EXACT),
    ("optim.trace", lambda L: (0.7, True), EXACT),
    ("optim.trace", lambda L: (0.7, True, BF16), BF16_TOL),
    ("optim.scale_by_adagrad", lambda L: (0.2, 1e-6), EXACT),
    ("optim.scale_by_rms", lambda L: (0.8, 1e-6, 0.1, False), EXACT),
    ("optim.scale_by_rms", lambda L: (0.8, 1e-6, 0.1, False, True), ADAM),
    ("optim.scale_by_adadelta", lambda L: (0.8, 1e-5), EXACT),
    ("optim.scale_by_adam", lambda L: (0.8, 0.99, 1e-6, 1e-9), ADAM),
    ("optim.scale_by_adam", lambda L: (0.8, 0.99, 1e-6, 1e-9, BF16), BF16_TOL),
    ("optim.normalize_by_norm", lambda L: (2.0, 1e-3), EXACT),
    ("optim.add_decayed_weights", lambda L: (0.05, MASK), EXACT),
    ("optim.clip", lambda L: (0.05,), EXACT),
    ("optim.clip_by_global_norm", lambda L: (0.5,), EXACT),
    ("optim.identity", lambda L: (), EXACT),
    ("optim.chain", lambda L: (L.clip(0.5), L.trace(0.5), L.scale(-0.1)), EXACT),
    ("optim.masked", lambda L: (L.adam(1e-2, 0.8), MASK), 10 * ADAM),
    ("optim.apply_if_finite", lambda L: (L.adam(1e-2, 0.8), 1), EXACT),
    ("optim.flatten", lambda L: (L.adam(1e-2, 0.8),), 10 * ADAM),
    ("optim.reduce_on_plateau", lambda L: (0.5, 2, 1e-3, 0.01, 1, 2, 0.1), EXACT),
]


def compare_ported_call(ours, theirs, args, rtol, value=False):
    """Raises AssertionError unless ``ours(*args(jo))`` gives ``theirs(*args(optax))``'s
    updates at every step (and state buffers of the same dtypes)."""
    got, got_state = run_steps(ours(*args(jo)), value=value)
    want, want_state = run_steps(theirs(*args(optax)), value=value)
    for t, (g, w) in enumerate(zip(got, want)):
        for gl, wl in zip(jax.tree.leaves(g), jax.tree.leaves(w)):
            gl, wl = np.asarray(gl, np.float32), np.asarray(wl, np.float32)
            scale = float(np.max(np.abs(wl))) if wl.size else 0.0
            np.testing.assert_allclose(gl, wl, rtol=rtol, atol=rtol * scale,
                                       err_msg=f"step {t}")
    assert _state_dtypes(got_state) == _state_dtypes(want_state)


@pytest.mark.parametrize("qualname,args,rtol", TX_CASES,
                         ids=[f"{q.split('.')[1]}-{i}" for i, (q, _, _) in enumerate(TX_CASES)])
def test_ported_positional_call_gives_optax_s_numbers(qualname, args, rtol):
    compare_ported_call(_public(qualname), _optax_twin(qualname), args, rtol,
                        value=qualname == "optim.reduce_on_plateau")


# optax's keyword-only options that jtricks also has: same meaning, same numbers.
KEYWORD_CASES = [
    ("optim.adam", (1e-2, 0.8, 0.99, 1e-6, 1e-9), {"nesterov": True}),
    ("optim.adamw", (1e-2, 0.8, 0.99, 1e-6, 1e-9, None, 0.05, MASK), {"nesterov": True}),
    ("optim.scale_by_adam", (0.8, 0.99, 1e-6, 1e-9), {"nesterov": True}),
]


@pytest.mark.parametrize("qualname,args,kwargs", KEYWORD_CASES,
                         ids=[q.split(".")[1] for q, _, _ in KEYWORD_CASES])
def test_shared_keyword_only_option_gives_optax_s_numbers(qualname, args, kwargs):
    compare_ported_call(lambda *a: _public(qualname)(*a, **kwargs),
                        lambda *a: _optax_twin(qualname)(*a, **kwargs),
                        lambda L: args, ADAM)


def test_inject_hyperparams_ported_call():
    ours = jo.inject_hyperparams(jo.adam)(1e-2, 0.8, 0.99, 1e-6, 1e-9)
    theirs = optax.inject_hyperparams(optax.adam)(1e-2, 0.8, 0.99, 1e-6, 1e-9)
    got, _ = run_steps(ours)
    want, _ = run_steps(theirs)
    np.testing.assert_allclose(np.asarray(got[-1]["w"]), np.asarray(want[-1]["w"]), rtol=1e-6)


def test_every_twinned_transform_has_a_ported_call():
    covered = {q for q, _, _ in TX_CASES} | {"optim.inject_hyperparams", "optim.apply_updates"}
    missing = [n for n in TWINNED if n.startswith("optim.") and n not in covered]
    assert not missing, f"no ported-call case for {missing}"


SCHEDULE_CASES = [
    ("schedules.constant", lambda L: (0.3,)),
    ("schedules.exponential_decay", lambda L: (0.1, 30, 0.7, 10, True, 0.01)),
    ("schedules.exponential_decay", lambda L: (0.1, 30, 0.7, 10, False, 0.01)),
    ("schedules.exponential_decay", lambda L: (0.1, 30, 1.3, 10, False, 0.5)),
    ("schedules.piecewise_constant", lambda L: (0.1, {50: 0.5, 100: 0.2})),
    ("schedules.cosine_decay", lambda L: (0.1, 300, 0.05, 2.0)),
    ("schedules.warmup_cosine_decay", lambda L: (0.01, 0.1, 40, 400, 0.001, 2.0)),
    ("schedules.linear", lambda L: (0.5, 0.1, 70, 5)),
    ("schedules.one_cycle", lambda L: (1000, 0.1, 0.4, 10.0, 100.0)),
    ("schedules.join", lambda L: (
        [L.constant_schedule(0.1) if L is optax else L.constant(0.1),
         L.linear_schedule(0.1, 0.0, 50) if L is optax else L.linear(0.1, 0.0, 50)], [20])),
]


@pytest.mark.parametrize("qualname,args", SCHEDULE_CASES,
                         ids=[f"{q.split('.')[1]}-{i}" for i, (q, _) in enumerate(SCHEDULE_CASES)])
def test_ported_schedule_gives_optax_s_values(qualname, args):
    steps = jnp.arange(0, 1200, 7)
    ours = _public(qualname)(*args(js))
    theirs = _optax_twin(qualname)(*args(optax))
    np.testing.assert_allclose(np.asarray(jax.vmap(ours)(steps)),
                               np.asarray(jax.vmap(theirs)(steps)), rtol=1e-5, atol=1e-8)


def test_every_schedule_has_a_ported_call():
    covered = {q for q, _ in SCHEDULE_CASES}
    missing = [n for n in TWINNED if n.startswith("schedules.") and n not in covered]
    assert not missing, f"no ported-call case for {missing}"


# ----------------------------------------------------------------------------- the check can fail

def _old_adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, amsgrad=False, *, eps_root=0.0,
              mu_dtype=None, nu_dtype=None):
    """``adam`` as it was before: ``amsgrad`` fifth, where optax has ``eps_root``
    (and, as then, any truthy value taken for the flag: ``adam`` now refuses a float)."""
    return jo.adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, amsgrad=bool(amsgrad),
                   nu_dtype=nu_dtype)


def test_the_check_catches_the_old_adam_order():
    problems = signature_differences(_old_adam, optax.adam)
    assert any("position 4: jtricks amsgrad" in p for p in problems), problems
    with pytest.raises(AssertionError):
        compare_ported_call(_old_adam, optax.adam,
                            lambda L: (1e-2, 0.8, 0.99, 1e-6, 1e-9), rtol=1e-6)


def test_the_check_catches_the_old_exponential_decay_order():
    def old(init_value, decay_rate, transition_steps, staircase=False, end_value=None, *,
            transition_begin=0):
        return js.exponential_decay(init_value, transition_steps, decay_rate,
                                    transition_begin, staircase, end_value)

    assert signature_differences(old, optax.exponential_decay)
