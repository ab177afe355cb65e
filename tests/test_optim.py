"""jtricks.optim optimizers: equal to optax, convergent, jit/vmap friendly, interoperable."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo

# ----------------------------------------------------------------------------- fixtures


def _mlp_params():
    """A 4-8-1 MLP, built with NumPy (eager JAX ops compile one by one, slowly)."""
    rng = np.random.default_rng(1)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return {
        "l1": {"w": f32(rng.normal(size=(4, 8)) * 0.5), "b": f32(np.full(8, 0.1))},
        "l2": {"w": f32(rng.normal(size=(8, 1)) * 0.5), "b": f32(np.zeros(1))},
    }


_X = jnp.asarray(np.random.default_rng(0).normal(size=(16, 4)), jnp.float32)
_Y = jnp.asarray(np.sin(np.asarray(_X).sum(axis=1, keepdims=True)), jnp.float32)


def _mlp_loss(params):
    h = jnp.tanh(_X @ params["l1"]["w"] + params["l1"]["b"])
    return jnp.mean((h @ params["l2"]["w"] + params["l2"]["b"] - _Y) ** 2)


def _run(tx, params, steps, loss=_mlp_loss):
    """``steps`` optimizer steps in one lax.scan; returns params and the loss curve."""

    def body(carry, _):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p)
        return (jo.apply_updates(p, u), s), value

    (params, _), losses = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return params, losses


def _decay_matrices(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


# (name, jtricks optimizer, optax optimizer of the same name and arguments)
OPTIMIZERS = [
    ("sgd", lambda: jo.sgd(0.1), lambda: optax.sgd(0.1)),
    ("sgd_momentum", lambda: jo.sgd(0.05, momentum=0.9), lambda: optax.sgd(0.05, momentum=0.9)),
    ("sgd_nesterov", lambda: jo.sgd(0.05, 0.9, nesterov=True),
     lambda: optax.sgd(0.05, 0.9, nesterov=True)),
    ("adagrad", lambda: jo.adagrad(0.1), lambda: optax.adagrad(0.1)),
    ("rmsprop", lambda: jo.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
    ("rmsprop_centered", lambda: jo.rmsprop(0.01, centered=True),
     lambda: optax.rmsprop(0.01, centered=True)),
    ("rmsprop_momentum", lambda: jo.rmsprop(0.01, momentum=0.9, nesterov=True),
     lambda: optax.rmsprop(0.01, momentum=0.9, nesterov=True)),
    ("rmsprop_eps_outside", lambda: jo.rmsprop(0.01, eps=1e-6, eps_in_sqrt=False),
     lambda: optax.rmsprop(0.01, eps=1e-6, eps_in_sqrt=False)),
    ("adadelta", lambda: jo.adadelta(1.0), lambda: optax.adadelta(1.0)),
    ("adam", lambda: jo.adam(1e-2), lambda: optax.adam(1e-2)),
    ("amsgrad", lambda: jo.adam(1e-2, amsgrad=True), lambda: optax.amsgrad(1e-2)),
    ("adamw_mask", lambda: jo.adamw(1e-2, weight_decay=0.1, mask=_decay_matrices),
     lambda: optax.adamw(1e-2, weight_decay=0.1, mask=_decay_matrices)),
]
IDS = [o[0] for o in OPTIMIZERS]


# ----------------------------------------------------------------------------- equal to optax


@pytest.mark.parametrize("name,make,make_ref", OPTIMIZERS, ids=IDS)
def test_matches_optax_on_mlp(name, make, make_ref):
    """100 steps on a small MLP: every parameter within 1e-6 relative of optax's."""

    @jax.jit
    def both(params):
        return _run(make(), params, 100), _run(make_ref(), params, 100)

    (p, losses), (p_ref, losses_ref) = both(_mlp_params())
    assert float(losses[-1]) < float(losses[0])  # it trains at all
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(losses, losses_ref, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- convergence


def _quadratic(x):
    a = jnp.array([1.0, 10.0])
    return 0.5 * jnp.sum(a * (x - jnp.array([1.0, -2.0])) ** 2)


def _rosenbrock(x):
    return (1 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


# (name, optimizer for the quadratic, optimizer for Rosenbrock, Rosenbrock steps)
_ADADELTA_ROSEN = jo.schedules.cosine_decay(0.2, 10_000)  # adadelta needs its step annealed here
CONVERGENCE = [
    ("sgd", jo.sgd(0.1), jo.sgd(2e-3), 5000),
    ("sgd_momentum", jo.sgd(0.05, 0.9), jo.sgd(4e-4, 0.9), 5000),
    ("sgd_nesterov", jo.sgd(0.05, 0.9, nesterov=True), jo.sgd(4e-4, 0.9, nesterov=True), 5000),
    ("adagrad", jo.adagrad(0.5), jo.adagrad(0.3), 10_000),
    ("rmsprop", jo.rmsprop(0.01), jo.rmsprop(2e-3), 5000),
    ("rmsprop_centered", jo.rmsprop(0.01, centered=True), jo.rmsprop(1e-3, centered=True), 5000),
    ("rmsprop_momentum", jo.rmsprop(1e-3, momentum=0.9), jo.rmsprop(1e-4, momentum=0.9), 5000),
    ("rmsprop_eps_outside", jo.rmsprop(0.01, eps_in_sqrt=False),
     jo.rmsprop(2e-3, eps_in_sqrt=False), 5000),
    ("adadelta", jo.adadelta(10.0), jo.adadelta(_ADADELTA_ROSEN), 10_000),
    ("adam", jo.adam(0.1), jo.adam(0.02), 5000),
    ("amsgrad", jo.adam(0.1, amsgrad=True), jo.adam(0.2, amsgrad=True), 10_000),
    ("adamw", jo.adamw(0.1, weight_decay=1e-4), jo.adamw(0.02, weight_decay=1e-4), 5000),
]


@pytest.mark.parametrize("name,tx_quad,tx_rosen,steps", CONVERGENCE, ids=[c[0] for c in CONVERGENCE])
def test_converges_on_quadratic_and_rosenbrock(name, tx_quad, tx_rosen, steps):
    @jax.jit
    def both():
        xq, _ = _run(tx_quad, jnp.zeros(2), 500, _quadratic)
        xr, _ = _run(tx_rosen, jnp.array([-1.0, 1.5]), steps, _rosenbrock)
        return xq, xr

    xq, xr = both()
    np.testing.assert_allclose(xq, [1.0, -2.0], atol=1e-2)
    np.testing.assert_allclose(xr, [1.0, 1.0], atol=3e-2)


# ----------------------------------------------------------------------------- jit / vmap


def test_no_recompile_on_second_update_or_new_learning_rate():
    traces = []

    @jax.jit
    def step(params, state, grads, lr):
        traces.append(1)  # runs only while tracing
        updates, state = jo.adam(lr).update(grads, state, params)
        return jo.apply_updates(params, updates), state

    params = _mlp_params()
    state = jo.adam(1e-3).init(params)
    grads = jax.jit(jax.grad(_mlp_loss))(params)
    params, state = step(params, state, grads, jnp.float32(1e-3))
    params, state = step(params, state, grads, jnp.float32(1e-3))
    assert len(traces) == 1
    params2, _ = step(params, state, grads, jnp.float32(3e-2))
    assert len(traces) == 1
    # ... and the new learning rate was used.
    ref, _ = jax.jit(jo.adam(3e-2).update)(grads, state, params)
    np.testing.assert_allclose(params2["l1"]["w"], params["l1"]["w"] + ref["l1"]["w"], atol=1e-6)


@pytest.mark.parametrize("make", [lambda lr: jo.adam(lr), lambda lr: jo.sgd(lr, momentum=0.9)],
                         ids=["adam", "sgd_momentum"])
def test_vmap_over_learning_rates_equals_separate_runs(make):
    lrs = jnp.geomspace(1e-3, 1e-1, 8).astype(jnp.float32)
    traces = []

    def train(lr):
        traces.append(1)
        return _run(make(lr), _mlp_params(), 10)[1]

    swept = jax.jit(jax.vmap(train))(lrs)
    assert len(traces) == 1  # one program for the whole sweep
    single = jax.jit(train)
    for i, lr in enumerate(lrs):
        np.testing.assert_allclose(swept[i], single(lr), rtol=1e-5, atol=1e-7)


def test_schedule_learning_rate_matches_optax():
    sched = jo.schedules.exponential_decay(0.05, decay_rate=0.5, transition_steps=20)
    ref_sched = optax.exponential_decay(0.05, transition_steps=20, decay_rate=0.5)

    @jax.jit
    def both(params):
        return (_run(jo.sgd(sched, momentum=0.9), params, 60)[1],
                _run(optax.sgd(ref_sched, momentum=0.9), params, 60)[1])

    a, b = both(_mlp_params())
    np.testing.assert_allclose(a, b, rtol=1e-6)


# ----------------------------------------------------------------------------- interop


def test_jtricks_inside_optax_chain_and_optax_inside_jtricks_chain():
    params = _mlp_params()

    @jax.jit
    def runs(params):
        pure = _run(jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-2)), params, 30)[1]
        in_optax = _run(optax.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-2)), params, 30)[1]
        optax_in = _run(jo.chain(optax.clip_by_global_norm(1.0), jo.adam(1e-2)), params, 30)[1]
        return pure, in_optax, optax_in

    pure, in_optax, optax_in = runs(params)
    np.testing.assert_allclose(in_optax, pure, rtol=1e-6)
    np.testing.assert_allclose(optax_in, pure, rtol=1e-6)


