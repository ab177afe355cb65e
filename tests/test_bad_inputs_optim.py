"""Bad inputs to ``jtricks.optim`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``).

Construction-time cases cover every hyperparameter of every factory in
``jtricks.optim.__all__`` (numbers, flags, dtypes, counts, masks, inner
transformations); update-time cases (``Bad``) cover the tree-shaped misuse that
only ``init`` / ``update`` / ``apply_updates`` can see.
"""

import jax
import jax.numpy as jnp
import optax
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error

from jtricks import optim

INF, NAN = float("inf"), float("nan")

# (factory, argument, positional arguments before it, a value out of its range or None)
NUMBERS = [
    (optim.sgd, "learning_rate", (), -0.1),
    (optim.sgd, "momentum", (0.1,), 1.0),
    (optim.adagrad, "learning_rate", (), -1.0),
    (optim.adagrad, "initial_accumulator_value", (0.1,), -1.0),
    (optim.adagrad, "eps", (0.1,), -1e-7),
    (optim.rmsprop, "learning_rate", (), -1e-3),
    (optim.rmsprop, "decay", (1e-3,), 1.0),
    (optim.rmsprop, "eps", (1e-3,), -1e-8),
    (optim.rmsprop, "initial_scale", (1e-3,), -0.1),
    (optim.rmsprop, "momentum", (1e-3,), 1.5),
    (optim.adadelta, "rho", (), 1.0),
    (optim.adadelta, "eps", (), 0.0),
    (optim.adadelta, "weight_decay", (), -1e-4),
    (optim.adam, "learning_rate", (), -1e-3),
    (optim.adam, "b1", (1e-3,), 1.0),
    (optim.adam, "b2", (1e-3,), -0.1),
    (optim.adam, "eps", (1e-3,), -1e-8),
    (optim.adam, "eps_root", (1e-3,), -1e-8),
    (optim.adamw, "learning_rate", (), -1e-3),
    (optim.adamw, "b1", (1e-3,), 1.5),
    (optim.adamw, "b2", (1e-3,), 1.0),
    (optim.adamw, "eps", (1e-3,), -1.0),
    (optim.adamw, "eps_root", (1e-3,), -1.0),
    (optim.adamw, "weight_decay", (1e-3,), -1e-4),
    (optim.add_decayed_weights, "weight_decay", (), -1e-4),
    (optim.add_l1_decay, "l1", (), -1e-4),
    (optim.clip, "max_delta", (), 0.0),
    (optim.clip_by_norm, "max_norm", (), 0.0),
    (optim.clip_by_global_norm, "max_norm", (), -1.0),
    (optim.normalize_by_norm, "scale_factor", (), None),
    (optim.normalize_by_norm, "eps", (), -1e-6),
    (optim.reduce_on_plateau, "factor", (), 1.0),
    (optim.reduce_on_plateau, "rtol", (), 2.0),
    (optim.reduce_on_plateau, "atol", (), -1.0),
    (optim.reduce_on_plateau, "min_scale", (), -0.1),
    (optim.scale, "step_size", (), None),
    (optim.scale_by_adadelta, "rho", (), -0.5),
    (optim.scale_by_adadelta, "eps", (), -1e-6),
    (optim.scale_by_adagrad, "initial_accumulator_value", (), -0.1),
    (optim.scale_by_adagrad, "eps", (), -1.0),
    (optim.scale_by_adam, "b1", (), -0.9),
    (optim.scale_by_adam, "b2", (), 1.0),
    (optim.scale_by_adam, "eps", (), -1e-8),
    (optim.scale_by_adam, "eps_root", (), -1e-8),
    (optim.scale_by_learning_rate, "learning_rate", (), -0.1),
    (optim.scale_by_rms, "decay", (), 1.0),
    (optim.scale_by_rms, "eps", (), -1e-8),
    (optim.scale_by_rms, "initial_scale", (), -1.0),
    (optim.trace, "decay", (), 1.0),
]

# Arguments where None means something (documented): adadelta's learning rate (no scaling, as
# optax), scale_by_learning_rate's (optax's default), sgd's / rmsprop's momentum (none).
NONE_ALLOWED = {("adadelta", "learning_rate"), ("scale_by_learning_rate", "learning_rate"),
                ("sgd", "momentum"), ("rmsprop", "momentum")}

