"""Small models as ``Model(init, apply)`` pairs built from the layers of this package.

Every model follows one interface::

    params, state = model.init(key, input_shape)      # one example, no batch axis
    y, new_state = model.apply(params, state, x, *, training, key=None, axis_name=None)

``params`` is a nested dict with readable names (``{"dense_0": {"kernel",
"bias"}, "bn_0": {"scale", "bias"}, ...}``); ``state`` holds the batch-norm
running statistics (a :class:`~jtricks.nn.BatchNormState` per layer) under the
same names and is ``{}`` without batch norm.
``key`` is needed only when ``training`` and the model has dropout or drop
path; ``axis_name`` is passed on to :func:`batch_norm`. Hyperparameters such
as the dropout rate may be traced, so a sweep can build the model inside a
``vmap``-ed function.

The models are kept small: they train in seconds on CPU on the 8x8 digits and
28x28 MNIST images used by the demo, sweeps and benchmarks.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.core
import jax.numpy as jnp

from jtricks import init as _init
from jtricks._xla import RUN_ONCE
from jtricks._validate import (
    check_bool,
    check_dtype,
    check_int,
    check_number,
    check_shape,
    concrete_value,
    show,
)
from jtricks.nn._dropout import apply_mask, keep_and_scale, keep_masks
from jtricks.nn._layers import (
    conv2d,
    dense,
    global_avg_pool,
    init_conv2d,
    init_dense,
    max_pool,
)
from jtricks.nn._normalization import batch_norm as _batch_norm
from jtricks.nn._normalization import init_batch_norm


class Model(NamedTuple):
    """A model as a pair of pure functions.

    Attributes:
      init: ``init(key, input_shape) -> (params, state)``; ``input_shape`` is
        the shape of ONE example (no batch axis).
      apply: ``apply(params, state, x, *, training, key=None, axis_name=None)
        -> (y, new_state)`` on a batch ``x`` of shape ``(batch, *input_shape)``.
    """

    init: Callable[..., tuple[Any, Any]]
    apply: Callable[..., tuple[jax.Array, Any]]


def _model(init: Callable[..., tuple[Any, Any]], apply: Callable[..., Any]) -> Model:
    """The :class:`Model` of a jtricks model: ``init`` runs as one compiled program.

    Called eagerly, ``init(key, input_shape)`` would compile each random draw as a
    program of its own at XLA's default level (the digits MLP's three layers: 2-4 s
    before the first step on 2 cores). As one jitted program compiled with
    ``jtricks._xla.RUN_ONCE``'s options (the same bits as ``jax.jit(init)`` at the
    default options) it compiles once per input shape. Inside a trace that stages a program out
    (``jit``, ``eval_shape``, another model's ``init``) it is the plain function: XLA
    takes compiler options only from the outermost program.
    """
    compiled = jax.jit(init, static_argnums=1, compiler_options=RUN_ONCE)

    @functools.wraps(init)
    def one_program(key, input_shape):
        if isinstance(key, jax.core.Tracer) or isinstance(jnp.zeros((), jnp.uint8),
                                                          jax.core.Tracer):
            return init(key, input_shape)
        return compiled(key, _input_shape(input_shape))

    return Model(one_program, apply)


def _is_zero(rate) -> bool:
    value = concrete_value(rate)
    return value is not None and bool((value == 0).all())


def _check_features(name: str, features) -> tuple[int, ...]:
    if isinstance(features, (int,)) or not isinstance(features, Sequence) or not features:
        raise ValueError(f"{name}={show(features)} must be a non-empty sequence of positive ints")
    return tuple(check_int(name, f, lo=1) for f in features)


def _input_shape(input_shape) -> tuple[int, ...]:
    """One example's shape as a tuple (an int is a vector's length)."""
    shape = check_shape("input_shape", input_shape)
    if 0 in shape:
        raise ValueError(f"input_shape={show(input_shape)} must have positive sizes")
    return shape


def _require_key(model: str, key, training: bool, random: bool) -> None:
    if check_bool("training", training) and random and key is None:
        raise ValueError(
            f"{model}.apply: key=None but training=True and the model has dropout / drop "
            "path; pass key=... (a PRNG key)"
        )


def _bn(params, state, name, x, training, axis_name, new_state):
    y, new_state[name] = _batch_norm(
        params[name], state[name], x, training=training, axis_name=axis_name
    )
    return y


def _drop_masks(key, rates, shapes, dtype):
    """``(masks, scales)`` of every dropout (or drop-path) site of a forward pass, drawn at once.

    One random draw for the whole pass (see :func:`keep_masks`) instead of one
    per layer; site ``i`` is ``apply_mask(x, masks[i], scales[i])``.
    """
    if not isinstance(rates, (list, tuple)):
        rates = [rates] * len(shapes)
    keeps, scales = zip(*(keep_and_scale(rate, dtype) for rate in rates))
    return keep_masks(key, list(keeps), shapes), list(scales)


def _dropouts(key, rates, shapes, dtype):
    """``drop(i, x)``: applies site ``i``'s mask and scale (:func:`_drop_masks`) to ``x``."""
    masks, scales = _drop_masks(key, rates, shapes, dtype)
    return lambda i, x: apply_mask(x, masks[i], scales[i])