def test_optax_extra_args_transform_inside_jtricks_chain():
    """optax.contrib.reduce_on_plateau receives value= through jtricks.optim.chain."""
    tx = jo.chain(jo.sgd(0.1), optax.contrib.reduce_on_plateau(factor=0.5, patience=1))
    params = jnp.ones(3)
    state = tx.init(params)
    for _ in range(4):
        updates, state = jax.jit(tx.update)(jnp.ones(3), state, params, value=jnp.float32(1.0))
    assert float(state[1].scale) < 1.0


def test_flax_train_state():
    from flax.training import train_state

    params = _mlp_params()
    tx = jo.adamw(1e-2, weight_decay=0.1)
    state = train_state.TrainState.create(apply_fn=None, params=params, tx=tx)

    @jax.jit
    def step(state):
        return state.apply_gradients(grads=jax.grad(_mlp_loss)(state.params))

    for _ in range(10):
        state = step(state)
    expected, _ = jax.jit(lambda p: _run(tx, p, 10))(params)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_flax_nnx_optimizer():
    from flax import nnx

    model = nnx.Linear(4, 1, rngs=nnx.Rngs(0))
    params0 = nnx.state(model, nnx.Param)
    raw = jax.tree.map(lambda x: x, nnx.to_pure_dict(params0))
    optimizer = nnx.Optimizer(model, jo.adam(1e-2), wrt=nnx.Param)

    def loss_fn(m):
        return jnp.mean((m(_X) - _Y) ** 2)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(loss_fn)(model)
        optimizer.update(model, grads)

    for _ in range(5):
        step(model, optimizer)

    def pure_loss(p):
        return jnp.mean((_X @ p["kernel"] + p["bias"] - _Y) ** 2)

    expected, _ = jax.jit(lambda p: _run(jo.adam(1e-2), p, 5, pure_loss))(raw)
    got = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    np.testing.assert_allclose(got["kernel"], expected["kernel"], rtol=1e-5)
    np.testing.assert_allclose(got["bias"], expected["bias"], rtol=1e-5)


