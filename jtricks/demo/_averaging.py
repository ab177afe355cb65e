"""Demo experiment: model averaging — an ensemble, an EMA of the weights and SWA — on
MNIST-1D, where a single MLP is far from saturated."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.nn as nn
import jtricks.optim as jo
from jtricks.train import Averaging, ema, evaluate, swa
from jtricks.train._run import averaged_params

from ._common import (Member, Result, Timer, band, band_note, curve_rows, epochs_axis, figure,
                      fmt, pick, save, train_sweep)
from ._data import mnist1d
from ._stats import paired, verdict as paired_verdict


class _EmaSwaState(NamedTuple):
    ema: Any
    swa: Any

    @property
    def average(self):  # what the engine evaluates as "avg_val_*": the EMA
        return self.ema.average


def ema_beside_swa(decay: float, start: int, every: int) -> Averaging:
    """Two averages of one training (the engine takes one averager): the EMA of the
    weights after every step, ``jtricks.train.ema(decay)`` (the state's ``average``),
    and beside it ``jtricks.train.swa(start, every)`` (the state's ``swa``)."""
    e, w = ema(decay), swa(start, every)

    def init(params) -> Any:
        return _EmaSwaState(e.init(params), w.init(params))

    def update(params, state) -> Any:
        return _EmaSwaState(e.update(params, state.ema), w.update(params, state.swa))

    return Averaging(init, update)


def averaging(data, out_dir, quick, seed=0):
    """Claim 6: model averaging — an ensemble of independently trained models, an EMA of
    the weights and SWA, each against a single model."""
    data = mnist1d(seed)
    epochs = pick(quick, 30, 6)
    # lr 0.1: the raw weights still wander at the end, what averaging removes (at 0.05
    # SWA's gain was +0.002 / +0.012 / +0.007 at --seed 0 / 1 / 2; at 0.1 +0.018 / +0.032 /
    # +0.022, every effect clear of 0 at each).
    members, decay, lr, batch = 5, 0.99, 0.1, 32
    spe = len(data.y_train) // batch
    swa_from = int(epochs * 0.75)  # SWA averages the last quarter's epoch ends
    seeds = [s for s in range(seed * 8, seed * 8 + 8)]
    averager = ema_beside_swa(decay, swa_from * spe + spe, spe)  # epoch ends

    def make(_):
        return Member(nn.mlp((128, 128, 10)), jo.sgd(lr, momentum=0.9), averager=averager)

    def swa_accuracy(member, state, avg_state, train, val):
        params = averaged_params(avg_state.swa, state.params)
        return {"swa_val_accuracy": evaluate(member.eval_fn, params, state.model_state,
                                             val)["accuracy"]}

    # seed s: one ensemble of ``members`` models with keys fold_in(PRNGKey(s), m)
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), m)
                      for s in seeds for m in range(members)])
    n, shape = len(seeds), (len(seeds), members)
    with Timer() as t:
        c = train_sweep(make, jnp.zeros(n * members), data.train, data.val, epochs=epochs,
                        batch_size=batch, keys=keys, val_logits=True, record=swa_accuracy)
        probs = jax.nn.softmax(jnp.asarray(c.pop("val_logits")).reshape(
            shape + (epochs, len(data.y_val), 10)), -1).mean(1)  # (seeds, epochs, n, 10)
        ensemble = np.asarray(jnp.mean(jnp.argmax(probs, -1) == data.y_val, -1))
    c.pop("params")
    single = c["val_accuracy"].reshape(shape + (epochs,))  # (seeds, members, epochs)
    avg = c["avg_val_accuracy"].reshape(shape + (epochs,))
    swa_acc = c["swa_val_accuracy"].reshape(shape + (epochs,))
    x = np.arange(1, epochs + 1)
    fig, (a1,) = figure(f"Model averaging on MNIST-1D: MLP 128-128, SGD+momentum lr {lr} "
                        f"({band_note(len(seeds))})", 1, width=8)
    band(a1, x, single.mean(1), f"single model (mean of the {members} members)")
    band(a1, x, avg.mean(1), f"EMA of the weights (decay {decay}, mean of members)")
    band(a1, x[swa_from:], swa_acc.mean(1)[:, swa_from:],
         f"SWA: mean of the weights at the ends of epochs {swa_from + 1}–{epochs}")
    band(a1, x, ensemble, f"ensemble of {members} (averaged probabilities)")
    epochs_axis(a1, "validation accuracy")
    name = save(fig, out_dir, "averaging")
    single_final = single[:, :, -1].mean(1)  # per seed: the average member
    ema_final, swa_final = avg[:, :, -1].mean(1), swa_acc[:, :, -1].mean(1)
    ens_final = ensemble[:, -1]
    effects = (paired(f"final val. accuracy, ensemble of {members} − single model",
                      ens_final, single_final),
               paired("final val. accuracy, EMA of the weights − raw weights", ema_final,
                      single_final),
               paired("final val. accuracy, SWA − raw weights", swa_final, single_final))
    rows = [[label, fmt(float(v.mean())), fmt(float(v.std(ddof=1)))] for label, v in (
        ("single model (mean of members)", single_final),
        (f"single model (best member of {members})", single[:, :, -1].max(1)),
        (f"EMA of weights (decay {decay})", ema_final),
        (f"SWA (epochs {swa_from + 1}–{epochs})", swa_final),
        (f"ensemble of {members}", ens_final))]
    n_val = len(data.y_val)
    verdict = paired_verdict(effects, f"On {n_val} validation signals the ensemble's mean gain "
                                      f"is {effects[0].mean * n_val:+.1f} signals.")
    return Result("averaging", "Model averaging", "Train several models and average them "
                  "(ensembles), or average the weights along training (EMA / SWA).",
                  f"Regime: MNIST-1D ({len(data.y_train)} training signals), where one MLP "
                  "reaches about 0.6 and averaging has room to help (on the 8x8 digits every "
                  f"arm is within 1-3 images of 0.98). For each of {len(seeds)} seeds an "
                  f"ensemble of {members} MLPs 128-128 (keys fold_in(seed, member)), "
                  f"SGD+momentum lr {lr} (constant), batch {batch}, {epochs} epochs; all "
                  f"{len(seeds) * members} models trained together with vmap; "
                  f"jtricks.train.ema({decay}) updated every step and, beside it, "
                  f"jtricks.train.swa(start={swa_from * spe + spe}, every={spe}): the mean of "
                  f"the weights at the end of epochs {swa_from + 1}–{epochs}. Each effect "
                  "compares, per seed, the ensemble (or the averaged weights) with the mean "
                  "of its own members.",
                  (["", "final val. accuracy (mean over seeds)", "s.d. over seeds"], rows),
                  name, verdict,
                  curve_rows("averaging", [f"seed {s} member {m}" for s in seeds
                                           for m in range(members)], c,
                             ["train_loss", "val_loss", "val_accuracy", "avg_val_accuracy",
                              "swa_val_accuracy"]),
                  {"ensemble": float(ens_final.mean()), "single": float(single_final.mean()),
                   "ema": float(ema_final.mean()), "swa": float(swa_final.mean())}, t.seconds,
                  effects=effects, seeds=tuple(seeds))