FLAGS = [
    (optim.sgd, "nesterov", (0.1,)),
    (optim.rmsprop, "eps_in_sqrt", (1e-3,)),
    (optim.rmsprop, "centered", (1e-3,)),
    (optim.rmsprop, "nesterov", (1e-3,)),
    (optim.rmsprop, "bias_correction", (1e-3,)),
    (optim.adam, "nesterov", (1e-3,)),
    (optim.adam, "amsgrad", (1e-3,)),
    (optim.adamw, "nesterov", (1e-3,)),
    (optim.scale_by_adam, "nesterov", ()),
    (optim.scale_by_adam, "amsgrad", ()),
    (optim.scale_by_rms, "eps_in_sqrt", ()),
    (optim.scale_by_rms, "centered", ()),
    (optim.scale_by_rms, "bias_correction", ()),
    (optim.trace, "nesterov", (0.9,)),
    (optim.scale_by_learning_rate, "flip_sign", (0.1,)),
]

DTYPES = [
    (optim.sgd, "accumulator_dtype", (0.1,)),
    (optim.trace, "accumulator_dtype", (0.9,)),
    (optim.adam, "mu_dtype", (1e-3,)),
    (optim.adam, "nu_dtype", (1e-3,)),
    (optim.adamw, "mu_dtype", (1e-3,)),
    (optim.adamw, "nu_dtype", (1e-3,)),
    (optim.scale_by_adam, "mu_dtype", ()),
    (optim.scale_by_adam, "nu_dtype", ()),
]


def _number_cases():
    cases = []
    for fn, arg, args, out_of_range in NUMBERS:
        cases += [
            bad("optim", fn, arg, INF, *args),
            bad("optim", fn, arg, True, *args, exc=TypeError),
            bad("optim", fn, arg, [0.1], *args, exc=TypeError),
        ]
        if out_of_range is not None:
            cases.append(bad("optim", fn, arg, out_of_range, *args))
        if (fn.__name__, arg) not in NONE_ALLOWED:
            cases.append(bad("optim", fn, arg, None, *args, exc=TypeError))
    # NaN, -inf, strings and complex numbers, once per optimizer's learning rate
    for fn in (optim.sgd, optim.adagrad, optim.rmsprop, optim.adadelta, optim.adam, optim.adamw):
        cases += [
            bad("optim", fn, "learning_rate", NAN),
            bad("optim", fn, "learning_rate", "1e-3", exc=TypeError),
            bad("optim", fn, "learning_rate", 1e-3 + 1j, exc=TypeError),
        ]
    cases += [
        bad("optim", optim.adam, "learning_rate", -INF),
        bad("optim", optim.scale, "step_size", -INF),
        bad("optim", optim.scale, "step_size", NAN),
        bad("optim", optim.adam, "eps", jnp.array([1e-8, 1e-8]), 1e-3, exc=TypeError),
        bad("optim", optim.adam, "learning_rate", jnp.array(-0.1), shown="-0.1"),
        bad("optim", optim.adadelta, "learning_rate", INF),
        bad("optim", optim.adadelta, "learning_rate", "1.0", exc=TypeError),
    ]
    return cases


def _flag_cases():
    cases = []
    for fn, arg, args in FLAGS:
        cases += [bad("optim", fn, arg, "no", *args, exc=TypeError),
                  bad("optim", fn, arg, 1, *args, exc=TypeError),
                  bad("optim", fn, arg, None, *args, exc=TypeError)]
    return cases


def _dtype_cases():
    cases = []
    for fn, arg, args in DTYPES:
        cases += [bad("optim", fn, arg, "float33", *args, exc=TypeError),
                  bad("optim", fn, arg, jnp.int32, *args)]
    return cases


def _count_cases():
    sgd = optim.sgd(0.1)
    return [
        bad("optim", optim.apply_if_finite, "max_consecutive_errors", 2.5, sgd, exc=TypeError),
        bad("optim", optim.apply_if_finite, "max_consecutive_errors", -1, sgd),
        bad("optim", optim.apply_if_finite, "max_consecutive_errors", True, sgd, exc=TypeError),
        bad("optim", optim.apply_if_finite, "max_consecutive_errors", INF, sgd, exc=TypeError),
        bad("optim", optim.apply_if_finite, "max_consecutive_errors", "5", sgd, exc=TypeError),
        bad("optim", optim.accumulate_gradients, "every_k", 0, sgd),
        bad("optim", optim.accumulate_gradients, "every_k", 2.5, sgd, exc=TypeError),
        bad("optim", optim.accumulate_gradients, "every_k", True, sgd, exc=TypeError),
        bad("optim", optim.accumulate_gradients, "every_k", None, sgd, exc=TypeError),
        bad("optim", optim.reduce_on_plateau, "patience", 0),
        bad("optim", optim.reduce_on_plateau, "patience", 2.5, exc=TypeError),
        bad("optim", optim.reduce_on_plateau, "patience", jnp.array(2.5), exc=TypeError),
        bad("optim", optim.apply_if_finite, "max_consecutive_errors", jnp.array([1, 2]), sgd,
            exc=TypeError),
        bad("optim", optim.reduce_on_plateau, "cooldown", -1),
        bad("optim", optim.reduce_on_plateau, "cooldown", 1.5, exc=TypeError),
        bad("optim", optim.reduce_on_plateau, "accumulation_size", 0),
        bad("optim", optim.reduce_on_plateau, "accumulation_size", 1.5, exc=TypeError),
    ]


