"""The demo's building blocks that need no training: label noise, the EMA beside SWA
averager, the normalised MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def test_flip_labels_flips_exactly_the_fraction_to_another_class():
    from jtricks.demo._data import flip_labels

    y = np.repeat(np.arange(10), 20).astype(np.int32)
    noisy = flip_labels(y, 0.3, 10, seed=3)
    changed = noisy != y
    assert changed.sum() == 60 and noisy.min() >= 0 and noisy.max() <= 9
    assert np.array_equal(flip_labels(y, 0.3, 10, seed=3), noisy)  # deterministic
    assert not np.array_equal(flip_labels(y, 0.3, 10, seed=4), noisy)
    assert (flip_labels(y, 0.0, 10) == y).all()
    with pytest.raises(ValueError, match="fraction=1.5"):
        flip_labels(y, 1.5, 10)


def test_ema_beside_swa_is_both_library_averages():
    from jtricks.demo._averaging import ema_beside_swa
    from jtricks.train import ema, swa

    start, every, decay = 6, 3, 0.9
    averager = ema_beside_swa(decay, start, every)
    refs = [ema(decay), swa(start, every)]
    params = {"w": jnp.zeros(2)}
    state, ref = averager.init(params), [r.init(params) for r in refs]
    for step in range(1, 13):
        p = {"w": jnp.full(2, float(step))}
        state = averager.update(p, state)
        ref = [r.update(p, s) for r, s in zip(refs, ref)]
    np.testing.assert_allclose(state.swa.average["w"], np.mean([6, 9, 12]), rtol=1e-6)
    np.testing.assert_allclose(state.average["w"], ref[0].average["w"], rtol=1e-6)  # the EMA
    assert int(state.swa.count) == 12


@pytest.mark.parametrize("kind", [None, "batch", "layer", "group"])
def test_norm_mlp_normalises_as_named(kind):
    from jtricks.demo._normalization import norm_mlp

    model = norm_mlp(kind, features=(8, 8, 3))
    params, state = model.init(jax.random.key(0), (4, 4, 1))
    x = jax.random.normal(jax.random.key(1), (6, 4, 4, 1)) * 5 + 2
    logits, new_state = model.apply(params, state, x, training=True)
    assert logits.shape == (6, 3) and bool(jnp.isfinite(logits).all())
    assert set(new_state) == ({"norm_0", "norm_1"} if kind == "batch" else set())
    h = jnp.reshape(x, (6, -1)) @ params["dense_0"]["kernel"] + params["dense_0"]["bias"]
    if kind == "layer":  # each example's features: mean 0, variance 1 before the affine map
        from jtricks.nn import layer_norm

        np.testing.assert_allclose(jnp.mean(layer_norm(None, h), -1), 0, atol=1e-5)
    if kind == "batch":  # each feature over the batch
        from jtricks.nn import batch_norm, init_batch_norm

        y, _ = batch_norm(params["norm_0"], state["norm_0"], h, training=True)
        np.testing.assert_allclose(jnp.mean(y, 0), 0, atol=1e-5)
        assert init_batch_norm(8)[0]["scale"].shape == (8,)
