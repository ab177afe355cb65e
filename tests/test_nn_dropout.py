"""Tests of jtricks.nn.dropout and drop_path: statistics, rate 1, jit/vmap, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import nn

N = 20_000
RATES = [0.1, 0.5, 0.9]


@pytest.fixture(scope="module")
def dropped():
    """One compiled program: dropout of ones for every rate (a traced, vmapped rate) and two keys."""
    rates = jnp.array(RATES)
    keys = jax.random.split(jax.random.key(0), 2)
    fn = jax.jit(jax.vmap(jax.vmap(lambda k, r: nn.dropout(k, jnp.ones(N), r, training=True),
                                   (None, 0)), (0, None)))
    return np.asarray(fn(keys, rates))  # (key, rate, N)


@pytest.mark.parametrize("i", range(len(RATES)), ids=[f"rate={r}" for r in RATES])
def test_kept_fraction_and_mean(dropped, i):
    rate, y = RATES[i], dropped[0, i]
    keep = 1 - rate
    kept = (y != 0).mean()
    assert abs(kept - keep) < 4 * math.sqrt(keep * rate / N)
    np.testing.assert_allclose(y[y != 0], 1 / keep, rtol=1e-6)  # survivors scaled by 1/(1-rate)
    # mean preserved: y is 1/keep w.p. keep, so Var(y) = rate / keep
    assert abs(y.mean() - 1) < 4 * math.sqrt(rate / keep / N)


def test_masks_differ_across_keys_and_repeat_for_a_key(dropped):
    # the fixture vmaps over the keys: the two masks came from one vmapped program
    assert not np.array_equal(dropped[0] != 0, dropped[1] != 0)
    again = nn.dropout(jax.random.split(jax.random.key(0), 2)[0], jnp.ones(N), RATES[0], training=True)
    np.testing.assert_array_equal(again, dropped[0, 0])


def test_traced_rate_does_not_recompile():
    traces = []

    @jax.jit
    def f(key, x, rate):
        traces.append(None)
        return nn.dropout(key, x, rate, training=True)

    x = jnp.ones((4, 8))
    f(jax.random.key(0), x, 0.2)
    f(jax.random.key(0), x, 0.7)
    f(jax.random.key(1), x, 0.3)
    assert len(traces) == 1


@pytest.mark.parametrize("fn", [nn.dropout, nn.drop_path])
def test_rate_one_gives_zeros_and_finite_gradients(fn):
    x = jnp.arange(1.0, 25.0).reshape(4, 6)
    key = jax.random.key(0)

    @jax.jit
    def run(x, rate):
        loss = lambda x, rate: jnp.sum(fn(key, x, rate, training=True) ** 2)
        return fn(key, x, rate, training=True), jax.grad(loss, argnums=(0, 1))(x, rate)

    y, (gx, grate) = run(x, 1.0)
    np.testing.assert_array_equal(y, 0.0)
    assert np.all(np.isfinite(gx)) and np.isfinite(grate)
    np.testing.assert_array_equal(gx, 0.0)
    y, _ = run(x, 0.0)  # rate 0: identity
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(fn(None, x, 0.9, training=False), x)  # evaluation: identity, no key


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_dtype_preserved(dtype):
    x = jax.ShapeDtypeStruct((16, 16), dtype)  # tracing decides the dtype: nothing to compile
    for fn in (nn.dropout, nn.drop_path):
        y = jax.eval_shape(lambda k, x, r: fn(k, x, r, training=True), jax.random.key(0), x, 0.5)
        assert y.dtype == dtype and y.shape == x.shape


def test_drop_path_drops_whole_examples():
    x = jnp.ones((4000, 3, 3, 2))
    rate = 0.25
    y = np.asarray(jax.jit(lambda k: nn.drop_path(k, x, rate, training=True))(jax.random.key(1)))
    per_example = y.reshape(len(y), -1)
    kept = per_example[:, 0] != 0
    # each example is either all zero or all scaled by 1/(1-rate)
    np.testing.assert_allclose(per_example[kept], 1 / (1 - rate), rtol=1e-6)
    np.testing.assert_array_equal(per_example[~kept], 0.0)
    assert abs(kept.mean() - (1 - rate)) < 4 * math.sqrt(rate * (1 - rate) / len(y))


@pytest.mark.parametrize("fn", [nn.dropout, nn.drop_path])
@pytest.mark.parametrize(
    "rate, training, key, match",
    [
        (-0.1, True, jax.random.key(0), "rate=-0.1 must be >= 0"),
        (1.5, False, jax.random.key(0), "rate=1.5 must be <= 1"),
        (float("nan"), True, jax.random.key(0), "must not be NaN"),
        (0.5, True, None, "key=None but training=True"),
    ],
)
def test_bad_input_raises(fn, rate, training, key, match):
    with pytest.raises(ValueError, match=match):
        fn(key, jnp.ones((2, 3)), rate, training=training)


def test_keep_masks_from_one_draw_are_independent_with_their_own_rates():
    from jtricks.nn._dropout import keep_masks

    # Odd sizes per example (99 + 1 + 201 = 301 uniforms, 151 words: the last
    # half-word is unused), so the 16-bit halves straddle masks; rates per mask.
    shapes, keeps = [(101, 99), (101, 1), (101, 201)], [0.9, 1.0, 0.25]
    a, b, c = jax.jit(lambda k: keep_masks(k, keeps, shapes))(jax.random.key(3))
    assert a.shape == shapes[0] and b.shape == shapes[1] and c.shape == shapes[2]
    assert bool(b.all())
    for mask, keep in ((a, 0.9), (c, 0.25)):
        n = mask.size
        assert abs(float(mask.mean()) - keep) < 4 * math.sqrt(keep * (1 - keep) / n)
    # Disjoint bits: a's column j is the high half of word j, c's column 51 + j
    # (uniform 151 + j) its low half; they are uncorrelated.
    x, y = np.asarray(a, float).ravel(), np.asarray(c[:, 51:150], float).ravel()
    assert abs(np.corrcoef(x, y)[0, 1]) < 4 / math.sqrt(a.size)
    (none,) = keep_masks(jax.random.key(3), 0.0, [(1000,)])
    assert not bool(none.any())
    with pytest.raises(ValueError, match="must share their leading"):
        keep_masks(jax.random.key(3), 0.5, [(4, 2), (3, 2)])


def test_keep_probability_is_resolved_to_1_in_65536():
    from jtricks.nn._dropout import keep_masks

    n = 1 << 20
    (none,) = keep_masks(jax.random.key(0), 1 / (1 << 17), [(n,)])  # rounds to 0 / 65536
    assert not bool(none.any())
    (every,) = keep_masks(jax.random.key(0), 1 - 1 / (1 << 17), [(n,)])  # rounds to 1
    assert bool(every.all())
    (few,) = keep_masks(jax.random.key(0), 3 / 65536, [(n,)])  # exactly 3 / 65536
    expected = 3 / 65536 * n  # 48 kept, sd ~7
    assert abs(int(few.sum()) - expected) < 4 * math.sqrt(expected)


def test_model_dropout_sites_get_their_own_masks_and_rates():
    from jtricks.nn._models import _dropouts

    ones = jnp.ones((256, 64))
    drop = _dropouts(jax.random.key(4), [0.5, 0.75], [ones.shape, ones.shape], jnp.float32)
    first, second = np.asarray(drop(0, ones)), np.asarray(drop(1, ones))
    assert set(np.unique(first)) == {0.0, 2.0} and set(np.unique(second)) == {0.0, 4.0}
    assert abs((first > 0).mean() - 0.5) < 4 * math.sqrt(0.25 / first.size)
    assert abs((second > 0).mean() - 0.25) < 4 * math.sqrt(0.1875 / second.size)
    corr = np.corrcoef((first > 0).ravel(), (second > 0).ravel())[0, 1]
    assert abs(corr) < 4 / math.sqrt(first.size)


@pytest.mark.parametrize("fn", [nn.dropout, nn.drop_path])
def test_example_masks_depend_on_the_key_and_the_global_index_only(fn):
    """Example i's mask is the same in any batch that puts it at index i, and per device
    inside nn.data_parallel it is the mask of its global index."""
    x = jnp.ones((12, 5))
    key = jax.random.key(5)
    full = np.asarray(fn(key, x, 0.5, training=True))
    assert len({row.tobytes() for row in full}) > 1
    np.testing.assert_array_equal(fn(key, x[:4], 0.5, training=True), full[:4])

    def shard(xs):
        return fn(key, xs, 0.5, training=True)

    with nn.data_parallel("d"):
        per_device = jax.pmap(shard, axis_name="d")(x.reshape(3, 4, 5))
    np.testing.assert_array_equal(np.asarray(per_device).reshape(full.shape), full)


def _mix(x, steps):
    """Wellons' mixers in numpy: xorshifts and odd multiplies mod 2**32 (the oracle)."""
    x = np.asarray(x, np.uint64)
    for shift, mult in steps:
        x ^= x >> np.uint64(shift)
        if mult:
            x = (x * np.uint64(mult)) & np.uint64(0xFFFFFFFF)
    return x