def _transform_and_mask_cases():
    sgd = optim.sgd(0.1)
    return [
        bad("optim", optim.masked, "inner", 3, mask={"w": True}, exc=TypeError),
        bad("optim", optim.apply_if_finite, "inner", None, max_consecutive_errors=5,
            exc=TypeError),
        bad("optim", optim.accumulate_gradients, "tx", "adam", every_k=2, exc=TypeError),
        bad("optim", optim.flatten, "tx", optim.adam, exc=TypeError, shown="function adam"),
        Bad("optim", "chain(sgd(0.1), 3)", lambda: optim.chain(sgd, 3), "chain argument 1",
            "3", TypeError),
        bad("optim", optim.masked, "mask", {"w": 1}, sgd, exc=TypeError, shown="['w']=1"),
        bad("optim", optim.masked, "mask", "yes", sgd, exc=TypeError),
        bad("optim", optim.masked, "mask", [True, 0.5], sgd, exc=TypeError, shown="[1]=0.5"),
        bad("optim", optim.add_decayed_weights, "mask", {"w": "no"}, 1e-4, exc=TypeError,
            shown="['w']='no'"),
        bad("optim", optim.add_l1_decay, "mask", {"b": None, "w": 2}, 1e-4, exc=TypeError,
            shown="['w']=2"),
        bad("optim", optim.adamw, "mask", {"w": jnp.ones(3, bool)}, 1e-3, exc=TypeError,
            shown="array(3,) [ True,  True,  True]"),
        bad("optim", optim.adadelta, "weight_decay_mask", 0.5, weight_decay=1e-4,
            exc=TypeError),
        bad("optim", optim.inject_hyperparams, "inner_factory", 3, exc=TypeError),
        bad("optim", optim.inject_hyperparams, "static_args", "lr", optim.adam),
        bad("optim", optim.inject_hyperparams, "static_args", ("lr",), optim.adam),
        Bad("optim", "inject_hyperparams(adam)(learning_rate=inf)",
            lambda: optim.inject_hyperparams(optim.adam)(learning_rate=INF), "learning_rate",
            "inf"),
        Bad("optim", "inject_hyperparams(sgd)(0.1, momentum=[0.9])",
            lambda: optim.inject_hyperparams(optim.sgd)(0.1, momentum=[0.9]), "momentum",
            "[0.9]", TypeError),
    ]


# ----------------------------------------------------------------------------- update time

P = {"w": jnp.ones(3), "b": jnp.zeros(2)}
WRONG_SHAPE = {"w": jnp.ones((3, 1)), "b": jnp.zeros(2)}
INT_P = {"w": jnp.ones(3, jnp.int32), "b": jnp.zeros(2)}


def _update(tx, grads, params=P, pass_params=False):
    state = tx.init(params)
    return tx.update(grads, state, params if pass_params else None)


def _foreign(tx, other):
    return tx.update(P, other.init(P))


def _traced_mask():
    tx = optim.masked(optim.sgd(0.1), lambda p: jax.tree.map(lambda x: jnp.all(x > 0), p))
    return jax.jit(tx.update)(P, tx.init(P))


