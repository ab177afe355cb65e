"""Tests of the shared construction-time checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import _validate as v


@pytest.mark.parametrize(
    "check, name, value, message",
    [
        (v.check_non_negative, "learning_rate", -0.1, "learning_rate=-0.1 must be >= 0"),
        (v.check_positive, "max_norm", 0.0, "max_norm=0.0 must be > 0"),
        (v.check_unit_interval, "b1", 1.0, "b1=1.0 must be < 1"),
        (v.check_unit_interval, "decay", -0.5, "decay=-0.5 must be >= 0"),
        (v.check_non_negative, "eps", float("nan"), "eps=nan must not be NaN"),
        (v.check_non_negative, "lr", np.array([0.1, -1.0]), r"lr=array\(2,\) .* must be >= 0"),
    ],
)
def test_bad_values_name_argument_and_value(check, name, value, message):
    with pytest.raises(ValueError, match=message):
        check(name, value)


def test_finite_rejects_inf_only_when_asked():
    v.check_number("lr", float("inf"))  # the default keeps accepting inf
    v.check_non_negative("lr", float("inf"))
    for bad in (float("inf"), -float("inf"), np.array([1.0, np.inf])):
        with pytest.raises(ValueError, match=r"^lr=.*inf.* must be finite$"):
            v.check_number("lr", bad, finite=True)
    with pytest.raises(ValueError, match="must not be NaN"):
        v.check_number("lr", float("nan"), finite=True)
    v.check_number("lr", 1e300, finite=True)
    jax.jit(lambda x: v.check_number("lr", x, finite=True))(jnp.inf)  # tracers are skipped


def test_good_values_pass():
    v.check_unit_interval("rate", 1.0, closed_right=True)
    v.check_non_negative("lr", jnp.array([0.0, 1.0]))
    v.check_positive("x", 3)


def test_tracers_and_schedules_are_skipped():
    jax.jit(lambda lr: (v.check_non_negative("lr", lr), lr)[1])(-1.0)
    jax.vmap(lambda lr: (v.check_positive("lr", lr), lr)[1])(jnp.array([-1.0, 1.0]))
    v.check_non_negative("lr", lambda step: -1.0)


def test_type_errors():
    with pytest.raises(TypeError, match="lr='0.1' must be a number"):
        v.check_non_negative("lr", "0.1")
    with pytest.raises(TypeError, match="lr=None must be a number"):
        v.check_non_negative("lr", None)
    v.check_non_negative("lr", None, allow_none=True)


def test_check_int_and_choice():
    assert v.check_int("every_k", np.int64(3), lo=1) == 3
    with pytest.raises(ValueError, match="every_k=0 must be >= 1"):
        v.check_int("every_k", 0, lo=1)
    with pytest.raises(TypeError, match="every_k=2.0 must be an integer"):
        v.check_int("every_k", 2.0)
    with pytest.raises(TypeError, match="must be an integer"):
        v.check_int("every_k", True)
    with pytest.raises(ValueError, match="mode='avg' must be one of 'min', 'max'"):
        v.check_choice("mode", "avg", ("min", "max"))
