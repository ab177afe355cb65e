"""Gradient accumulation inside a step (``micro_batches``), on one device and on a mesh.

A step over ``k`` strided micro-batches (``j, j + k, ...``) equals the whole-batch
step when nothing depends on the batch composition, and on any device count
equals itself on one device (batch norm and dropout included). Per device, the
micro-batches' gradients are summed locally and averaged over the devices once
per optimizer step: no all-reduce inside the loop over micro-batches.
"""

import functools
import re

import jax
import numpy as np
import pytest
from test_parallel import _assert_trees_close
from test_parallel_mesh import mesh_of

import jtricks
from jtricks import parallel
from jtricks.train import TrainState, classifier_loss, train_step

K = 4
TX = jtricks.optim.sgd(0.1, momentum=0.9)
PLAIN = jtricks.nn.mlp([16, 4])
NOISY = jtricks.nn.mlp([16, 4], batch_norm=True, dropout=0.3)


def _state(model):
    params, model_state = model.init(jax.random.PRNGKey(1), (6,))
    return TrainState.create(params=params, tx=TX, key=jax.random.PRNGKey(2),
                             model_state=model_state)


@functools.cache
def _batch():
    kx, ky = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(kx, (32, 6)), jax.random.randint(ky, (32,), 0, 4)


@functools.cache
def _one_device(model, micro_batches):
    loss_fn = classifier_loss(model)
    step = jax.jit(lambda s, b: train_step(s, b, loss_fn=loss_fn, tx=TX,
                                           micro_batches=micro_batches))
    return step(_state(model), _batch())


def test_micro_batches_equal_the_whole_batch_without_batch_statistics_or_masks():
    whole, whole_metrics = _one_device(PLAIN, 1)
    micro, micro_metrics = _one_device(PLAIN, K)
    _assert_trees_close(micro, whole)
    np.testing.assert_allclose(micro_metrics["loss"], whole_metrics["loss"], rtol=1e-6)
    # With batch norm and dropout the micro-batches are other batches: the check can fail.
    assert not np.allclose(_one_device(NOISY, K)[0].params["dense_0"]["kernel"],
                           _one_device(NOISY, 1)[0].params["dense_0"]["kernel"], atol=1e-4)


@pytest.mark.parametrize("form", ["shard_map", "jit-explicit"])  # pmap_step: the same body
def test_micro_batched_step_is_device_count_free(form):
    """Batch norm and dropout: 8 devices give the one-device micro-batched step."""
    expected, _ = _one_device(NOISY, K)
    loss_fn = classifier_loss(NOISY)
    if form == "pmap":
        step = parallel.pmap_step(loss_fn, TX, micro_batches=K)
        state, _ = step(parallel.replicate(_state(NOISY)), parallel.split_batch(_batch()))
        state = parallel.unreplicate(state)
    else:
        mesh = mesh_of("explicit" if form == "jit-explicit" else "auto")
        step = parallel.sharded_step(loss_fn, TX, mesh, per_device=form == "shard_map",
                                     micro_batches=K)
        state, _ = step(parallel.replicate_on_mesh(_state(NOISY), mesh),
                        parallel.shard_batch(_batch(), mesh))
    _assert_trees_close(jax.device_get(state), expected)


def _computation(hlo, name):
    """The text of HLO computation ``name`` and of every computation it calls."""
    match = re.search(rf"^%?{re.escape(name)} .*?^}}", hlo, re.M | re.S)
    text = match.group(0)
    for callee in set(re.findall(r"(?:calls|body|condition|to_apply)=%?([\w.\-]+)", text)):
        if callee != name:
            text += _computation(hlo, callee)
    return text


def test_per_device_accumulation_reduces_once_per_step():
    mesh = mesh_of("auto")
    step = parallel.sharded_step(classifier_loss(PLAIN), TX, mesh, per_device=True,
                                 micro_batches=K)
    hlo = step.lower(parallel.replicate_on_mesh(_state(PLAIN), mesh),
                     parallel.shard_batch(_batch(), mesh)).compile().as_text()
    bodies = re.findall(r"while\(.*?body=%?([\w.\-]+)", hlo)
    assert bodies
    for body in bodies:
        assert "all-reduce" not in _computation(hlo, body), body
    assert "all-reduce" in hlo


def test_bad_micro_batches_raise():
    with pytest.raises(ValueError, match="micro_batches=0 must be >= 1"):
        _one_device(PLAIN, 0)
    with pytest.raises(ValueError, match="micro_batches=5 does not divide the batch of 32"):
        _one_device(PLAIN, 5)
