"""jtricks transforms and optax transforms in one chain, trained with jtricks.train.fit.

Both libraries share the GradientTransformation protocol, so they mix freely in
either direction: ``optax.chain(jtricks..., optax...)`` or
``jtricks.optim.chain(optax..., jtricks...)``.

    python examples/chain_with_optax.py [--quick]
"""

import argparse

import jax
import optax

import jtricks
import jtricks.optim as jo
from jtricks.train import TrainState, classifier_eval, classifier_loss, fit


def main(quick: bool = False) -> float:
    images, labels = jtricks.data.load_digits()
    tr, va, _ = jtricks.data.split(jax.random.PRNGKey(0), len(labels), stratify=labels)
    scaler = jtricks.data.standardize(images[tr])
    train, val = (scaler(images[tr]), labels[tr]), (scaler(images[va]), labels[va])
    epochs = 3 if quick else 15
    steps_per_epoch = len(tr) // 32

    # optax outside, jtricks inside: the lesson's gradient clipping and ×0.98-per-epoch
    # decay from jtricks, Adam's moments and decoupled weight decay from optax.
    tx = optax.chain(
        jo.clip_by_global_norm(1.0),
        optax.scale_by_adam(),
        optax.add_decayed_weights(1e-4),
        jo.scale_by_learning_rate(jo.schedules.per_epoch(3e-3, 0.98, steps_per_epoch)),
    )
    model = jtricks.nn.mlp((128, 10), dropout=0.1)
    params, model_state = model.init(jax.random.PRNGKey(1), (8, 8, 1))
    state = TrainState.create(params=params, tx=tx, key=2, model_state=model_state)
    result = fit(state, train, loss_fn=classifier_loss(model), tx=tx, epochs=epochs, batch_size=32,
                 data_key=3, val_data=val, eval_fn=classifier_eval(model), progress=not quick)
    accuracy = result.history[-1]["val_accuracy"]
    print(f"optax.chain(jtricks clip, optax adam, jtricks schedule): "
          f"validation accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    main(parser.parse_args().quick)