def _lowbias32(x):
    return _mix(x, [(16, 0x7FEB352D), (15, 0x846CA68B), (16, 0)])


def _triple32(x):
    return _mix(x, [(17, 0xED5AD4BB), (11, 0xAC4C1B51), (15, 0x31848BAB), (14, 0)])


def test_dropout_row_i_follows_the_rule_from_fold_in_key_i():
    """The rule itself, re-derived in numpy: the words (a, b) of fold_in(key, i), word j
    triple32(lowbias32(a ^ triple32(j)) ^ b), its 16-bit halves (high halves, then low)."""
    key = jax.random.PRNGKey(11)
    x = jnp.ones((6, 5))
    kept = np.asarray(nn.dropout(key, x, 0.5, training=True)) != 0
    column = _triple32(np.arange(3))
    for i in range(6):
        a, b = np.asarray(jax.random.fold_in(key, i), np.uint64)  # the key's two words
        words = _triple32(_lowbias32(a ^ column) ^ b)
        uniforms = np.concatenate([words >> np.uint64(16), words & np.uint64(0xFFFF)])[:5]
        np.testing.assert_array_equal(kept[i], uniforms < 32768)
    np.testing.assert_array_equal(nn.example_keys(key, 6)[4], jax.random.fold_in(key, 4))
    # a typed key of the same data gives the same masks; another implementation works too
    typed = np.asarray(nn.dropout(jax.random.key(11), x, 0.5, training=True)) != 0
    np.testing.assert_array_equal(typed, kept)
    rbg = nn.dropout(jax.random.key(11, impl="rbg"), jnp.ones((64, 64)), 0.5, training=True)
    assert abs(float((rbg != 0).mean()) - 0.5) < 4 * 0.5 / 64


