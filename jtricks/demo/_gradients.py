"""Demo experiment: vanishing and exploding gradients in a deep plain MLP, measured per
layer at initialisation, and the symptom they cause in a short training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jtricks.init as ji
import jtricks.optim as jo
from jtricks.diagnose import gradient_health
from jtricks.train import classifier_loss

from ._architecture import deep_mlp, layer_kernels
from ._common import (SMOKE, Member, Result, Timer, _FAST_COMPILE, band, band_note, epochs_axis,
                      figure, fmt, pick, save, seed_keys, seeded_rows, seeds_of, train_seeded)
from ._stats import paired, verdict as paired_verdict

# (label, activation index into _ACTIVATIONS, initializer): the arms.
_ARMS = (("sigmoid, N(0, 1/n)", 0, ji.gaussian()),
         ("tanh, N(0, 1/n)", 1, ji.gaussian()),
         ("ReLU, N(0, 1)", 2, ji.normal(1.0)),
         ("ReLU, He N(0, 2/n)", 2, ji.he_normal()))
_ACTIVATIONS = (jax.nn.sigmoid, jnp.tanh, jax.nn.relu)


def _activation(index):
    """The activation ``_ACTIVATIONS[index]`` for a traced ``index`` (one structure for
    every arm, so ``vmap`` trains them with one copy of the program)."""
    return lambda x: jax.lax.select_n(jnp.asarray(index, jnp.int32),
                                      *(f(x) for f in _ACTIVATIONS))


def _model(size, activation=jax.nn.relu, kernel_init=ji.he_normal()):
    depth, width = size
    return deep_mlp(10, width=width, depth=depth, activation=activation,
                    kernel_init=kernel_init)


def _initial_params(size, keys):
    """The MLP's initial ``(params, state)`` for every arm × seed, arm-major."""
    def all_arms(keys):
        per_arm = [jax.vmap(lambda k, init=init: _model(size, kernel_init=init).init(
            k, (8, 8, 1)))(keys) for _, _, init in _ARMS]
        return jax.tree.map(lambda *a: jnp.concatenate(a), *per_arm)

    return jax.jit(all_arms, compiler_options=_FAST_COMPILE)(keys)


def _layer_grad_norms(size, params, arms, batch):
    """``(arms * seeds, layers)``: the norm of the loss gradient with respect to each
    layer's kernel at the initial weights, on one batch (the library's
    :func:`jtricks.diagnose.gradient_health` per-layer norms)."""

    def one(p, s, arm):
        loss_fn = classifier_loss(_model(size, _activation(arm)))
        grads = jax.grad(lambda p: loss_fn(p, s, batch, jax.random.PRNGKey(0))[0])(p)
        return jnp.stack(gradient_health(layer_kernels(grads)).layer_norms)

    return np.asarray(jax.jit(jax.vmap(one), compiler_options=_FAST_COMPILE)(*params, arms))


