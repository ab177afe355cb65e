"""jtricks.optim optimizers: equal to optax, convergent, jit/vmap friendly, interoperable."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtricks.optim as jo
from jtricks import _registry as registry

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


# Every optimizer configuration of the registry with an optax counterpart (name, jtricks, optax)
# ...
REGISTRY = [(c.id, c.build, c.build_optax) for c in registry.configs("optimizer")
            if c.optax is not None]
# ... and the interop cases, which combine several factories (not rows of the registry).
INTEROP = [
    # Interop: jtricks inside optax.chain, optax inside jtricks.optim.chain.
    ("jtricks_in_optax_chain", lambda: optax.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-2)),
     lambda: jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-2))),
    # The reference is optax's own chain of the same optax clip, not jtricks' clip: jtricks'
    # multiplies by c / norm where optax divides by norm and multiplies by c (a rounding apart
    # when clipping; jtricks/optim/_clipping.py says why), and even where the two clips gave
    # the same bits (measured before that change), fused with Adam's
    # ``nu = b2 * nu + (1 - b2) * g**2`` XLA:CPU contracts a different product into the FMA (optax's select feeds the kernel: fma(nu, b2,
    # ...); jtricks' scalar where: fma(g**2, 1 - b2, ...)), so nu differs in the last bit from
    # step 2 on and 100 steps amplify it to ~3e-6 relative. The same maths, two roundings; the
    # row checks that an optax transformation inside jo.chain computes exactly what it
    # computes in optax.chain (and jo.adam exactly optax.adam), bit for bit here.
    ("optax_in_jtricks_chain", lambda: jo.chain(optax.clip_by_global_norm(1.0), jo.adam(1e-2)),
     lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))),
    ("jtricks_in_optax_inject_hyperparams",
     lambda: optax.inject_hyperparams(jo.adam)(learning_rate=1e-2, b1=0.8),
     lambda: jo.adam(1e-2, **{k: jnp.float32(v) for k, v in
                              dict(b1=0.8, b2=0.999, eps=1e-8, eps_root=0.0).items()})),
    # Hyperparameters in the state equal the same float32 arrays passed directly.
    ("inject_hyperparams", lambda: jo.inject_hyperparams(jo.adamw)(
        jo.schedules.per_epoch(0.05, 0.5, 10), b1=0.8, weight_decay=0.1, mask=_decay_matrices),
     lambda: jo.adamw(jo.schedules.per_epoch(0.05, 0.5, 10), **{
         k: jnp.float32(v) for k, v in dict(b1=0.8, b2=0.999, eps=1e-8, eps_root=0.0,
                                            weight_decay=0.1).items()}, mask=_decay_matrices)),
]
OPTIMIZERS = REGISTRY + INTEROP
IDS = [o[0] for o in OPTIMIZERS]


# ----------------------------------------------------------------------------- equal to optax


def _mismatches(check, names):
    """Runs ``check(name)`` for every name; returns the failures' messages (all of them)."""
    failures = []
    for name in names:
        try:
            check(name)
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    return failures


def test_matches_optax_on_mlp():
    """100 steps on a small MLP: every parameter within 1e-6 relative of optax's.

    Every optimizer configuration of the registry (``jtricks/_registry.py``) and the
    interop cases. The whole table is one compiled program (one compilation costs far
    less than twenty on a loaded 2-core machine, and pytest-xdist cannot split it);
    every row is checked and every failing row reported.
    """

    @jax.jit
    def all_runs(params):
        return {name: (_run(make(), params, 100), _run(make_ref(), params, 100))
                for name, make, make_ref in OPTIMIZERS}

    runs = all_runs(_mlp_params())

    def check(name):
        (p, losses), (p_ref, losses_ref) = runs[name]
        assert float(losses[-1]) < float(losses[0])  # it trains at all
        for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p_ref)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(losses, losses_ref, rtol=1e-6, atol=1e-7)

    assert not (failures := _mismatches(check, IDS)), "\n".join(failures)


