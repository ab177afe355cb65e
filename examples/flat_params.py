"""Keep the parameters flat: the optimizer sees one buffer per dtype, the model a tree.

``jtricks.optim.ravel(params)`` returns ``(flat, unravel)``. Train on ``flat``
and let the model read ``unravel(flat)``: the gradient comes back flat (the
backward pass of ``unravel`` is one concatenate per dtype), so clipping, Adam
and the update run on a few big buffers whatever the number of leaves, and
their compile time no longer grows with it (see ``BENCHMARKS.md``). The whole
``fit`` loop works unchanged; the result equals training on the tree.

    python examples/flat_params.py [--quick]
"""

import argparse

import jax
import numpy as np

import jtricks
import jtricks.optim as jo
from jtricks.train import TrainState, classifier_eval, classifier_loss, fit


def main(quick: bool = False):
    images, labels = jtricks.data.load_digits()
    tr, va, _ = jtricks.data.split(jax.random.key(0), len(labels), stratify=labels)
    scaler = jtricks.data.standardize(images[tr])
    train, val = (scaler(images[tr]), labels[tr]), (scaler(images[va]), labels[va])

    model = jtricks.nn.resnet(10, stage_channels=(8, 16), blocks_per_stage=1)
    params, model_state = model.init(jax.random.key(1), (8, 8, 1))
    flat, unravel = jo.ravel(params)
    print(f"{len(jax.tree.leaves(params))} parameter leaves -> flat buffers "
          f"{ {k: v.shape for k, v in flat.items()} }")

    # The same model, reading its parameters out of the flat buffers.
    flat_model = jtricks.nn.Model(
        model.init, lambda p, s, x, **kw: model.apply(unravel(p), s, x, **kw)
    )
    tx = jo.chain(jo.clip_by_global_norm(1.0), jo.adam(1e-3))
    epochs = 2 if quick else 8

    def run(m, p):
        state = TrainState.create(params=p, tx=tx, key=2, model_state=model_state)
        return fit(state, train, loss_fn=classifier_loss(m), tx=tx, epochs=epochs, batch_size=64,
                   data_key=3, val_data=val, eval_fn=classifier_eval(m), progress=False)

    flat_result = run(flat_model, flat)
    tree_result = run(model, params)
    diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(jax.tree.leaves(unravel(flat_result.state.params)),
                        jax.tree.leaves(tree_result.state.params))
    )
    val_acc = flat_result.history[-1]["val_accuracy"]
    print(f"after {epochs} epochs: validation accuracy {val_acc:.3f}; "
          f"flat and tree parameters differ by at most {diff:.2e}")
    return diff, val_acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two epochs only")
    main(parser.parse_args().quick)