def gradients(data, out_dir, quick, seed=0):
    """Claim 1: vanishing and exploding gradients — per-layer gradient norms of a deep
    plain MLP at initialisation, and what a short training makes of them."""
    depth, width = 20, 32
    epochs = pick(quick, 8, 3)
    seeds = seeds_of(seed)
    labels = [label for label, _, _ in _ARMS]
    size = depth, width
    n = len(seeds)
    with Timer() as t:
        params = _initial_params(size, seed_keys(seeds))
        arms = jnp.repeat(jnp.asarray([a for _, a, _ in _ARMS]), n)
        batch = (data.x_train[:256], data.y_train[:256])
        norms = _layer_grad_norms(size, params, arms, batch).reshape(len(_ARMS), n, -1)

        def make(arm):
            return Member(_model(size, _activation(arm)), jo.sgd(0.01, momentum=0.9))

        n_train = pick(quick, len(data.y_train), len(data.y_train), 256)
        c = train_seeded(make, jnp.asarray([a for _, a, _ in _ARMS]),
                         (data.x_train[:n_train], data.y_train[:n_train]), data.val,
                         epochs=epochs, init_params=params, seeds=seeds,
                         # XLA level 1 except at the test-only size: level 0 runs the
                         # scan over 20 layers slowly (--quick: 15.2 against 8.5 CPU-s)
                         fast_compile=quick == SMOKE)
    with np.errstate(all="ignore"):
        log_norms = np.log10(norms)  # (arms, seeds, layers + 1), the head last
        ratio = log_norms[:, :, 0] - log_norms[:, :, depth - 1]  # first − last hidden
        total = np.log10(np.sqrt((norms.astype(np.float64) ** 2).sum(-1)))
    diverged = ~np.isfinite(c["train_loss"]).all(-1)  # (arms, seeds)
    final = c["val_accuracy"][:, :, -1]
    sig, tanh, big, he = range(4)
    effects = (
        paired(f"log10 ‖∇W₁‖ / ‖∇W{depth}‖ at init, sigmoid N(0, 1/n) − ReLU He",
               ratio[sig], ratio[he], claim="less", digits=2),
        paired(f"log10 ‖∇W₁‖ / ‖∇W{depth}‖ at init, tanh N(0, 1/n) − ReLU He",
               ratio[tanh], ratio[he], claim="less", digits=2),
        paired("log10 ‖∇‖ (all layers) at init, ReLU N(0, 1) − ReLU He",
               total[big], total[he], digits=2),
        paired(f"val. accuracy after {epochs} epochs, ReLU He − sigmoid N(0, 1/n)",
               final[he], final[sig]),
        paired(f"val. accuracy after {epochs} epochs, ReLU He − ReLU N(0, 1)",
               final[he], final[big]),
    )
    fig, (a1, a2) = figure(f"Gradients through {depth} plain layers of {width} "
                           f"({band_note(n)})", 2)
    layers = np.arange(1, depth + 2)
    with np.errstate(all="ignore"):
        for i, label in enumerate(labels):
            band(a1, layers, log_norms[i], label)
            k = int(diverged[i].sum())
            band(a2, range(1, epochs + 1), np.log10(c["train_loss"][i]),
                 label + (f" (NaN in {k} of {n} seeds)" if k else ""))
    a1.set_xlabel(f"layer (1 = first, {depth + 1} = the logits)")
    a1.set_ylabel("log10 ‖∂loss/∂W‖ at initialisation")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8)
    finite = np.log10(c["train_loss"][~diverged])
    if finite.size:  # the exploding arm's first epochs would squash the others
        a2.set_ylim(finite.min() - 0.1, finite.max() + 0.1)
    epochs_axis(a2, "log10 training loss (NaN not drawn)")
    a2.set_title("SGD+momentum lr 0.01", fontsize=9)
    name = save(fig, out_dir, "gradients")
    rows = [[label, f"{np.median(norms[i, :, 0]):.3g}", f"{np.median(norms[i, :, depth - 1]):.3g}",
             f"{np.median(ratio[i]):+.1f}",
             f"{int(diverged[i].sum())} of {n}",
             fmt(float(np.nanmean(np.where(diverged[i], np.nan, c["train_loss"][i, :, -1]))))
             if not diverged[i].all() else "NaN",
             fmt(float(final[i].mean()))] for i, label in enumerate(labels)]
    verdict = paired_verdict(effects, "Training loss became NaN in " + ", ".join(
        f"{int(diverged[i].sum())} of {n} seeds with {label}" for i, label in enumerate(labels))
        + f"; a diverged run's accuracy is that of NaN logits (argmax class 0). At "
        f"initialisation the first layer's gradient is 10^{np.median(ratio[sig]):+.1f} times "
        f"the last hidden layer's with sigmoid N(0, 1/n), 10^{np.median(ratio[tanh]):+.1f} "
        f"with tanh N(0, 1/n), 10^{np.median(ratio[he]):+.1f} with ReLU He (medians over "
        "seeds).")
    return Result("gradients", "Vanishing and exploding gradients", "Vanishing and exploding "
                  "gradients are the central difficulty of deep networks: exploding shows as a "
                  "NaN or jumping loss with huge updates, vanishing as learning that stalls "
                  "(activations on the flat part of a sigmoid / tanh).",
                  f"A plain MLP of {depth} hidden layers of {width} on the digits, four arms: "
                  "sigmoid and tanh with N(0, 1/n) weights, ReLU with N(0, 1) and with He "
                  "N(0, 2/n). Left: the norm of the loss gradient with respect to each layer's "
                  "kernel at the initial weights on 256 training images "
                  "(jtricks.diagnose.gradient_health), no training. Right: the same networks "
                  f"trained {epochs} epochs on {n_train} training images with SGD+momentum "
                  "(lr 0.01, batch 32); arms × "
                  f"{n} seeds in one vmapped program (each seed: the same data order for "
                  "every arm; initial weights drawn per arm from its initializer). Norms in "
                  "the table are medians over seeds.",
                  (["arm", "‖∇W₁‖ at init", f"‖∇W{depth}‖ at init",
                    f"log10 ‖∇W₁‖/‖∇W{depth}‖", "loss became NaN",
                    "final training loss (mean of finite runs)",
                    "final val. accuracy (mean)"], rows),
                  name, verdict, seeded_rows("gradients", labels, c, seeds),
                  {"log_ratio": dict(zip(labels, map(float, np.median(ratio, 1)))),
                   "log_total": dict(zip(labels, map(float, np.median(total, 1)))),
                   "diverged": dict(zip(labels, map(int, diverged.sum(1)))),
                   "val_accuracy": dict(zip(labels, map(float, final.mean(1)))),
                   "epochs": epochs},
                  t.seconds, effects=effects, seeds=tuple(seeds))