# ----------------------------------------------------------------------------- convergence


def _quadratic(x):
    a = jnp.array([1.0, 10.0])
    return 0.5 * jnp.sum(a * (x - jnp.array([1.0, -2.0])) ** 2)


def _rosenbrock(x):
    return (1 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


# (name, optimizer for the quadratic, optimizer for Rosenbrock, Rosenbrock steps): every
# registry configuration that names the learning rates with which it converges.
CONVERGENCE = [
    (c.id, c.build(**c.converge.kwargs, learning_rate=c.converge.quadratic),
     c.build(**c.converge.kwargs, learning_rate=c.converge.rosenbrock), c.converge.steps)
    for c in registry.configs("optimizer") if c.converge is not None
]


def test_converges_on_quadratic_and_rosenbrock():
    """Every optimizer reaches both minima (one compiled program for the whole table)."""

    @jax.jit
    def all_runs():
        return {name: (_run(tx_quad, jnp.zeros(2), 500, _quadratic)[0],
                       _run(tx_rosen, jnp.array([-1.0, 1.5]), steps, _rosenbrock)[0])
                for name, tx_quad, tx_rosen, steps in CONVERGENCE}

    runs = all_runs()

    def check(name):
        xq, xr = runs[name]
        np.testing.assert_allclose(xq, [1.0, -2.0], atol=1e-2, err_msg="quadratic")
        np.testing.assert_allclose(xr, [1.0, 1.0], atol=3e-2, err_msg="rosenbrock")

    assert not (failures := _mismatches(check, [c[0] for c in CONVERGENCE])), "\n".join(failures)


# ----------------------------------------------------------------------------- jit / vmap


def test_no_recompile_on_second_update_or_when_array_hyperparameters_change():
    """A second update, a new learning rate, new values of every array hyperparameter:
    one trace of the jitted step."""
    traces = []

    def make(hp):
        return jo.apply_if_finite(jo.chain(
            jo.clip_by_global_norm(hp["max_norm"]),
            jo.adamw(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"], weight_decay=hp["wd"]),
            jo.reduce_on_plateau(factor=hp["factor"], patience=hp["patience"])),
            hp["max_errors"])

    @jax.jit
    def step(params, state, hp):
        traces.append(1)  # runs only while tracing
        grads = jax.grad(_mlp_loss)(params)
        updates, state = make(hp).update(grads, state, params, value=_mlp_loss(params))
        return jo.apply_updates(params, updates), state

    hp = {"max_norm": 1.0, "lr": 1e-2, "b1": 0.9, "b2": 0.99, "eps": 1e-8, "wd": 1e-3,
          "factor": 0.5, "patience": 3, "max_errors": 2}
    params = _mlp_params()
    state = make(hp).init(params)
    as_arrays = lambda hp: {k: jnp.asarray(v) for k, v in hp.items()}  # noqa: E731
    params, state = step(params, state, as_arrays(hp))
    params, state = step(params, state, as_arrays(hp))
    assert len(traces) == 1
    big, _ = step(params, state, as_arrays({**hp, "lr": 1e-1}))
    small, _ = step(params, state, as_arrays({k: v * 0.5 if isinstance(v, float) else v
                                              for k, v in hp.items()}))
    assert len(traces) == 1
    # ... and the new learning rate was used: about 10x the step of lr=1e-2.
    ref, _ = step(params, state, as_arrays(hp))
    move = lambda p: float(jnp.abs(p["l1"]["w"] - params["l1"]["w"]).sum())  # noqa: E731
    assert 5 < move(big) / move(ref) < 15


def test_vmap_over_learning_rates_equals_separate_runs():
    make = jo.adam
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


# (id, build, argument, value text, error): every invalid hyperparameter of the registry ...
BAD = [(f"{e.name}:{arg}={value}", lambda e=e, bad=bad: e.configs()[0].build(**bad.kwargs),
        arg, str(value), bad.error)
       for e in registry.ENTRIES for bad in e.invalid for arg, value in bad.kwargs.items()]
# ... and of the schedules (functions of the step, not transformations: not registry rows).
BAD_SCHEDULES = [
    (lambda: jo.schedules.exponential_decay(0.1, 0, 0.5), "transition_steps", "0"),
    (lambda: jo.schedules.per_epoch(0.1, 0.98, steps_per_epoch=-3), "steps_per_epoch", "-3"),
    (lambda: jo.schedules.cosine_decay(0.1, decay_steps=0), "decay_steps", "0"),
    (lambda: jo.schedules.warmup_cosine_decay(0.0, 0.1, 0, 100), "warmup_steps", "0"),
    (lambda: jo.schedules.one_cycle(0, 0.1), "transition_steps", "0"),
    (lambda: jo.schedules.join([jo.schedules.constant(1.0)] * 3, [20, 10]),
     "boundaries", "[20, 10]"),
    (lambda: jo.schedules.piecewise_constant(0.1, [(200, 0.1), (100, 0.1)]),
     "boundaries_and_scales", "(200, 0.1), (100, 0.1)"),
]


@pytest.mark.parametrize("build,arg,value,error", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_value_error_naming_argument_and_value(build, arg, value, error):
    with pytest.raises(error) as info:
        build()
    assert arg in str(info.value) and value in str(info.value)


@pytest.mark.parametrize("build,arg,value", BAD_SCHEDULES,
                         ids=[f"{b[1]}={b[2]}" for b in BAD_SCHEDULES])
def test_bad_schedule_raises_value_error_naming_argument_and_value(build, arg, value):
    with pytest.raises(ValueError) as info:
        build()
    assert arg in str(info.value) and value in str(info.value)


def _has_per_parameter_state(config):
    shapes = jax.eval_shape(lambda: config.build().init({"w": jnp.ones(5)}))
    return any(leaf.shape == (5,) for leaf in jax.tree.leaves(shapes))


# The registry's optimizer configurations whose state holds a tree like the parameters.
STATEFUL = [c for c in registry.configs("optimizer") if _has_per_parameter_state(c)]


@pytest.mark.parametrize("config", STATEFUL, ids=[c.id for c in STATEFUL])
def test_update_with_other_tree_structure_names_both_structures(config):
    tx = config.build()
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


# ----------------------------------------------------------------------------- inject_hyperparams


def test_inject_hyperparams_state_is_editable_without_recompiling():
    injected = jo.inject_hyperparams(jo.adam)(jo.schedules.per_epoch(0.05, 0.5, 10), b1=0.8)
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        updates, state = injected.update(jax.grad(_mlp_loss)(params), state, params)
        return jo.apply_updates(params, updates), state

    params = _mlp_params()
    params, state = step(params, injected.init(params))
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.05)
    np.testing.assert_allclose(state.hyperparams["b1"], 0.8)
    np.testing.assert_allclose(state.hyperparams["b2"], 0.999)  # defaults are injected too
    assert "amsgrad" not in state.hyperparams and "mu_dtype" not in state.hyperparams
    state = state._replace(hyperparams={**state.hyperparams, "b1": jnp.float32(0.5)})
    params, state = step(params, state)
    assert len(traces) == 1 and float(state.hyperparams["b1"]) == 0.5


def test_inject_hyperparams_validates_now():
    with pytest.raises(ValueError, match="b2=1.5"):
        jo.inject_hyperparams(jo.adam)(1e-3, b2=1.5)


# ----------------------------------------------------------------------------- multi-device


def test_sharded_params_over_8_devices_give_the_same_updates():
    """Params sharded over the 8 forced CPU devices: same numbers, sharding kept."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((8,), ("data",))
    shard = NamedSharding(mesh, PartitionSpec("data"))
    rng = np.random.default_rng(5)
    params = {"w": jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)}
    grads = {"w": jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)}
    tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adamw(1e-2, weight_decay=0.1))

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jo.apply_updates(params, updates), state

    sharded = jax.device_put((params, grads), shard)
    new, state = step(sharded[0], tx.init(sharded[0]), sharded[1])
    ref, ref_state = step(params, tx.init(params), grads)
    assert new["w"].sharding.is_equivalent_to(shard, 2)
    np.testing.assert_allclose(new["w"], ref["w"], rtol=1e-6)
    np.testing.assert_allclose(state[0].global_norm, ref_state[0].global_norm, rtol=1e-6)


# ----------------------------------------------------------------------------- the registry

# Public callables of jtricks.optim that are not factories of one transformation.
NOT_ROWS = {
    "apply_updates": "applies updates, builds nothing",
    "ravel": "flattens a tree, builds nothing",
    "chain": "variadic combinator: the interop cases above",
    "inject_hyperparams": "returns a factory: the interop cases above and its own tests",
}


def test_every_public_optimizer_has_a_registry_row():
    import inspect

    factories = {n for n in jo.__all__ if inspect.isfunction(getattr(jo, n))} - set(NOT_ROWS)
    rows = [e.name for e in registry.ENTRIES]
    assert not (missing := sorted(factories - set(rows))), (
        f"public factories of jtricks.optim without a row in jtricks/_registry.py: {missing}")
    assert len(rows) == len(set(rows)) and set(rows) <= factories
    for e in registry.ENTRIES:  # a row's typical configuration builds a transformation
        assert isinstance(e.configs()[0].build(), jo.GradientTransformation), e.name
    ids = [c.id for c in registry.configs()]
    assert len(ids) == len(set(ids))


def test_cli_choices_come_from_the_registry_and_build_its_configurations():
    """``jtricks train --optimizer NAME`` and ``jtricks sweep --optimizer NAME`` build what
    the registry's row says (two updates compared; the CLIs fall back to another optimizer
    for a name they do not know, so a new row without CLI code fails here)."""
    from jtricks.cli import _build, _sweep, _train, build_parser

    choices = registry.cli_configs()
    assert _train.OPTIMIZERS == tuple(c.cli.name for c in choices)
    assert _train.DEFAULT_LR == {c.cli.name: c.cli.lr for c in choices}
    assert _sweep.OPTIMIZERS == tuple(c.cli.name for c in choices if c.cli.sweep)
    parser = build_parser()
    params = _mlp_params()
    grads = jax.grad(_mlp_loss)(params)

    sweep_point = {"learning_rate": 0.01, "weight_decay": 0.0, "dropout": 0.0, "init_scale": 1.0}

    @jax.jit
    def two_updates(grads, params):
        out = {}
        for c in choices:
            args = parser.parse_args(["train", "--optimizer", c.cli.name])
            txs = {"train": _build.build_optimizer(args, 10),
                   "registry": c.build_cli(c.cli.lr)}
            if c.cli.sweep:
                args = parser.parse_args(["sweep", "--optimizer", c.cli.name])
                txs["sweep"] = _sweep.make_build(args, 10)(sweep_point)[1]
                txs["registry at the sweep's lr"] = c.build_cli(0.01)
            for name, tx in txs.items():
                state = tx.init(params)
                u, state = tx.update(grads, state, params)
                out[c.cli.name, name] = tx.update(grads, state, params)[0]
        return out

    out = two_updates(grads, params)
    for c in choices:
        pairs = [("train", "registry")] + (
            [("sweep", "registry at the sweep's lr")] if c.cli.sweep else [])
        for cli, ref in pairs:
            for a, b in zip(jax.tree.leaves(out[c.cli.name, cli]),
                            jax.tree.leaves(out[c.cli.name, ref])):
                np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=f"{cli} {c.cli.name}")
