"""jtricks.optim.schedules: closed forms, optax equality, jit/vmap."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks.optim import schedules as S

STEPS = np.array([0, 1, 5, 49, 50, 51, 99, 100, 101, 250, 1000, 5000])

# (name, schedule, closed form in plain Python)
CLOSED_FORMS = [
    ("constant", S.constant(0.3), lambda t: 0.3),
    ("per_epoch_lesson", S.per_epoch(0.1, 0.98, steps_per_epoch=50),
     lambda t: 0.1 * 0.98 ** (t // 50)),
    ("exponential", S.exponential_decay(0.1, 100, 0.5),
     lambda t: 0.1 * 0.5 ** (t / 100)),
    ("exponential_staircase", S.exponential_decay(0.1, 100, 0.5, staircase=True),
     lambda t: 0.1 * 0.5 ** (t // 100)),
    ("exponential_end", S.exponential_decay(0.1, 100, 0.5, end_value=0.02),
     lambda t: max(0.1 * 0.5 ** (t / 100), 0.02)),
    ("exponential_begin", S.exponential_decay(0.1, 100, 0.5, transition_begin=50),
     lambda t: 0.1 * 0.5 ** (max(t - 50, 0) / 100)),
    ("piecewise", S.piecewise_constant(1.0, {50: 0.5, 100: 0.1}),
     lambda t: 1.0 * (0.5 if t >= 50 else 1) * (0.1 if t >= 100 else 1)),
    ("cosine", S.cosine_decay(0.2, 100, alpha=0.1),
     lambda t: 0.2 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 100) / 100)) + 0.1)),
    ("linear", S.linear(0.0, 1.0, 100), lambda t: min(t, 100) / 100),
    ("warmup_cosine", S.warmup_cosine_decay(0.0, 1.0, 50, 250, end_value=0.1),
     lambda t: t / 50 if t < 50 else
     0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t - 50, 200) / 200))),
    ("join", S.join([S.constant(1.0), S.linear(1.0, 0.0, 50), S.constant(0.5)], [50, 100]),
     lambda t: 1.0 if t < 50 else (1 - min(t - 50, 50) / 50 if t < 100 else 0.5)),
]


@pytest.mark.parametrize("name,schedule,closed", CLOSED_FORMS, ids=[c[0] for c in CLOSED_FORMS])
def test_schedule_equals_closed_form(name, schedule, closed):
    got = jax.jit(jax.vmap(schedule))(jnp.asarray(STEPS, jnp.int32))
    want = np.array([closed(int(t)) for t in STEPS], np.float32)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-5, atol=1e-7)


# (name, schedule, optax's)
OPTAX = [
    ("exponential", S.exponential_decay(0.1, 30, 0.7, staircase=True, end_value=0.01,
                                        transition_begin=10),
     optax.exponential_decay(0.1, 30, 0.7, transition_begin=10, staircase=True, end_value=0.01)),
    ("piecewise", S.piecewise_constant(0.1, {100: 0.5, 50: 0.2}),
     optax.piecewise_constant_schedule(0.1, {100: 0.5, 50: 0.2})),
    ("cosine", S.cosine_decay(0.1, 300, 0.05, exponent=2.0),
     optax.cosine_decay_schedule(0.1, 300, 0.05, exponent=2.0)),
    ("warmup_cosine", S.warmup_cosine_decay(0.01, 0.1, 40, 400, 0.001),
     optax.warmup_cosine_decay_schedule(0.01, 0.1, 40, 400, 0.001)),
    ("one_cycle", S.one_cycle(1000, 0.1), optax.cosine_onecycle_schedule(1000, 0.1)),
    ("linear", S.linear(0.5, 0.1, 70, transition_begin=5), optax.linear_schedule(0.5, 0.1, 70, 5)),
]


@pytest.mark.parametrize("name,schedule,ref", OPTAX, ids=[o[0] for o in OPTAX])
def test_schedule_equals_optax(name, schedule, ref):
    steps = jnp.arange(0, 1200, 7, dtype=jnp.int32)

    @jax.jit
    def both(steps):
        return jax.vmap(schedule)(steps), jax.vmap(ref)(steps)

    got, want = both(steps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_traced_values_and_vmap_over_init_value():
    """Values may be tracers: a sweep over initial learning rates is one program."""

    def lr_at(init, t):
        return S.per_epoch(init, 0.98, steps_per_epoch=10)(t)

    inits = jnp.array([0.1, 0.2, 0.4])
    got = jax.jit(jax.vmap(lr_at, in_axes=(0, None)))(inits, 35)
    np.testing.assert_allclose(got, np.array([0.1, 0.2, 0.4]) * 0.98 ** 3, rtol=1e-6)


BAD = [
    (lambda: S.per_epoch(0.1, 0.98, 0), "steps_per_epoch=0"),
    (lambda: S.exponential_decay(0.1, -1, 0.5), "transition_steps=-1"),
    (lambda: S.exponential_decay(0.1, 10, 0.5, transition_begin=-2), "transition_begin=-2"),
    (lambda: S.cosine_decay(0.1, -5), "decay_steps=-5"),
    (lambda: S.linear(0.0, 1.0, 0), "transition_steps=0"),
    (lambda: S.warmup_cosine_decay(0.0, 0.1, 10, 10), "decay_steps=10"),
    (lambda: S.one_cycle(100, 0.1, pct_start=1.2), "pct_start=1.2"),
    (lambda: S.piecewise_constant(0.1, {-5: 0.1}), "boundary=-5"),
    (lambda: S.piecewise_constant(0.1, {5: -0.1}), "-0.1"),
    (lambda: S.piecewise_constant(0.1, [(10, 0.5), (5, 0.5)]), "[(10, 0.5), (5, 0.5)]"),
    (lambda: S.join([S.constant(1.0), S.constant(2.0)], [5, 6]), "boundaries=[5, 6]"),
    (lambda: S.join([S.constant(1.0)] * 3, [6, 6]), "boundaries=[6, 6]"),
    (lambda: S.per_epoch(0.1, -0.5, 10), "factor=-0.5"),
]


@pytest.mark.parametrize("build,needle", BAD, ids=[b[1] for b in BAD])
def test_bad_schedules_raise(build, needle):
    with pytest.raises(ValueError) as info:
        build()
    assert needle in str(info.value)
