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
        (v.check_non_negative, "lr", jnp.array(-0.1), r"^lr=-0.1 must be >= 0$"),  # as given
        (v.check_int, "patience", -1, r"^patience=-1 must be >= 0$"),
    ],
)
def test_bad_values_name_argument_and_value(check, name, value, message):
    with pytest.raises(ValueError, match=message):
        if check is v.check_int:
            check(name, value, lo=0)
        elif check is v.check_non_negative and np.ndim(value):
            check(name, value, scalar=False)
        else:
            check(name, value)


def test_inf_is_refused_unless_it_means_something():
    v.check_number("max_norm", float("inf"), finite=False)  # "no limit" where documented
    v.check_non_negative("max_norm", float("inf"), finite=False)
    for bad in (float("inf"), -float("inf"), np.array([1.0, np.inf])):
        with pytest.raises(ValueError, match=r"^lr=.*inf.* must be finite$"):
            v.check_number("lr", bad, scalar=False)
    with pytest.raises(ValueError, match="must not be NaN"):
        v.check_number("lr", float("nan"))
    v.check_number("lr", 1e300)
    jax.jit(lambda x: v.check_number("lr", x))(jnp.inf)  # tracers are skipped


@pytest.mark.parametrize("value, kind", [
    (True, "number, got bool"), (np.bool_(False), "number, got bool"), (1 + 2j, "real number"),
    ([0.9], "single number"), (np.array([0.1, 0.2]), "single number"), (object(), "number"),
])
def test_not_a_real_scalar_is_a_type_error(value, kind):
    with pytest.raises(TypeError, match=f"^momentum=.* must be a {kind}"):
        v.check_number("momentum", value)


def test_bfloat16_and_integer_arrays_are_numbers():
    v.check_positive("learning_rate", jnp.array(0.1, jnp.bfloat16))
    v.check_positive("learning_rate", np.int8(3))
    assert v.check_int("patience", jnp.array(3)) == 3


def test_flags_dtypes_axes_shapes():
    assert v.check_bool("nesterov", np.bool_(True)) is True
    with pytest.raises(TypeError, match="^nesterov=1 must be a bool, got int$"):
        v.check_bool("nesterov", 1)
    assert v.check_dtype("mu_dtype", "bfloat16") == jnp.bfloat16
    assert v.check_dtype("mu_dtype", None) is None
    with pytest.raises(ValueError, match="^mu_dtype=<class 'jax.numpy.int32'> must be a floating"):
        v.check_dtype("mu_dtype", jnp.int32)
    with pytest.raises(TypeError, match="^mu_dtype='float33' is not a dtype$"):
        v.check_dtype("mu_dtype", "float33")
    assert v.check_axis("in_axis", -2, 3) == 1
    with pytest.raises(ValueError, match=r"^out_axis=3 is out of range for 3 dimensions"):
        v.check_axis("out_axis", 3, 3)
    assert v.check_shape("shape", 4) == (4,)
    with pytest.raises(TypeError, match=r"^shape=\(2.5,\) must be a tuple of integers$"):
        v.check_shape("shape", (2.5,))


def test_good_values_pass():
    v.check_unit_interval("rate", 1.0, closed_right=True)
    v.check_non_negative("lr", jnp.array([0.0, 1.0]), scalar=False)
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
    with pytest.raises(ValueError, match=r"^mode=\[1\] must be one of"):
        v.check_choice("mode", [1], {"min", "max"})  # unhashable
