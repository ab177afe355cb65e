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
    assert set(new_state) == ({"batch_0", "batch_1"} if kind == "batch" else set())
    h = jnp.reshape(x, (6, -1)) @ params["dense_0"]["kernel"] + params["dense_0"]["bias"]
    if kind == "layer":  # each example's features: mean 0, variance 1 before the affine map
        from jtricks.nn import layer_norm

        np.testing.assert_allclose(jnp.mean(layer_norm(None, h), -1), 0, atol=1e-5)
    if kind == "batch":  # each feature over the batch
        from jtricks.nn import batch_norm, init_batch_norm

        y, _ = batch_norm(params["batch_0"], state["batch_0"], h, training=True)
        np.testing.assert_allclose(jnp.mean(y, 0), 0, atol=1e-5)
        assert init_batch_norm(8)[0]["scale"].shape == (8,)


def test_norm_mlp_with_kinds_is_the_chosen_normalisation():
    """One structure for every normalisation (the traced index picks one): the same
    logits as the model built for that normalisation alone, and only its parameters
    get a gradient."""
    from jtricks.demo._normalization import norm_mlp

    kinds, features = (None, "batch", "layer", "group"), (8, 8, 3)
    x = jax.random.normal(jax.random.key(1), (6, 4, 4, 1)) * 5 + 2
    params, state = norm_mlp(0, features, kinds=kinds).init(jax.random.key(0), (4, 4, 1))

    @jax.jit
    def logits_and_grads(index):
        def loss(p):
            logits = norm_mlp(index, features, kinds=kinds).apply(p, state, x, training=True)[0]
            return jnp.sum(logits ** 2), logits

        return jax.grad(loss, has_aux=True)(params)

    for i, kind in enumerate(kinds):
        alone = norm_mlp(kind, features)
        own_params, own_state = alone.init(jax.random.key(0), (4, 4, 1))
        grads, logits = logits_and_grads(jnp.asarray(i))
        np.testing.assert_allclose(logits, alone.apply(own_params, own_state, x,
                                                       training=True)[0], rtol=1e-5)
        for name, g in grads.items():
            moved = any(bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(g))
            assert moved == (name.startswith("dense") or name.startswith(f"{kind}_")), name


def test_one_of_steps_as_the_chosen_optimizer():
    from jtricks.demo._common import one_of
    import jtricks.optim as jo

    makers = [lambda: jo.sgd(0.1, momentum=0.9), lambda: jo.adam(0.05), lambda: jo.adagrad(0.1)]
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = [{"w": jnp.array([0.5, 1.0, -2.0]) * (k + 1)} for k in range(3)]
    for i, make in enumerate(makers):
        tx, ref = one_of([m() for m in makers], jnp.asarray(i)), make()
        s, r = tx.init(params), ref.init(params)
        for g in grads:
            u, s = tx.update(g, s, params)
            v, r = ref.update(g, r, params)
            np.testing.assert_allclose(u["w"], v["w"], rtol=1e-6)


def test_deep_mlp_plain_and_residual_are_the_layers_composed():
    """skip 0: the plain stack of layers; skip 1: every block adds its input; drop path
    changes nothing in evaluation and drops whole branches in training."""
    from jtricks.demo._architecture import deep_mlp, layer_kernels
    from jtricks.nn import dense, layer_norm

    x = jax.random.normal(jax.random.key(1), (5, 4, 4, 1))

    def by_hand(params, skip, norm, blocks=3):
        h = jax.nn.relu(dense(params["stem"], x.reshape(5, -1)))
        for i in range(blocks):
            block = jax.tree.map(lambda a: a[i], params["blocks"])
            z = layer_norm(block["norm"], h) if norm else h
            h = skip * h + jax.nn.relu(dense(block["dense"], z))
        return dense(params["head"], layer_norm(params["norm"], h) if norm else h)

    @jax.jit
    def outputs(key):
        out = []
        for norm in (False, True):
            params, state = deep_mlp(3, width=6, depth=4, norm=norm).init(key, (4, 4, 1))
            for skip in (0.0, 1.0):
                model = deep_mlp(3, width=6, depth=4, skip=skip, drop_path=0.5, norm=norm)
                out.append((model.apply(params, state, x, training=False)[0],
                            by_hand(params, skip, norm)))
        model = deep_mlp(3, width=6, depth=2, skip=1.0, drop_path=1.0)  # all dropped
        params, state = model.init(key, (4, 4, 1))
        out.append((model.apply(params, state, x, training=True, key=key)[0],
                    by_hand(params, 1.0, False, blocks=0)))
        return out

    kernels = jax.eval_shape(lambda k: layer_kernels(
        deep_mlp(3, width=6, depth=4).init(k, (4, 4, 1))[0]), jax.random.key(0))
    assert [k.shape for k in kernels] == [(16, 6)] + [(6, 6)] * 3 + [(6, 3)]
    pairs = outputs(jax.random.key(0))
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_select_picks_on_validation_and_reports_both_parts():
    """Against a brute-force check: the chosen (configuration, epoch) has the highest
    validation accuracy; choosing on the test part can only score higher there."""
    from jtricks.demo._evaluation import select

    rng = np.random.default_rng(0)
    correct = rng.random((5, 3, 40)) < np.linspace(0.5, 0.9, 5)[:, None, None]
    perm = np.random.default_rng(1).permutation(40)  # select's first partition
    val = correct[:, :, perm[:25]].mean(-1).ravel()
    test = correct[:, :, perm[25:]].mean(-1).ravel()
    single = select(correct, 25, np.random.default_rng(1), partitions=1)
    assert single["val"] == val.max() and single["test"] == test[np.argmax(val)]
    assert single["best_test"] == test.max()
    assert single["chosen"][np.argmax(val) // 3] == 1
    out = select(correct, 25, np.random.default_rng(1))
    assert out["best_test"] >= out["test"] and abs(out["chosen"].sum() - 1) < 1e-9
    assert out["val"] > out["test"]  # 15 candidates: the chosen one's validation flatters it


def test_data_per_seed_trains_each_seed_on_its_own_draw():
    """``train_seeded(data_per_seed=True)``: seed i of every arm trains on ``train[i]`` —
    the same curves as training that seed alone on that data."""
    import jtricks.nn as nn
    import jtricks.optim as jo
    from jtricks.demo._common import Member, train_seeded

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 32, 4)).astype(np.float32)  # two draws of 32 examples
    y = rng.integers(0, 3, size=(2, 32)).astype(np.int32)
    val = (rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8).astype(np.int32))

    def make(lr):
        return Member(nn.mlp((8, 3)), jo.sgd(lr))

    lrs = jnp.asarray([0.1, 0.5])
    both = train_seeded(make, lrs, (x, y), val, epochs=1, batch_size=16, seeds=[3, 4],
                        data_per_seed=True)
    for i, s in enumerate([3, 4]):
        alone = train_seeded(make, lrs, (x[i], y[i]), val, epochs=1, batch_size=16, seeds=[s])
        np.testing.assert_allclose(both["val_loss"][:, i], alone["val_loss"][:, 0], rtol=1e-5)
    assert not np.allclose(both["val_loss"][:, 0], both["val_loss"][:, 1])
    with pytest.raises(ValueError, match="not the 3 seeds"):
        train_seeded(make, lrs, (x, y), val, epochs=1, seeds=[0, 1, 2], data_per_seed=True)
