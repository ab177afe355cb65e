"""``fit`` over a state split over a ``model`` axis (FSDP): it trains, the parameters and
the optimizer state stay split (each device holds 1/4 of every split leaf, from
``TrainState.create`` on), and it equals the single-device run. In float64: Adam's
float32 rounding differs between two programs by far more than the comparison allows.
"""

import jax
import jax.numpy as jnp
import numpy as np

import jtricks
from jtricks import parallel
from jtricks.train import TrainState, classifier_loss, fit

MODEL = jtricks.nn.mlp([32, 3], batch_norm=True, dropout=0.2)


def _quarters(tree):
    """The leaves of ``tree`` with 32 or more elements whose devices hold more than 1/4."""
    return [(jax.tree_util.keystr(path), leaf.shape)
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
            if np.size(leaf) >= 32
            and {s.data.size for s in leaf.addressable_shards} != {np.size(leaf) // 4}]


def test_fit_on_a_model_split_state_stays_split_and_equals_one_device():
    with jax.enable_x64(True):
        params, model_state = MODEL.init(jax.random.key(0), (8,))
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x = jax.random.normal(jax.random.key(1), (64, 8), jnp.float64)
        y = (x[:, 0] > 0).astype(jnp.int32)
        tx = jtricks.optim.adam(1e-2)
        run = dict(tx=tx, epochs=2, batch_size=16, progress=False, data_key=3)
        mesh = jax.make_mesh((2, 4), ("data", "model"))
        state = TrainState.create(params=parallel.shard_params(params, mesh), tx=tx, key=1,
                                  model_state=model_state)
        assert not _quarters((state.params, state.opt_state))  # from init on
        got = fit(state, (x, y), loss_fn=parallel.shard_loss(classifier_loss(MODEL), mesh),
                  **run)
        expected = fit(TrainState.create(params=params, tx=tx, key=1, model_state=model_state),
                       (x, y), loss_fn=classifier_loss(MODEL), **run)
    split = (got.state.params, got.state.opt_state)
    assert not _quarters(split)
    # 5 parameters of 32 or more (2 kernels, a bias, batch norm's scale and bias) and
    # Adam's two moments of each
    assert len([leaf for leaf in jax.tree.leaves(split) if np.size(leaf) >= 32]) == 15
    assert got.state.params["dense_0"]["kernel"].dtype == jnp.float64
    assert int(got.state.step) == 8
    moved = max(float(np.max(np.abs(a - b))) for a, b in
                zip(jax.tree.leaves(expected.state.params), jax.tree.leaves(params)))
    assert moved > 1e-3  # it trained
    for a, b in zip(jax.tree.leaves(got.state), jax.tree.leaves(expected.state)):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        # atol: the first layer's bias feeds batch norm, which cancels it: its gradient
        # and Adam's moments of it are rounding noise (|values| < 5e-10)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose([r["train_loss"] for r in got.history],
                               [r["train_loss"] for r in expected.history], rtol=1e-9)