# ----------------------------------------------------------------------------- bad input


def _mask_all(p):
    return jax.tree.map(lambda _: True, p)


BAD = [
    (lambda: jo.sgd(-0.1), "learning_rate", "-0.1"),
    (lambda: jo.adam(-1e-3), "learning_rate", "-0.001"),
    (lambda: jo.sgd(0.1, momentum=1.0), "decay", "1.0"),
    (lambda: jo.rmsprop(0.1, decay=1.5), "decay", "1.5"),
    (lambda: jo.adam(1e-3, b1=1.0), "b1", "1.0"),
    (lambda: jo.adam(1e-3, b2=-0.1), "b2", "-0.1"),
    (lambda: jo.adadelta(1.0, rho=1.0), "rho", "1.0"),
    (lambda: jo.adam(1e-3, eps=-1e-8), "eps", "-1e-08"),
    (lambda: jo.adagrad(0.1, eps=-1.0), "eps", "-1.0"),
    (lambda: jo.adamw(1e-3, weight_decay=-1.0), "weight_decay", "-1.0"),
    (lambda: jo.clip_by_global_norm(0.0), "max_norm", "0.0"),
    (lambda: jo.clip_by_norm(-1.0), "max_norm", "-1.0"),
    (lambda: jo.clip(0), "max_abs", "0"),
    (lambda: jo.accumulate_gradients(jo.sgd(0.1), 0), "every_k", "0"),
    (lambda: jo.apply_if_finite(jo.sgd(0.1), -1), "max_consecutive_errors", "-1"),
    (lambda: jo.reduce_on_plateau(factor=1.5), "factor", "1.5"),
    (lambda: jo.schedules.exponential_decay(0.1, 0.5, transition_steps=0), "transition_steps", "0"),
    (lambda: jo.schedules.per_epoch(0.1, 0.98, steps_per_epoch=-3), "steps_per_epoch", "-3"),
    (lambda: jo.schedules.cosine_decay(0.1, decay_steps=0), "decay_steps", "0"),
    (lambda: jo.schedules.warmup_cosine_decay(0.0, 0.1, 0, 100), "warmup_steps", "0"),
    (lambda: jo.schedules.one_cycle(0, 0.1), "transition_steps", "0"),
    (lambda: jo.schedules.join([jo.schedules.constant(1.0)] * 3, [20, 10]), "boundaries", "[20, 10]"),
    (lambda: jo.schedules.piecewise_constant(0.1, [(200, 0.1), (100, 0.1)]),
     "boundaries_and_scales", "(200, 0.1), (100, 0.1)"),
]


