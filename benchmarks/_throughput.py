"""Table 3's second half: training throughput once compiled (examples per second), in one process.

One epoch of the digits training split (39 batches of 32; the recipe of :mod:`benchmarks._cold`)
for each of: the flax + optax loop (a jitted step per batch, called from Python), jtricks'
engine as ``fit`` runs it (``jtricks.train.make_epoch``'s ``lax.scan`` over the batches, one
compiled program per epoch) and the PyTorch loop; timed in turn, round after round, after
warming up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _jax_models as jm
from benchmarks._measure import interleaved_times, summarize

BATCH = 32


def _flax_epoch(model, x, y):
    import optax

    tx = optax.adam(1e-3)
    key = jax.random.key(0)
    params, stats = jm.flax_init(model, x[:1], key)
    step = jax.jit(jm.flax_train_step(model, tx), donate_argnums=0)
    box = [(params, stats, tx.init(params), key)]
    rng = np.random.default_rng(0)

    def run():
        order = rng.permutation(len(y))
        for i in range(len(y) // BATCH):
            idx = order[i * BATCH:(i + 1) * BATCH]
            box[0], loss = step(box[0], (x[idx], y[idx]))
        jax.block_until_ready(box[0])

    return run


def _jtricks_epoch(model, x, y):
    """An epoch as ``fit`` runs it: its order program, its compiled epoch (the
    ``lax.scan`` of ``make_epoch`` with the history row) and its finiteness check."""
    import jtricks
    import jtricks.train as jt
    from jtricks.train._programs import compile_programs

    tx = jtricks.optim.adam(1e-3)
    params, model_state = model.init(jax.random.key(0), x.shape[1:])
    box = [jt.TrainState.create(params=params, tx=tx, key=1, model_state=model_state)]
    data, count, data_key = (jnp.asarray(x), jnp.asarray(y)), [0], jax.random.PRNGKey(2)
    programs = compile_programs(box[0], data, loss_fn=jt.classifier_loss(model), tx=tx,
                                batch_size=BATCH, data_key=data_key)
    epoch, order, finite = (programs[name][0] for name in ("epoch", "order", "finite"))

    def run():
        count[0] += 1
        box[0], _, _, row = epoch(box[0], data, order(data_key, np.uint32(count[0])), None)
        jax.device_get((row, finite(box[0].params)))

    return run


def _torch_epoch(model_name, x, y):
    from benchmarks import _torch_models as tm

    torch = tm.torch_or_none()
    if torch is None:
        return None
    torch.manual_seed(0)
    if model_name == "mlp":
        model, xt = tm.mlp((256, 128, 10)), torch.from_numpy(x)
    else:
        model, xt = tm.cnn(), tm.nchw(torch, x)
    yt = torch.from_numpy(y).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run():
        tm.train_epoch(model, opt, xt, yt, BATCH)

    return run


def throughput(model_name: str, repeats: int, quick: bool = False) -> dict:
    """``{lib: (median, [q1, q3])}`` training examples per second of one epoch."""
    import jtricks
    from jtricks.data import load_split

    x, y = (np.asarray(a) for a in load_split("digits", seed=0).train)
    x, y = x.astype(np.float32), y.astype(np.int32)
    if quick:
        x, y = x[:4 * BATCH], y[:4 * BATCH]
    if model_name == "mlp":
        flax_model, jt_model = jm.flax_mlp((256, 128, 10)), jtricks.nn.mlp((256, 128, 10),
                                                                         dropout=0.1)
    else:
        flax_model, jt_model = jm.flax_cnn(), jtricks.nn.cnn(10, dropout=0.1)
    runs = {"flax": _flax_epoch(flax_model, x, y), "fit": _jtricks_epoch(jt_model, x, y)}
    torch_run = _torch_epoch(model_name, x, y)
    if torch_run is not None:
        runs["torch"] = torch_run
    examples = (len(y) // BATCH) * BATCH
    times = interleaved_times(runs, repeats, warmup=2, block=1)
    return {lib: summarize([examples / t for t in ts]) for lib, ts in times.items()}