def mlp(
    features: Sequence[int],
    *,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    kernel_init=_init.he_normal(),
    batch_norm: bool = False,
    dropout=0.0,
    param_dtype=jnp.float32,
) -> Model:
    """A multilayer perceptron: ``dense -> [batch_norm] -> activation -> [dropout]`` per layer.

    The input's non-batch axes are flattened. ``features[:-1]`` are the widths of
    the hidden layers (so depth and width are configurable); ``features[-1]``
    is the number of outputs (logits), with no activation after it. Batch norm,
    when on, sits after the weights and before the activation, as in the lesson.

    Args:
      features: e.g. ``(128, 64, 10)``: two hidden layers and 10 logits.
      activation: the hidden layers' activation.
      kernel_init: initializer of the dense kernels (default
        :func:`jtricks.init.he_normal`).
      batch_norm: insert :func:`batch_norm` after each hidden dense layer.
      dropout: drop probability after each hidden activation, in ``[0, 1]``
        (may be traced; 0 disables it and no key is needed).
      param_dtype: dtype of the parameters.

    Returns:
      A :class:`Model`. Params: ``{"dense_i": {"kernel", "bias"}, "bn_i":
      {"scale", "bias"}}``; state: ``{"bn_i": BatchNormState(mean, var)}`` or ``{}``.

    Raises:
      ValueError: for empty or non-positive ``features``, a ``dropout`` outside
        ``[0, 1]``, or (in ``apply``) a missing key when training with dropout.

    Example:
      >>> model = mlp((32, 10), dropout=0.1)
      >>> params, state = model.init(jax.random.key(0), (8, 8, 1))
      >>> logits, state = model.apply(params, state, jnp.ones((5, 8, 8, 1)),
      ...                             training=True, key=jax.random.key(1))
      >>> logits.shape
      (5, 10)
    """
    features = _check_features("features", features)
    check_number("dropout", dropout, lo=0, hi=1)
    check_bool("batch_norm", batch_norm)
    param_dtype = check_dtype("param_dtype", param_dtype, allow_none=False)
    use_dropout = not _is_zero(dropout)

    def init(key, input_shape):
        in_features = math.prod(_input_shape(input_shape))
        params, state = {}, {}
        keys = jax.random.split(key, len(features))
        for i, (k, out) in enumerate(zip(keys, features)):
            params[f"dense_{i}"] = init_dense(
                k, in_features, out, kernel_init=kernel_init, param_dtype=param_dtype
            )
            if batch_norm and i < len(features) - 1:
                params[f"bn_{i}"], state[f"bn_{i}"] = init_batch_norm(out, param_dtype)
            in_features = out
        return params, state

    def apply(params, state, x, *, training, key=None, axis_name=None):
        _require_key("mlp", key, training, use_dropout)
        x = jnp.reshape(x, (x.shape[0], -1))
        new_state = {}
        if use_dropout and training:
            shapes = [(x.shape[0], width) for width in features[:-1]]
            drop = _dropouts(key, dropout, shapes, x.dtype)
        for i in range(len(features)):
            x = dense(params[f"dense_{i}"], x)
            if i == len(features) - 1:
                break
            if batch_norm:
                x = _bn(params, state, f"bn_{i}", x, training, axis_name, new_state)
            x = activation(x)
            if use_dropout and training:
                x = drop(i, x)
        return x, new_state

    return _model(init, apply)