def _update_cases():
    shape_of = {"w": "(3, 1)"}
    cases = [
        Bad("optim", f"{name}(...).update(grads of shape (3, 1) for (3,) params)",
            lambda make=make: _update(make(), WRONG_SHAPE), "updates['w']", shape_of["w"])
        for name, make in [
            ("adam", lambda: optim.adam(1e-3)),
            ("sgd", lambda: optim.sgd(0.1, momentum=0.9)),
            ("rmsprop", lambda: optim.rmsprop(1e-3)),
            ("adagrad", lambda: optim.adagrad(0.1)),
            ("adadelta", lambda: optim.adadelta(1.0)),
            ("accumulate_gradients", lambda: optim.accumulate_gradients(optim.sgd(0.1), 2)),
        ]
    ]
    cases += [
        Bad("optim", "sgd(0.1).update(grads of shape (3, 1), state, params)",
            lambda: _update(optim.sgd(0.1), WRONG_SHAPE, pass_params=True), "updates['w']",
            "(3, 1)"),
        Bad("optim", "clip_by_global_norm(1.0).update(grads of shape (3, 1), state, params)",
            lambda: _update(optim.clip_by_global_norm(1.0), WRONG_SHAPE, pass_params=True),
            "updates['w']", "(3, 1)"),
        Bad("optim", "flatten(adam(1e-3)).update(a list of grads, state, params)",
            lambda: _update(optim.flatten(optim.adam(1e-3)), [P["w"], P["b"]],
                            pass_params=True), "updates", "PyTreeDef([*, *])"),
        Bad("optim", "adam(1e-3).update(grads missing a leaf)",
            lambda: _update(optim.adam(1e-3), {"w": P["w"]}), "updates", "PyTreeDef({'w': *})"),
        Bad("optim", "adam(1e-3).update(int32 grads)",
            lambda: _update(optim.adam(1e-3), {"w": jnp.ones(3, jnp.int32), "b": P["b"]}),
            "updates['w']", "int32", TypeError),
        Bad("optim", "adam(1e-3).init(int32 params)", lambda: optim.adam(1e-3).init(INT_P),
            "params['w']", "int32", TypeError),
        Bad("optim", "sgd(0.1).init(int32 params)", lambda: optim.sgd(0.1).init(INT_P),
            "params['w']", "int32", TypeError),
        Bad("optim", "rmsprop(1e-3).init(bool params)",
            lambda: optim.rmsprop(1e-3).init({"w": jnp.ones(2, bool)}), "params['w']", "bool",
            TypeError),
        Bad("optim", "apply_updates(int32 params, float updates)",
            lambda: optim.apply_updates(INT_P, P), "params['w']", "int32", TypeError),
        Bad("optim", "apply_updates(params, updates of shape (3, 1))",
            lambda: optim.apply_updates(P, WRONG_SHAPE), "updates['w']", "(3, 1)"),
        Bad("optim", "apply_updates(params, a list of updates)",
            lambda: optim.apply_updates(P, [P["b"], P["w"]]), "updates", "PyTreeDef([*, *])"),
        Bad("optim", "adam(1e-3).update(grads, the state of sgd(0.1, momentum=0.9))",
            lambda: _foreign(optim.adam(1e-3), optim.sgd(0.1, momentum=0.9)), "state",
            "TraceState", TypeError),
        Bad("optim", "scale_by_adam().update(grads, optax.adam's state)",
            lambda: _foreign(optim.scale_by_adam(), optax.scale_by_adam()), "state",
            "optax", TypeError),
        Bad("optim", "sgd(0.1).update(grads, the state of adam(1e-3))",
            lambda: _foreign(optim.sgd(0.1), optim.adam(1e-3)), "state", "ScaleByAdamState",
            TypeError),
        Bad("optim", "adam(1e-3).update(grads, the state of clip_by_global_norm(1.0))",
            lambda: _foreign(optim.adam(1e-3), optim.clip_by_global_norm(1.0)), "state",
            "ClipByGlobalNormState", TypeError),
        Bad("optim", "rmsprop(1e-3, centered=True).update(grads, rmsprop's state)",
            lambda: _foreign(optim.rmsprop(1e-3, centered=True), optim.rmsprop(1e-3)), "state",
            "ScaleByRmsState", TypeError),
        Bad("optim", "adam(1e-3, amsgrad=True).update(grads, adam's state)",
            lambda: _foreign(optim.adam(1e-3, amsgrad=True), optim.adam(1e-3)), "state",
            "ScaleByAdamState", TypeError),
        Bad("optim", "apply_if_finite(adam).update(grads, adam's state)",
            lambda: _foreign(optim.apply_if_finite(optim.adam(1e-3), 5), optim.adam(1e-3)),
            "state", "tuple of 2 states", TypeError),
        Bad("optim", "masked(adam).update(grads, a dict)",
            lambda: optim.masked(optim.adam(1e-3), {"w": True, "b": False}).update(P, {}),
            "state", "dict", TypeError),
        Bad("optim", "masked(sgd, mask of ints).init(params)",
            lambda: optim.masked(optim.sgd(0.1), lambda p: {"w": 1, "b": 0}).init(P),
            "mask['b']", "0", TypeError),
        Bad("optim", "masked(sgd, mask of another structure).init(params)",
            lambda: optim.masked(optim.sgd(0.1), {"a": True}).init(P), "mask",
            "{'a': True}"),
        Bad("optim", "jit(masked(sgd, mask computed from values).update)",
            _traced_mask, "mask['b']", "traced", TypeError),
        Bad("optim", "reduce_on_plateau().update(grads, state) without value",
            lambda: _update(optim.reduce_on_plateau(), P), "value", "value=loss", TypeError),
        Bad("optim", "add_decayed_weights(1e-4).update(grads, state) without params",
            lambda: _update(optim.add_decayed_weights(1e-4), P), "params", "update(updates"),
    ]
    return cases


CASES = (_number_cases() + _flag_cases() + _dtype_cases() + _count_cases()
         + _transform_and_mask_cases() + _update_cases())


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
