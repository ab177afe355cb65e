"""Deep stacks of identical blocks, compiled once whatever their depth.

:func:`stack` repeats a block ``depth`` times. With ``scan=True`` (the default)
the blocks' parameters (and batch-norm state) are stacked on a leading axis
and the forward pass is one ``lax.scan`` over them: the program holds one
block, so a 64-block model compiles in about the time of an 8-block one, and
the optimizer sees a handful of stacked leaves instead of four per block.
``scan=False`` is the same model unrolled, the blocks' parameters under
``block_0 ... block_{depth-1}``: identical numbers, a program that grows with
depth. :func:`residual_mlp` is a deep pre-norm residual MLP built this way.

Block ``i`` is initialised with ``jax.random.split(key, depth)[i]`` and,
when training, applied with ``jax.random.fold_in(key, i)`` (its dropout masks
then follow the per-example rule of :func:`jtricks.nn.example_keys` inside
the block), in both forms.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from jtricks import init as _init
from jtricks._validate import check_bool, check_dtype, check_int, check_number, show
from jtricks.nn._layers import dense, init_dense
from jtricks.nn._models import Model, _model, _dropouts, _input_shape, _is_zero, _require_key
from jtricks.nn._normalization import init_layer_norm, layer_norm


def _block_key(key, i):
    return None if key is None else jax.random.fold_in(key, i)


def _save_products(primitive, *_, **__) -> bool:
    """The checkpoint policy of a scanned block: keep matrix products and convolutions."""
    return primitive.name in ("dot_general", "conv_general_dilated")


def scan_stacked(block: Callable, x: jax.Array, stacked, *, what: str = "stack"):
    """``x, outs = block(x, leaf_i)`` for every ``i`` along the leading axis of ``stacked``.

    The one ``lax.scan`` of the stacked blocks of :func:`stack` and
    :func:`jtricks.nn.resnet`: ``x`` is carried from one block to the next, so
    ``block`` must keep its shape and dtype; ``outs`` (the blocks' new state)
    come back stacked. For the gradient, each block keeps only the results of
    its matrix products and convolutions and recomputes the rest
    (``jax.checkpoint``): stacking every intermediate of the scanned blocks made
    the training steps of the benchmark's ResNet and transformer 1.3-1.4x
    slower on XLA:CPU than this policy.

    Raises:
      ValueError: naming ``what``, if ``block`` changes the shape or dtype of ``x``.
    """

    def body(x, xs):
        y, out = block(x, xs)
        if y.shape != x.shape or y.dtype != x.dtype:
            raise ValueError(f"{what}: the block maps {x.shape} {x.dtype} to {y.shape} "
                             f"{y.dtype}; it must keep the shape and dtype of its input")
        return y, out

    # Saved for the backward pass: the products only. The elementwise work between them
    # (normalisation, activations, softmax) is recomputed inside the backward fusions, as XLA
    # does for unrolled blocks, instead of stacking every intermediate of every block.
    return jax.lax.scan(jax.checkpoint(body, policy=_save_products), x, stacked)


def stack(block: Model, depth: int, *, scan: bool = True) -> Model:
    """``depth`` copies of ``block`` applied one after the other (``x -> block(x)``).

    The block must map its input to an output of the same shape and dtype (a
    residual block, for instance): that is what is carried from one block to
    the next.

    Args:
      block: a :class:`Model` ``(init, apply)``; its ``apply`` is called with
        the stack's ``training`` and ``axis_name`` and block ``i``'s key
        ``fold_in(key, i)`` (``None`` when the stack gets no key).
      depth: the number of blocks (>= 1).
      scan: stack the blocks' parameters and state on a leading axis of size
        ``depth`` and apply them with ``lax.scan`` (compile time independent of
        depth); ``False``: the unrolled form, ``{"block_i": ...}``.

    Returns:
      A :class:`Model`. With ``scan``, params and state have the block's
      structure with every leaf stacked (``leaf[i]`` is block ``i``'s);
      without, ``{"block_0": ..., ...}``. ``jax.tree.map(lambda a: a[i],
      stacked)`` is the unrolled form's ``block_i``.

    Raises:
      TypeError: if ``block`` is not a model.
      ValueError: for ``depth < 1``.

    Example:
      >>> block = residual_block(8)
      >>> deep = stack(block, 4)
      >>> params, state = jax.jit(deep.init, static_argnums=1)(jax.random.key(0), (8,))
      >>> params["dense"]["kernel"].shape          # 4 blocks, one leaf
      (4, 8, 8)
      >>> y, _ = deep.apply(params, state, jnp.ones((2, 8)), training=False)
      >>> unrolled = stack(block, 4, scan=False)
      >>> blocks = {f"block_{i}": jax.tree.map(lambda a: a[i], params) for i in range(4)}
      >>> y2, _ = unrolled.apply(blocks, {f"block_{i}": {} for i in range(4)},
      ...                        jnp.ones((2, 8)), training=False)
      >>> bool(jnp.allclose(y, y2, atol=1e-5))
      True
    """
    if not (callable(getattr(block, "init", None)) and callable(getattr(block, "apply", None))):
        raise TypeError(f"block={show(block)} must be a jtricks.nn.Model (init, apply), "
                        f"got {type(block).__name__}")
    depth = check_int("depth", depth, lo=1)
    scan = check_bool("scan", scan)

    def init(key, input_shape):
        keys = jax.random.split(key, depth)
        if scan:
            return jax.vmap(block.init, in_axes=(0, None))(keys, input_shape)
        params, state = {}, {}
        for i in range(depth):
            params[f"block_{i}"], state[f"block_{i}"] = block.init(keys[i], input_shape)
        return params, state

    def apply(params, state, x, *, training, key=None, axis_name=None):
        def one(p, s, x, i):
            return block.apply(p, s, x, training=training, key=_block_key(key, i),
                               axis_name=axis_name)

        if not scan:
            new_state = {}
            for i in range(depth):
                name = f"block_{i}"
                x, new_state[name] = one(params[name], state[name], x, i)
            return x, new_state

        def body(x, xs):
            p, s, i = xs
            return one(p, s, x, i)

        return scan_stacked(body, x, (params, state, jnp.arange(depth, dtype=jnp.uint32)))

    return _model(init, apply)


def residual_block(width: int, *, activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
                   kernel_init=_init.he_normal(), dropout=0.0,
                   param_dtype=jnp.float32) -> Model:
    """A pre-norm residual MLP block: ``x + dropout(activation(dense(layer_norm(x))))``.

    Args:
      width: the features in and out.
      activation: the activation after the dense layer.
      kernel_init: the dense kernel's initializer.
      dropout: drop probability of the branch's features (may be traced).
      param_dtype: dtype of the parameters.

    Returns:
      A :class:`Model` on ``(batch, width)`` inputs; params ``{"norm": {"scale",
      "bias"}, "dense": {"kernel", "bias"}}``, state ``{}``.

    Example:
      >>> params, _ = residual_block(4).init(jax.random.key(0), (4,))
      >>> sorted(params), params["dense"]["kernel"].shape
      (['dense', 'norm'], (4, 4))
    """
    width = check_int("width", width, lo=1)
    check_number("dropout", dropout, lo=0, hi=1)
    param_dtype = check_dtype("param_dtype", param_dtype, allow_none=False)
    use_dropout = not _is_zero(dropout)

    def init(key, input_shape):
        if _input_shape(input_shape) != (width,):
            raise ValueError(f"residual_block({width}): input_shape={show(input_shape)} must "
                             f"be ({width},)")
        return {"norm": init_layer_norm(width, param_dtype),
                "dense": init_dense(key, width, width, kernel_init=kernel_init,
                                    param_dtype=param_dtype)}, {}

    def apply(params, state, x, *, training, key=None, axis_name=None):
        _require_key("residual_block", key, training, use_dropout)
        branch = activation(dense(params["dense"], layer_norm(params["norm"], x)))
        if use_dropout and training:
            branch = _dropouts(key, dropout, [branch.shape], branch.dtype)(0, branch)
        return x + branch, {}

    return _model(init, apply)


def residual_mlp(num_classes: int, *, width: int = 64, depth: int = 8,
                 activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
                 kernel_init=_init.he_normal(), dropout=0.0, scan_blocks: bool = True,
                 param_dtype=jnp.float32) -> Model:
    """A deep residual MLP: ``dense`` to ``width``, ``depth`` :func:`residual_block`\\ s,
    a final layer norm and ``dense`` to ``num_classes`` logits.

    Args:
      num_classes: the number of logits.
      width: the residual stream's features.
      depth: the number of residual blocks.
      activation, kernel_init, dropout, param_dtype: as for :func:`residual_block`.
      scan_blocks: the blocks as one ``lax.scan`` over stacked parameters
        (:func:`stack`; compile time independent of depth); ``False`` unrolls them.

    Returns:
      A :class:`Model`; params ``{"stem", "blocks", "norm", "head"}`` (``blocks``
      as :func:`stack` lays them out), state ``{"blocks": ...}`` (no arrays).

    Example:
      >>> model = residual_mlp(10, width=16, depth=64)
      >>> params, state = jax.eval_shape(lambda k: model.init(k, (8, 8, 1)), jax.random.key(0))
      >>> len(jax.tree.leaves(params)), params["blocks"]["dense"]["kernel"].shape
      (10, (64, 16, 16))
      >>> logits, _ = jax.eval_shape(lambda p, s, x: model.apply(p, s, x, training=False),
      ...                            params, state, jnp.ones((2, 8, 8, 1)))
      >>> logits.shape
      (2, 10)
    """
    num_classes = check_int("num_classes", num_classes, lo=1)
    width = check_int("width", width, lo=1)
    blocks = stack(residual_block(width, activation=activation, kernel_init=kernel_init,
                                  dropout=dropout, param_dtype=param_dtype),
                   depth, scan=scan_blocks)
    use_dropout = not _is_zero(dropout)

    def init(key, input_shape):
        features = math.prod(_input_shape(input_shape))
        k_stem, k_blocks, k_head = jax.random.split(key, 3)
        block_params, block_state = blocks.init(k_blocks, (width,))
        params = {"stem": init_dense(k_stem, features, width, kernel_init=kernel_init,
                                     param_dtype=param_dtype),
                  "blocks": block_params,
                  "norm": init_layer_norm(width, param_dtype),
                  "head": init_dense(k_head, width, num_classes, kernel_init=kernel_init,
                                     param_dtype=param_dtype)}
        return params, {"blocks": block_state}

    def apply(params, state, x, *, training, key=None, axis_name=None):
        _require_key("residual_mlp", key, training, use_dropout)
        x = dense(params["stem"], jnp.reshape(x, (x.shape[0], -1)))
        x, block_state = blocks.apply(params["blocks"], state["blocks"], x, training=training,
                                      key=key, axis_name=axis_name)
        x = dense(params["head"], layer_norm(params["norm"], x))
        return x, {"blocks": block_state}

    return _model(init, apply)