def cnn(
    num_classes: int,
    *,
    channels: Sequence[int] = (16, 32),
    dense_features: Sequence[int] = (64,),
    kernel_size: int = 3,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    kernel_init=_init.he_normal(),
    batch_norm: bool = False,
    dropout=0.0,
    param_dtype=jnp.float32,
) -> Model:
    """A small convolutional network on NHWC images.

    Each entry of ``channels`` is a block ``conv (kernel_size, SAME) ->
    [batch_norm] -> activation -> 2x2 max pool``; then the features are
    flattened and go through ``dense -> activation -> [dropout]`` for each of
    ``dense_features`` and a final dense layer of ``num_classes`` logits. With
    the defaults an 8x8x1 digit becomes 4x4x16, 2x2x32, 64, 10 logits.

    Args:
      num_classes: number of logits.
      channels: output channels of each convolution block.
      dense_features: widths of the hidden dense layers after the convolutions.
      kernel_size: size of the square convolution kernels.
      activation: activation after every hidden layer.
      kernel_init: initializer of every kernel (default He normal).
      batch_norm: batch norm after each convolution (before the activation).
      dropout: drop probability after each hidden dense layer (may be traced).
      param_dtype: dtype of the parameters.

    Returns:
      A :class:`Model`. Params ``{"conv_i", "bn_i", "dense_j"}``, the last
      ``dense_j`` producing the logits; state ``{"bn_i": ...}`` or ``{}``.

    Example:
      >>> model = cnn(10)
      >>> params, state = model.init(jax.random.key(0), (8, 8, 1))
      >>> model.apply(params, state, jnp.ones((2, 8, 8, 1)), training=False)[0].shape
      (2, 10)
    """
    num_classes = check_int("num_classes", num_classes, lo=1)
    channels = _check_features("channels", channels)
    dense_features = tuple(check_int("dense_features", f, lo=1) for f in dense_features)
    kernel_size = check_int("kernel_size", kernel_size, lo=1)
    check_number("dropout", dropout, lo=0, hi=1)
    check_bool("batch_norm", batch_norm)
    param_dtype = check_dtype("param_dtype", param_dtype, allow_none=False)
    use_dropout = not _is_zero(dropout)
    widths = dense_features + (num_classes,)

    def init(key, input_shape):
        input_shape = _input_shape(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                f"cnn: input_shape={tuple(input_shape)} must be (height, width, channels)"
            )
        h, w, c = input_shape
        params, state = {}, {}
        keys = iter(jax.random.split(key, len(channels) + len(widths)))
        for i, out in enumerate(channels):
            params[f"conv_{i}"] = init_conv2d(
                next(keys), c, out, kernel_size, use_bias=not batch_norm,
                kernel_init=kernel_init, param_dtype=param_dtype,
            )
            if batch_norm:
                params[f"bn_{i}"], state[f"bn_{i}"] = init_batch_norm(out, param_dtype)
            h, w, c = -(-h // 2), -(-w // 2), out
        in_features = h * w * c
        for j, out in enumerate(widths):
            params[f"dense_{j}"] = init_dense(
                next(keys), in_features, out, kernel_init=kernel_init, param_dtype=param_dtype
            )
            in_features = out
        return params, state

    def apply(params, state, x, *, training, key=None, axis_name=None):
        _require_key("cnn", key, training, use_dropout)
        new_state = {}
        for i in range(len(channels)):
            x = conv2d(params[f"conv_{i}"], x)
            if batch_norm:
                x = _bn(params, state, f"bn_{i}", x, training, axis_name, new_state)
            x = max_pool(activation(x))
        x = jnp.reshape(x, (x.shape[0], -1))
        if use_dropout and training:
            drop = _dropouts(key, dropout, [(x.shape[0], w) for w in widths[:-1]], x.dtype)
        for j in range(len(widths)):
            x = dense(params[f"dense_{j}"], x)
            if j == len(widths) - 1:
                break
            x = activation(x)
            if use_dropout and training:
                x = drop(j, x)
        return x, new_state

    return _model(init, apply)


def _stacked(trees):
    """The trees (of one structure) as one tree, every leaf stacked on a new leading axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def resnet(
    num_classes: int,
    *,
    stage_channels: Sequence[int] = (16, 32),
    blocks_per_stage: int = 2,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    kernel_init=_init.he_normal(),
    batch_norm: bool = True,
    drop_path=0.0,
    scan_blocks: bool = False,
    param_dtype=jnp.float32,
) -> Model:
    """A small residual network on NHWC images.

    ``stem: conv3x3 -> [bn] -> activation``, then for every stage
    ``blocks_per_stage`` basic blocks::

        branch = conv3x3 -> [bn] -> activation -> conv3x3 -> [bn]
        y = activation(shortcut + drop_path(branch))

    The first block of every stage after the first halves H and W (stride 2)
    and uses a 1x1 strided convolution as shortcut. Finally global average
    pooling and a dense layer of ``num_classes`` logits. Stochastic depth
    follows the linear rule of Huang et al.: block ``b`` of ``B`` drops its
    branch with probability ``drop_path * (b + 1) / B``.

    With ``scan_blocks`` the identical blocks of a stage (all but the strided
    first block of the stages after the first) are one ``lax.scan`` over their
    parameters and batch-norm state stacked on a leading axis (as
    :func:`jtricks.nn.stack` lays them out), so the program holds one block per
    stage and compiles in a time independent of ``blocks_per_stage``. The
    numbers are those of the unrolled network: the same initial parameters
    (stacked), outputs, running statistics, gradients and drop-path masks.

    Args:
      num_classes: number of logits.
      stage_channels: channels of each stage.
      blocks_per_stage: residual blocks per stage.
      activation: activation function.
      kernel_init: initializer of every kernel (default He normal).
      batch_norm: batch norm after every convolution.
      drop_path: maximum drop probability of a residual branch, in ``[0, 1]``
        (may be traced; 0 disables it).
      scan_blocks: apply each stage's identical blocks with one ``lax.scan``
        over stacked parameters (the layout below); ``False`` unrolls them.
      param_dtype: dtype of the parameters.

    Returns:
      A :class:`Model`. Params ``{"stem": {"conv", "bn"}, "block_k": {"conv_0",
      "bn_0", "conv_1", "bn_1"[, "shortcut_conv", "shortcut_bn"]}, "head":
      {"kernel", "bias"}}``; state ``{"stem": {"bn"}, "block_k": {"bn_0", ...}}``
      with the running statistics of every ``bn`` entry, or ``{}`` without batch norm.
      With ``scan_blocks`` the identical blocks of stage ``s`` are stacked
      under ``"stage_s"`` instead (leaf ``[j]`` is the ``j``-th of them: unrolled
      ``block_k`` with ``k = s * blocks_per_stage + j`` in the first stage, ``+ 1``
      in the others) and the first block of every later stage stays ``block_k``.

    References:
      He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition".
      https://arxiv.org/abs/1512.03385, 2015.
      Huang, Sun, Liu, Sedra, Weinberger. "Deep Networks with Stochastic Depth".
      https://arxiv.org/abs/1603.09382, 2016.

    Example:
      >>> model = resnet(10, drop_path=0.1)
      >>> params, state = model.init(jax.random.key(0), (8, 8, 1))
      >>> apply = jax.jit(model.apply, static_argnames="training")   # one compiled program
      >>> y, state = apply(params, state, jnp.ones((2, 8, 8, 1)),
      ...                  training=True, key=jax.random.key(1))
      >>> y.shape
      (2, 10)
      >>> deep = resnet(10, blocks_per_stage=8, scan_blocks=True)
      >>> params, _ = jax.eval_shape(lambda k: deep.init(k, (8, 8, 1)), jax.random.key(0))
      >>> sorted(params), params["stage_1"]["conv_0"]["kernel"].shape
      (['block_8', 'head', 'stage_0', 'stage_1', 'stem'], (7, 3, 3, 32, 32))
    """
    num_classes = check_int("num_classes", num_classes, lo=1)
    stage_channels = _check_features("stage_channels", stage_channels)
    blocks_per_stage = check_int("blocks_per_stage", blocks_per_stage, lo=1)
    check_number("drop_path", drop_path, lo=0, hi=1)
    check_bool("batch_norm", batch_norm)
    scan_blocks = check_bool("scan_blocks", scan_blocks)
    param_dtype = check_dtype("param_dtype", param_dtype, allow_none=False)
    use_drop_path = not _is_zero(drop_path)
    from jtricks.nn._stack import scan_stacked  # _stack builds on this module

    # (stride, out_channels) of every block, and the groups applied in turn: a name and
    # a block index (one block) or a list of indices (identical blocks, stacked and scanned).
    blocks: list[tuple[int, int]] = []
    groups: list[tuple[str, int | list[int]]] = []
    for s, out in enumerate(stage_channels):
        ks = list(range(len(blocks), len(blocks) + blocks_per_stage))
        blocks += [(2 if (s > 0 and b == 0) else 1, out) for b in range(blocks_per_stage)]
        if s > 0:
            groups.append((f"block_{ks[0]}", ks.pop(0)))
        if scan_blocks and ks:
            groups.append((f"stage_{s}", ks))
        else:
            groups += [(f"block_{k}", k) for k in ks]
    num_blocks = len(blocks)

    def conv_bn_init(key, c_in, c_out, size, conv, bn, params, state):
        params[conv] = init_conv2d(key, c_in, c_out, size, use_bias=not batch_norm,
                                   kernel_init=kernel_init, param_dtype=param_dtype)
        if batch_norm:
            params[bn], state[bn] = init_batch_norm(c_out, param_dtype)

    def init(key, input_shape):
        input_shape = _input_shape(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                f"resnet: input_shape={tuple(input_shape)} must be (height, width, channels)"
            )
        keys = jax.random.split(key, 2 + 3 * num_blocks)
        params, state = {"stem": {}}, {"stem": {}}
        conv_bn_init(keys[0], input_shape[-1], stage_channels[0], 3, "conv", "bn",
                     params["stem"], state["stem"])
        c = stage_channels[0]
        block_params, block_state = [], []
        for k, (stride, out) in enumerate(blocks):
            p, s = {}, {}
            conv_bn_init(keys[1 + 3 * k], c, out, 3, "conv_0", "bn_0", p, s)
            conv_bn_init(keys[2 + 3 * k], out, out, 3, "conv_1", "bn_1", p, s)
            if stride != 1 or c != out:
                conv_bn_init(keys[3 + 3 * k], c, out, 1, "shortcut_conv", "shortcut_bn", p, s)
            block_params.append(p)
            block_state.append(s)
            c = out
        for name, k in groups:
            if isinstance(k, int):
                params[name], state[name] = block_params[k], block_state[k]
            else:
                params[name] = _stacked([block_params[i] for i in k])
                state[name] = _stacked([block_state[i] for i in k])
        params["head"] = init_dense(
            keys[-1], c, num_classes, kernel_init=kernel_init, param_dtype=param_dtype
        )
        return params, (state if batch_norm else {})

    def apply(params, state, x, *, training, key=None, axis_name=None):
        _require_key("resnet", key, training, use_drop_path)

        def conv_bn(p, s, new, conv, bn, x, stride):
            x = conv2d(p[conv], x, stride=stride)
            if batch_norm:
                x, new[bn] = _batch_norm(p[bn], s[bn], x, training=training,
                                         axis_name=axis_name)
            return x

        def block(p, s, x, stride, drop):
            new: dict = {}
            branch = activation(conv_bn(p, s, new, "conv_0", "bn_0", x, stride))
            branch = conv_bn(p, s, new, "conv_1", "bn_1", branch, 1)
            if drop is not None:
                branch = apply_mask(branch, *drop)
            shortcut = x
            if "shortcut_conv" in p:
                shortcut = conv_bn(p, s, new, "shortcut_conv", "shortcut_bn", x, stride)
            return activation(shortcut + branch), new

        new_state: dict = {}
        stem: dict = {}
        x = activation(conv_bn(params["stem"], state.get("stem"), stem, "conv", "bn", x, 1))
        drops: list = [None] * num_blocks
        if use_drop_path and training:  # the linear rule: block k drops with drop_path (k+1)/B
            rates = [drop_path * (k + 1) / num_blocks for k in range(num_blocks)]
            shape = (x.shape[0],) + (1,) * (x.ndim - 1)
            drops = list(zip(*_drop_masks(key, rates, [shape] * num_blocks, x.dtype)))
        for name, k in groups:
            p, s = params[name], state.get(name, {})
            if isinstance(k, int):
                x, new = block(p, s, x, blocks[k][0], drops[k])
            else:
                drop = None if drops[k[0]] is None else _stacked([drops[i] for i in k])
                x, new = scan_stacked(lambda x, xs: block(xs[0], xs[1], x, 1, xs[2]),
                                      x, (p, s, drop), what=f"resnet {name}")
            new_state[name] = new
        x = global_avg_pool(x)
        state_out = {"stem": stem, **new_state} if batch_norm else {}
        return dense(params["head"], x), state_out

    return _model(init, apply)
