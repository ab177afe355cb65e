"""Sweeps over devices: the K members split over a ``member`` mesh axis (and their
batches over a ``data`` axis) give the K separate runs."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from test_sweep import _data, build

from jtricks import sweep

K = 16
HPARAMS = {
    "learning_rate": list(np.geomspace(1e-3, 1.0, K)),
    "weight_decay": [0.0, 1e-3] * (K // 2),
    "dropout": [0.0, 0.1, 0.3, 0.5] * (K // 4),
    "init_scale": [1.0, 0.5, 2.0, 1.5] * (K // 4),
}
SETTINGS = dict(epochs=4, batch_size=32, patience=1, key=jax.random.PRNGKey(1))


@functools.cache
def _separate_runs():
    """Each configuration alone (one compilation, K runs)."""
    one = jax.jit(lambda h: sweep.fit_member(build, h, *_data(), **SETTINGS))
    return [one({n: jnp.float32(v[k]) for n, v in HPARAMS.items()}) for k in range(K)]


@pytest.mark.parametrize("shape, names", [((8,), ("member",)), ((4, 2), ("member", "data"))])
def test_sweep_of_16_over_8_devices_equals_16_separate_runs(shape, names):
    """Explicit mesh axes (jax.make_mesh's default): 2 members per device, or 4 member
    groups x 2-way data parallelism."""
    mesh = jax.make_mesh(shape, names)
    result = sweep.train(build, HPARAMS, *_data(), mesh=mesh, **SETTINGS)
    assert result.members.val_loss.sharding.spec[0] == "member"
    assert {s.data.shape[0] for s in result.members.val_loss.addressable_shards} == {K // shape[0]}
    for k, alone in enumerate(_separate_runs()):
        member = result.member(k)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                     (member.params, member.val_loss), (alone.params, alone.val_loss))
        assert int(member.epochs_run) == int(alone.epochs_run)
    losses = [float(alone.best_value) for alone in _separate_runs()]
    assert result.best == int(np.nanargmin(losses))
    assert len({int(a.epochs_run) for a in _separate_runs()}) > 1  # members stop on their own


def test_hparams_split_over_a_member_axis_choose_the_mesh():
    mesh = jax.make_mesh((8,), ("member",))
    split = jax.device_put({n: jnp.asarray(v, jnp.float32) for n, v in HPARAMS.items()},
                           NamedSharding(mesh, P("member")))
    result = sweep.train(build, split, *_data(), **SETTINGS)
    assert result.members.val_loss.sharding.mesh.shape == mesh.shape
    np.testing.assert_allclose(result.member(3).val_loss, _separate_runs()[3].val_loss,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mesh, match", [
    (lambda: jax.make_mesh((8,), ("member",)), "the 12 members do not divide over the 8"),
    (lambda: jax.make_mesh((2, 4), ("member", "model")), "a sweep runs on a mesh with a 'member'"),
    (lambda: jax.make_mesh((8,), ("data",)), "a sweep runs on a mesh with a 'member'"),
])
def test_bad_meshes_raise(mesh, match):
    hparams = {n: v[:12] for n, v in HPARAMS.items()}
    with pytest.raises(ValueError, match=match):
        sweep.train(build, hparams, *_data(), mesh=mesh(), **SETTINGS)


def test_cli_sweep_devices_splits_the_members(tmp_path, capsys):
    """jtricks sweep --devices 4 (the members' equality to one device is the library's,
    tested above); a grid that does not divide is refused with one line."""
    from jtricks.cli import main

    argv = ["sweep", "--lr", "1e-3,3e-2", "--weight-decay", "0", "--dropout", "0,0.2",
            "--init-scale", "1", "--hidden", "16", "--epochs", "2", "--batch-size", "128"]
    assert main([*argv, "--devices", "4", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "sweep.json").read_text())
    losses = [m["best_val_loss"] for m in summary["members"]]
    assert len(losses) == 4 and summary["best"] == int(np.argmin(losses))
    assert summary["config"]["devices"] == 4
    capsys.readouterr()
    assert main([*argv, "--devices", "3"]) == 2
    err = capsys.readouterr().err
    assert "--devices 3: the 4 members do not divide over 3 devices" in err


def _tiny(h):
    import jtricks

    return jtricks.nn.mlp([4, 3], dropout=h["dropout"]), jtricks.optim.adam(h["learning_rate"])


def test_sweep_of_64_over_8_devices_equals_64_separate_runs():
    """8 members per device, tiny models; the members stop on their own and the stopped
    ones are dropped between rounds."""
    # a learning rate of 0 leaves the validation loss as it was: those members stop
    # after 2 epochs, so the others run on in buckets of 32 and fewer
    rates = np.where(np.arange(64) % 2 == 0, 0.0, np.geomspace(1e-3, 30.0, 64))
    hparams = {"learning_rate": rates.astype(np.float32),
               "dropout": np.tile([0.0, 0.2, 0.4, 0.1], 16).astype(np.float32)}
    settings = dict(epochs=5, batch_size=32, patience=0, key=jax.random.PRNGKey(2))
    result = sweep.train(_tiny, hparams, *_data(), mesh=jax.make_mesh((8,), ("member",)),
                         rounds=1, **settings)
    one = jax.jit(lambda h: sweep.fit_member(_tiny, h, *_data(), **settings))
    runs = np.asarray(result.members.epochs_run)
    assert (runs == 2).sum() >= 32 and runs.max() > 2, runs  # the bucket shrank
    for k in range(64):
        alone = one({n: jnp.float32(v[k]) for n, v in hparams.items()})
        member = result.member(k)
        # float32 rounding of the vmapped and the single programs, grown over the
        # epochs by learning rates up to 30 (kernels ~10): a few 1e-5 apart
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
                     (member.params, member.val_loss), (alone.params, alone.val_loss))
        assert int(member.epochs_run) == int(alone.epochs_run)