@pytest.fixture(scope="module")
def bits():
    """Words of 8 consecutive raw keys (the worst case: keys that differ in one bit),
    256 examples x 256 words each, one compiled program."""
    from jtricks.nn._context import example_bits

    keys = jnp.stack([jax.random.PRNGKey(k) for k in range(8)])
    return np.asarray(jax.jit(jax.vmap(lambda k: example_bits(k, 256, 256)))(keys))


def test_example_bits_are_uniform_and_uncorrelated(bits):
    words = bits[0]
    n = words.size
    # every bit is balanced (32 tests at 4.5 sigma)
    ones = ((words[..., None] >> np.arange(32, dtype=np.uint32)) & 1).mean(axis=(0, 1))
    assert np.all(np.abs(ones - 0.5) < 4.5 * 0.5 / math.sqrt(n)), ones
    # the 16-bit uniforms: mean and the correlation of neighbouring examples and positions
    for u in (words >> 16, words & 0xFFFF):
        u = u.astype(float) / 65536 - 0.5
        assert abs(u.mean()) < 4 * math.sqrt(1 / 12 / u.size)
        bound = 4 / math.sqrt(u.size)
        assert abs(np.corrcoef(u[1:].ravel(), u[:-1].ravel())[0, 1]) < bound  # examples
        assert abs(np.corrcoef(u[:, 1:].ravel(), u[:, :-1].ravel())[0, 1]) < bound  # positions
    # the parity of 2x2 blocks of top bits (the relation an xor-combined hash could leave)
    top = (words >> 31).astype(int)
    parity = top[1:, 1:] ^ top[:-1, 1:] ^ top[1:, :-1] ^ top[:-1, :-1]
    assert abs(parity.mean() - 0.5) < 4 * 0.5 / math.sqrt(parity.size)
    # masks at several rates keep their fraction within a binomial bound
    u = (words >> 16).ravel()
    for keep in (0.05, 0.3, 0.5, 0.9):
        kept = (u < round(keep * 65536)).mean()
        assert abs(kept - keep) < 4 * math.sqrt(keep * (1 - keep) / u.size), (keep, kept)


def test_example_bits_of_neighbouring_keys_are_unrelated(bits):
    u = (bits >> 16).reshape(len(bits), -1).astype(float)
    corr = np.corrcoef(u)[np.triu_indices(len(bits), 1)]
    assert np.all(np.abs(corr) < 4.5 / math.sqrt(u.shape[1])), corr
    # no two keys share more words than chance (a 32-bit collision is ~1e-5 here)
    for k in range(1, len(bits)):
        assert np.mean(bits[0] == bits[k]) < 1e-4


def test_rate_sweep_members_get_their_solo_masks():
    x = jnp.ones((64, 16))
    key = jax.random.key(2)
    rates = jnp.array([0.1, 0.5, 0.8])
    swept = jax.jit(jax.vmap(lambda r: nn.dropout(key, x, r, training=True)))(rates)
    solo = jax.jit(lambda r: nn.dropout(key, x, r, training=True))
    for i, rate in enumerate(rates):
        np.testing.assert_array_equal(swept[i], solo(rate))
    # one set of uniforms for all rates: a lower rate keeps a superset
    assert bool(((swept[2] != 0) <= (swept[0] != 0)).all())


def test_a_function_jitted_outside_data_parallel_is_traced_again_inside():
    """The context is part of jit's cache key: a function first traced per device without
    it (local indices: every shard gets the masks of examples 0..3) is traced again."""
    key = jax.random.key(9)
    x = jnp.ones((8, 6))
    masks = jax.jit(lambda x: nn.dropout(key, x, 0.5, training=True) != 0)
    without = np.asarray(jax.pmap(masks, axis_name="d")(x.reshape(2, 4, 6)))
    np.testing.assert_array_equal(without[0], without[1])
    with nn.data_parallel("d"):
        shards = np.asarray(jax.pmap(masks, axis_name="d")(x.reshape(2, 4, 6)))
    np.testing.assert_array_equal(shards.reshape(x.shape), np.asarray(masks(x)))
    assert not np.array_equal(shards[0], shards[1])
