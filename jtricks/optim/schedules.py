"""Learning-rate schedules: pure functions ``step -> value``, jit- and vmap-able.

A schedule can be passed as any ``learning_rate`` of :mod:`jtricks.optim`
(the transformation then counts the steps in its state). Values (``init_value``,
``decay_rate``, ``factor`` ...) may be numbers, arrays or tracers; step counts and
boundaries are Python integers, checked when the schedule is built.

Example:
  >>> from jtricks.optim import schedules, sgd
  >>> lr = schedules.per_epoch(0.1, factor=0.98, steps_per_epoch=50)  # the lesson's decay
  >>> tx = sgd(lr, momentum=0.9)
  >>> lr(0), lr(49), lr(50), lr(100)
  (Array(0.1, dtype=float32), Array(0.1, dtype=float32), Array(0.098, dtype=float32), Array(0.09604, dtype=float32))
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence, Union, cast

import jax
import jax.numpy as jnp

from .. import _validate as v

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


def _step(count) -> jax.Array:
    """A step count as a float array (the schedules' arithmetic is in floating point).

    A Python ``int`` becomes a float first, so counts of 2**31 and more do not overflow
    int32.
    """
    if isinstance(count, int):
        return jnp.asarray(float(count), jnp.float32)
    count = jnp.asarray(count)
    return count if jnp.issubdtype(count.dtype, jnp.floating) else count.astype(jnp.float32)


def constant(value: jax.typing.ArrayLike) -> Schedule:
    """The schedule that is always ``value``.

    Args:
      value: a number, array or tracer.

    Returns:
      ``step -> value``.

    Example:
      >>> constant(0.1)(100)
      Array(0.1, dtype=float32, weak_type=True)
    """
    v.check_number("value", value)

    def schedule(count):
        del count
        return jnp.asarray(value)

    return schedule


def exponential_decay(
    init_value: jax.typing.ArrayLike,
    transition_steps: int,
    decay_rate: jax.typing.ArrayLike,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: jax.typing.ArrayLike | None = None,
) -> Schedule:
    r"""``init_value * decay_rate ** (t / transition_steps)``, ``t = step - transition_begin``.

    ``init_value`` while ``t <= 0``, and always for ``decay_rate == 0`` (as optax,
    which reads a zero rate as "no decay"). With ``staircase`` the exponent is
    ``floor(t / transition_steps)``. With ``end_value`` the value is clipped at
    it (from below when ``decay_rate < 1``, from above otherwise). Equal to
    ``optax.exponential_decay``, with its arguments in its order
    (``transition_steps`` before ``decay_rate``).

    Args:
      init_value: the value before and at ``transition_begin``.
      transition_steps: a positive integer.
      decay_rate: the factor per ``transition_steps`` steps, ``>= 0``.
      transition_begin: steps to wait before decaying, ``>= 0``.
      staircase: whether to decay in discrete jumps.
      end_value: optional bound.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for a non-positive ``transition_steps``, a negative
        ``transition_begin`` or ``decay_rate`` (deliberately: optax logs and returns a
        constant schedule, or starts at 0, for the first two).

    Example:
      >>> lr = exponential_decay(0.1, 1000, 0.5)   # optax's order: steps, then rate
      >>> [round(float(lr(t)), 6) for t in (0, 1000, 2000)]   # halved every 1000 steps
      [0.1, 0.05, 0.025]
    """
    v.check_number("init_value", init_value)
    v.check_non_negative("decay_rate", decay_rate)
    transition_steps = v.check_int("transition_steps", transition_steps, lo=1)
    transition_begin = v.check_int("transition_begin", transition_begin, lo=0)
    v.check_number("end_value", end_value, allow_none=True)
    v.check_bool("staircase", staircase)

    def schedule(count):
        t = _step(count) - transition_begin
        p = t / transition_steps
        if staircase:
            p = jnp.floor(p)
        no_decay = jnp.logical_or(t <= 0, jnp.asarray(decay_rate) == 0)
        value = jnp.where(no_decay, init_value, init_value * jnp.power(decay_rate, p))
        if end_value is not None:
            value = jnp.where(jnp.asarray(decay_rate) < 1, jnp.maximum(value, end_value),
                              jnp.minimum(value, end_value))
        return value

    return schedule


def per_epoch(
    init_value: jax.typing.ArrayLike, factor: jax.typing.ArrayLike, steps_per_epoch: int
) -> Schedule:
    r"""The lesson's decay "multiply by ``factor`` after every epoch":
    ``init_value * factor ** floor(step / steps_per_epoch)``.

    Args:
      init_value: the value during the first epoch.
      factor: the multiplier per epoch (e.g. 0.98), ``>= 0``.
      steps_per_epoch: optimizer steps per epoch, a positive integer.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for a non-positive ``steps_per_epoch`` or a negative ``factor``.

    Example:
      >>> lr = per_epoch(0.1, 0.98, steps_per_epoch=100)
      >>> float(lr(250))   # 0.1 * 0.98**2
      0.09604...
    """
    v.check_number("init_value", init_value)
    v.check_non_negative("factor", factor)
    steps_per_epoch = v.check_int("steps_per_epoch", steps_per_epoch, lo=1)

    def schedule(count):
        epoch = jnp.floor(_step(count) / steps_per_epoch)
        return init_value * jnp.power(factor, epoch)

    return cast(Schedule, schedule)


def _sequence(name: str, value) -> list:
    """``value`` as a list, or a ``TypeError`` naming ``name`` if it is not a sequence."""
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name}={v.show(value)} must be a sequence (a list or a tuple)")
    return list(value)


def _sorted_pairs(name: str, pairs) -> list[tuple[int, float]]:
    items = list(pairs.items()) if isinstance(pairs, Mapping) else _sequence(name, pairs)
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"{name}={v.show(pairs)} must be a dict {{boundary: scale}} or "
                            f"(boundary, scale) pairs, got the item {v.show(item)}")
    bounds = [b for b, _ in items]
    for b in bounds:
        v.check_int(f"{name} boundary", b, lo=0)
    if not isinstance(pairs, Mapping) and bounds != sorted(bounds):
        raise ValueError(f"{name}={pairs!r} must have increasing boundaries")
    if len(set(bounds)) != len(bounds):
        raise ValueError(f"{name}={pairs!r} has repeated boundaries")
    return sorted(items)


def piecewise_constant(
    init_value: jax.typing.ArrayLike,
    boundaries_and_scales: Union[Mapping[int, float], Sequence[tuple[int, float]], None] = None,
) -> Schedule:
    """``init_value`` times every scale whose boundary has been reached (``step >= boundary``).

    Equal to ``optax.piecewise_constant_schedule``.

    Args:
      init_value: the starting value.
      boundaries_and_scales: ``{boundary: scale}`` or increasing ``(boundary, scale)``
        pairs; boundaries are non-negative integers, scales non-negative.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for negative, repeated or (for pairs) unsorted boundaries,
        or negative scales.

    Example:
      >>> lr = piecewise_constant(0.1, {1000: 0.1, 2000: 0.1})   # 0.1, 0.01, 0.001
      >>> [round(float(lr(t)), 6) for t in (0, 1000, 2000)]
      [0.1, 0.01, 0.001]
    """
    v.check_number("init_value", init_value)
    pairs = _sorted_pairs("boundaries_and_scales",
                          {} if boundaries_and_scales is None else boundaries_and_scales)
    for b, s in pairs:
        v.check_non_negative(f"boundaries_and_scales[{b}]", s)

    def schedule(count):
        t = _step(count)
        value = jnp.asarray(init_value, jnp.result_type(init_value, jnp.float32))
        for boundary, s in pairs:
            value = jnp.where(t >= boundary, value * s, value)
        return value

    return schedule


def cosine_decay(
    init_value: jax.typing.ArrayLike, decay_steps: int, alpha: jax.typing.ArrayLike = 0.0,
    exponent: jax.typing.ArrayLike = 1.0,
) -> Schedule:
    r"""``init_value * ((1 - alpha) * c ** exponent + alpha)`` with
    ``c = (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2``.

    Equal to ``optax.cosine_decay_schedule``.

    Args:
      init_value: the starting value.
      decay_steps: a positive integer.
      alpha: the final value as a fraction of ``init_value``, in ``[0, 1]``.
      exponent: power of the cosine factor.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for a non-positive ``decay_steps`` or ``alpha`` outside ``[0, 1]``.

    References:
      Loshchilov, Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
      https://arxiv.org/abs/1608.03983, 2017.

    Example:
      >>> lr = cosine_decay(0.1, decay_steps=10_000)
      >>> [round(float(lr(t)), 6) for t in (0, 5000, 10_000, 20_000)]
      [0.1, 0.05, 0.0, 0.0]
    """
    v.check_number("init_value", init_value)
    decay_steps = v.check_int("decay_steps", decay_steps, lo=1)
    v.check_unit_interval("alpha", alpha, closed_right=True)
    v.check_number("exponent", exponent)

    steps = float(decay_steps)  # a Python float: no int32 overflow for >= 2**31 steps

    def schedule(count):
        t = jnp.minimum(_step(count), steps)
        c = 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
        return init_value * ((1 - alpha) * c ** exponent + alpha)

    return cast(Schedule, schedule)


def linear(init_value: jax.typing.ArrayLike, end_value: jax.typing.ArrayLike,
           transition_steps: int, transition_begin: int = 0) -> Schedule:
    """Linear interpolation from ``init_value`` to ``end_value`` over ``transition_steps``
    steps (after ``transition_begin``), constant afterwards (``optax.linear_schedule``).

    Args:
      init_value: the starting value.
      end_value: the final value.
      transition_steps: a positive integer.
      transition_begin: steps to wait, ``>= 0``.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for a non-positive ``transition_steps`` or negative ``transition_begin``.

    Example:
      >>> warmup = linear(0.0, 0.1, transition_steps=500)
      >>> [round(float(warmup(t)), 6) for t in (0, 250, 500, 1000)]
      [0.0, 0.05, 0.1, 0.1]
    """
    v.check_number("init_value", init_value)
    v.check_number("end_value", end_value)
    transition_steps = v.check_int("transition_steps", transition_steps, lo=1)
    transition_begin = v.check_int("transition_begin", transition_begin, lo=0)

    begin, steps = float(transition_begin), float(transition_steps)  # no int32 overflow

    def schedule(count):
        t = jnp.clip(_step(count) - begin, 0, steps)
        frac = 1 - t / steps
        return (cast(Any, init_value) - end_value) * frac + end_value

    return cast(Schedule, schedule)


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Runs ``schedules[i]`` from ``boundaries[i-1]`` on, each restarted at step 0.

    Equal to ``optax.join_schedules``.

    Args:
      schedules: ``n`` schedules.
      boundaries: ``n - 1`` increasing non-negative integers.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for a wrong number of boundaries, or unsorted / negative ones.
      TypeError: for a schedule that is not callable.

    Example:
      >>> lr = join([linear(0.0, 0.1, 100), cosine_decay(0.1, 900)], [100])
      >>> [round(float(lr(t)), 6) for t in (0, 50, 100, 550, 1000)]
      [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    schedules, boundaries = _sequence("schedules", schedules), _sequence("boundaries", boundaries)
    if not schedules:
        raise ValueError("schedules=[] must hold at least one schedule")
    for i, s in enumerate(schedules):
        if not callable(s):
            raise TypeError(f"schedules[{i}]={s!r} must be a callable step -> value")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"boundaries={boundaries!r} must have len(schedules) - 1 = "
                         f"{len(schedules) - 1} entries")
    for i, b in enumerate(boundaries):
        v.check_int(f"boundaries[{i}]", b, lo=0)
    if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
        raise ValueError(f"boundaries={boundaries!r} must be strictly increasing")

    def schedule(count):
        if not isinstance(count, int):  # a Python int stays one: no int32 overflow
            count = jnp.asarray(count)
        value = schedules[0](count)
        for boundary, s in zip(boundaries, schedules[1:]):
            value = jnp.where(count < boundary, value, s(count - boundary))
        return value

    return schedule


def warmup_cosine_decay(
    init_value: jax.typing.ArrayLike, peak_value: jax.typing.ArrayLike, warmup_steps: int,
    decay_steps: int, end_value: jax.typing.ArrayLike = 0.0,
    exponent: jax.typing.ArrayLike = 1.0,
) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then
    cosine decay to ``end_value`` at ``decay_steps`` (total, warm-up included).

    Equal to ``optax.warmup_cosine_decay_schedule``.

    Args:
      init_value: the value at step 0.
      peak_value: the value after warm-up. With ``peak_value=0`` the decay still ends
        at ``end_value`` (a deliberate difference: optax's cosine is relative to
        ``peak_value``, so its schedule stays at 0 and ignores ``end_value`` then).
      warmup_steps: a positive integer.
      decay_steps: total steps, an integer ``> warmup_steps``.
      end_value: the final value.
      exponent: power of the cosine factor.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for non-positive step counts or ``decay_steps <= warmup_steps``.

    Example:
      >>> lr = warmup_cosine_decay(0.0, 1e-3, warmup_steps=500, decay_steps=10_000)
      >>> [round(float(lr(t)), 6) for t in (0, 250, 500, 10_000)]
      [0.0, 0.0005, 0.001, 0.0]
    """
    warmup_steps = v.check_int("warmup_steps", warmup_steps, lo=1)
    decay_steps = v.check_int("decay_steps", decay_steps, lo=warmup_steps + 1)
    v.check_number("peak_value", peak_value)
    v.check_number("end_value", end_value)
    v.check_number("exponent", exponent)
    warm = linear(init_value, peak_value, warmup_steps)
    span = float(decay_steps - warmup_steps)  # no int32 overflow for >= 2**31 steps

    def decay(count):
        t = jnp.minimum(_step(count), span)
        c = 0.5 * (1 + jnp.cos(jnp.pi * t / span))
        return (cast(Any, peak_value) - end_value) * c ** exponent + end_value

    return join([warm, cast(Schedule, decay)], [warmup_steps])


def one_cycle(
    transition_steps: int, peak_value: jax.typing.ArrayLike, pct_start: float = 0.3,
    div_factor: float = 25.0, final_div_factor: float = 1e4,
) -> Schedule:
    """The 1cycle policy: cosine from ``peak_value / div_factor`` up to
    ``peak_value`` over the first ``pct_start`` of ``transition_steps``, then cosine
    down to ``peak_value / (div_factor * final_div_factor)``.

    Equal to ``optax.cosine_onecycle_schedule``.

    Args:
      transition_steps: total steps, a positive integer.
      peak_value: the largest value.
      pct_start: fraction of the steps spent rising, in ``(0, 1)``.
      div_factor: ``peak_value / initial value``, ``> 0``.
      final_div_factor: ``initial value / final value``, ``> 0``.

    Returns:
      ``step -> value``.

    Raises:
      ValueError: for a non-positive ``transition_steps`` or bad fractions.

    References:
      Smith, Topin, "Super-Convergence: Very Fast Training of Neural Networks Using
      Large Learning Rates", https://arxiv.org/abs/1708.07120, 2018.

    Example:
      >>> lr = one_cycle(10_000, peak_value=0.1)
      >>> [round(float(lr(t)), 6) for t in (0, 2500, 10_000)]
      [0.004, 0.093569, 0.0]
    """
    transition_steps = v.check_int("transition_steps", transition_steps, lo=1)
    v.check_number("peak_value", peak_value)
    v.check_number("pct_start", pct_start, lo=0, hi=1, lo_open=True, hi_open=True)
    v.check_positive("div_factor", div_factor)
    v.check_positive("final_div_factor", final_div_factor)
    rise = int(pct_start * transition_steps)
    start = peak_value / div_factor
    end = start / final_div_factor

    def cosine_between(a, b, t0, t1):
        def f(t):
            pct = (t - t0) / max(t1 - t0, 1)
            return b + (a - b) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)
        return f

    up = cosine_between(start, peak_value, 0, rise)
    down = cosine_between(peak_value, end, rise, transition_steps)

    def schedule(count):
        t = _step(count)
        return jnp.where(t < rise, up(t), jnp.where(t < transition_steps, down(t), end))

    return schedule


__all__ = [
    "Schedule",
    "constant",
    "cosine_decay",
    "exponential_decay",
    "join",
    "linear",
    "one_cycle",
    "per_epoch",
    "piecewise_constant",
    "warmup_cosine_decay",
]
