"""Every example runs in quick mode (in this process: no second JAX start-up) and
learns something."""

import os
import runpy

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")


def _load(name):
    return runpy.run_path(os.path.join(EXAMPLES, name), run_name="example")


def test_flax_with_jtricks_optimizer():
    assert _load("flax_with_jtricks_optimizer.py")["main"](quick=True) > 0.8


def test_chain_with_optax():
    assert _load("chain_with_optax.py")["main"](quick=True) > 0.8


def test_lr_sweep_vmap():
    learning_rates, curves = _load("lr_sweep_vmap.py")["main"](quick=True)
    assert curves.shape == (9, 3)
    final = np.asarray(curves[:, -1])
    assert final.max() > 0.9 and final[0] < final.max()  # 1e-4 is too small for 3 epochs


def test_dropout_experiment(tmp_path):
    rates, curves = _load("dropout_experiment.py")["main"](quick=True,
                                                            plot=str(tmp_path / "d.png"))
    assert curves["accuracy"].shape == (5, 2)
    assert float(curves["accuracy"][0, -1]) > 0.8  # no dropout: learns fastest in 2 epochs
    assert (tmp_path / "d.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")))
def test_every_example_has_a_quick_flag_and_a_test(name):
    text = open(os.path.join(EXAMPLES, name)).read()
    assert "--quick" in text and '__name__ == "__main__"' in text
    assert name.removesuffix(".py") in open(__file__).read()


def test_flat_params_trains_like_the_tree():
    diff, val_acc = _load("flat_params.py")["main"](quick=True)
    assert diff < 1e-5
    assert val_acc > 0.3  # 2 epochs of a small resnet; chance is 0.1


def test_every_example_is_tested():
    with open(__file__) as f:
        source = f.read()
    untested = [n for n in os.listdir(EXAMPLES) if n.endswith(".py") and f'"{n}"' not in source]
    assert not untested, f"examples without a test: {untested}"