@pytest.mark.parametrize("build,arg,value", BAD, ids=[f"{b[1]}={b[2]}" for b in BAD])
def test_bad_input_raises_value_error_naming_argument_and_value(build, arg, value):
    with pytest.raises(ValueError) as info:
        build()
    assert arg in str(info.value) and value in str(info.value)


@pytest.mark.parametrize("make", [lambda: jo.adam(1e-3), lambda: jo.sgd(0.1, momentum=0.9),
                                  lambda: jo.rmsprop(0.1), lambda: jo.adagrad(0.1),
                                  lambda: jo.adadelta(1.0), lambda: jo.adamw(1e-3)],
                         ids=["adam", "sgd_momentum", "rmsprop", "adagrad", "adadelta", "adamw"])
def test_update_with_other_tree_structure_names_both_structures(make):
    tx = make()
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    state = tx.init(params)
    grads = {"a": jnp.ones(2), "c": jnp.ones(3)}
    with pytest.raises(ValueError) as info:
        tx.update(grads, state, grads)
    msg = str(info.value)
    assert str(jax.tree.structure(grads)) in msg and str(jax.tree.structure(params)) in msg


def test_traced_hyperparameters_skip_checks():
    """Checks need concrete values; traced hyperparameters build fine under jit."""

    @jax.jit
    def build_and_step(lr, b1, max_norm):
        tx = jo.chain(jo.clip_by_global_norm(max_norm), jo.adam(lr, b1=b1))
        p = jnp.ones(3)
        return tx.update(jnp.ones(3), tx.init(p), p)[0]

    out = build_and_step(0.1, 0.9, 1.0)
    assert out.shape == (3,) and bool(jnp.all(jnp.isfinite(out)))


def test_all_is_complete_and_importable():
    import jtricks.optim

    for name in jtricks.optim.__all__:
        assert getattr(jtricks.optim, name) is not None
    public = {n for n in dir(jtricks.optim) if not n.startswith("_")}
    assert public <= set(jtricks.optim.__all__) | {"annotations"}
