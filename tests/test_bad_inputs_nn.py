"""Bad inputs to ``jtricks.nn`` (the bad-input sweep of issue 13; see ``_bad_inputs.py``)."""

import jax
import jax.numpy as jnp
import pytest
from _bad_inputs import Bad, as_params, bad, clear_error, on

from jtricks import nn

INF, NAN = float("inf"), float("nan")
KEY = jax.random.key(0)
X = jnp.ones((2, 4))
IMAGES = jnp.ones((2, 4, 4, 4))
LN = nn.init_layer_norm(4)
BN, BN_STATE = nn.init_batch_norm(4)
CONV = nn.init_conv2d(KEY, 4, 2, 3)
DROPOUT = on(nn.dropout, KEY, X, given="key, x")
BATCH_NORM = on(nn.batch_norm, BN, BN_STATE, X, given="params, state, x")
GROUP_NORM = on(nn.group_norm, None, IMAGES, given="None, images")


def entered(context):
    """Enters a context manager (where its arguments are checked) and leaves it."""
    with context:
        pass


CASES = [
    bad("nn", DROPOUT, "rate", 1.5, training=True),
    bad("nn", DROPOUT, "rate", -0.1, training=True),
    bad("nn", DROPOUT, "rate", NAN, training=True),
    bad("nn", DROPOUT, "rate", "0.5", training=True, exc=TypeError),
    bad("nn", DROPOUT, "rate", True, training=True, exc=TypeError),
    bad("nn", DROPOUT, "training", "yes", 0.5, exc=TypeError),
    Bad("nn", "dropout(None, x, 0.5, training=True)",
        lambda: nn.dropout(None, X, 0.5, training=True), "key", "None"),
    bad("nn", on(nn.drop_path, KEY, X, given="key, x"), "rate", 2.0, training=True),
    bad("nn", on(nn.drop_path, KEY, X, given="key, x"), "training", 1, 0.5, exc=TypeError),
    bad("nn", BATCH_NORM, "momentum", 1.5, training=True),
    bad("nn", BATCH_NORM, "eps", 0.0, training=True),
    bad("nn", BATCH_NORM, "eps", INF, training=True),
    bad("nn", BATCH_NORM, "training", "no", exc=TypeError),
    bad("nn", on(nn.layer_norm, LN, X, given="ln, x"), "eps", -1.0),
    bad("nn", on(nn.rms_norm, LN, X, given="ln, x"), "eps", NAN),
    bad("nn", on(nn.instance_norm, None, IMAGES, given="None, images"), "eps", 0),
    bad("nn", GROUP_NORM, "num_groups", 0),
    bad("nn", GROUP_NORM, "num_groups", 2.5, exc=TypeError),
    bad("nn", GROUP_NORM, "num_groups", 3),
    bad("nn", GROUP_NORM, "eps", [1e-5], 2, exc=TypeError),
    bad("nn", on(nn.weight_norm, nn.init_weight_norm(jnp.ones((3, 2))), given="wn"), "eps", 0.0),
    bad("nn", nn.init_batch_norm, "num_features", 0),
    bad("nn", nn.init_batch_norm, "param_dtype", "float33", 4, exc=TypeError),
    bad("nn", nn.init_batch_norm, "stats_dtype", jnp.int32, 4, shown="int32"),
    bad("nn", nn.init_layer_norm, "num_features", 2.5, exc=TypeError),
    bad("nn", nn.init_group_norm, "num_features", -1),
    bad("nn", nn.init_instance_norm, "num_features", True, exc=TypeError),
    bad("nn", nn.init_rms_norm, "num_features", None, exc=TypeError),
    bad("nn", nn.init_layer_norm, "param_dtype", "int8", 4),
    bad("nn", on(nn.init_dense, KEY, given="key"), "in_features", 0, out_features=2),
    bad("nn", on(nn.init_dense, KEY, given="key"), "out_features", 2.5, 3, exc=TypeError),
    bad("nn", on(nn.init_dense, KEY, given="key"), "param_dtype", "nope", 3, 2, exc=TypeError),
    bad("nn", on(nn.init_conv2d, KEY, given="key"), "kernel_size", 0, 3, 2),
    bad("nn", on(nn.init_conv2d, KEY, given="key"), "kernel_size", (3, 3, 3), 3, 2),
    bad("nn", on(nn.init_conv2d, KEY, given="key"), "in_channels", -1, out_channels=2),
    bad("nn", on(nn.init_conv2d, KEY, given="key"), "use_bias", "yes", 3, 2, exc=TypeError),
    bad("nn", on(nn.conv2d, CONV, IMAGES, given="conv, images"), "padding", "same"),
    bad("nn", on(nn.conv2d, CONV, IMAGES, given="conv, images"), "stride", 0),
    bad("nn", on(nn.conv2d, CONV, IMAGES, given="conv, images"), "stride", (1, 2, 3)),
    bad("nn", on(nn.max_pool, IMAGES, given="images"), "window", 0),
    bad("nn", on(nn.max_pool, IMAGES, given="images"), "window", 2.5, exc=TypeError),
    bad("nn", on(nn.max_pool, IMAGES, given="images"), "stride", -1),
    bad("nn", nn.mlp, "features", [], shown="[]"),
    bad("nn", nn.mlp, "features", [8, 0], shown="features=0"),
    bad("nn", nn.mlp, "dropout", 1.5, [8, 2]),
    bad("nn", nn.mlp, "batch_norm", "yes", [8, 2], exc=TypeError),
    bad("nn", nn.mlp, "param_dtype", "float33", [8, 2], exc=TypeError),
    bad("nn", nn.cnn, "num_classes", 0),
    bad("nn", nn.cnn, "kernel_size", 0, 10),
    bad("nn", nn.cnn, "channels", (), 10),
    bad("nn", nn.cnn, "dropout", NAN, 10),
    bad("nn", nn.cnn, "batch_norm", None, 10, exc=TypeError),
    bad("nn", nn.resnet, "num_classes", -1),
    bad("nn", nn.resnet, "blocks_per_stage", 0, 10),
    bad("nn", nn.resnet, "drop_path", 2, 10),
    bad("nn", on(nn.example_keys, KEY, given="key"), "batch_size", -1),
    bad("nn", on(nn.example_keys, KEY, given="key"), "batch_size", 2.5, exc=TypeError),
    Bad("nn", "data_parallel('data', per_example='no')",
        lambda: entered(nn.data_parallel("data", per_example="no")), "per_example", "'no'",
        TypeError),
    Bad("nn", "mlp([8, 2]).init(key, (0,))", lambda: nn.mlp([8, 2]).init(KEY, (0,)),
        "input_shape", "(0,)"),
    Bad("nn", "mlp([8, 2], dropout=0.5).apply(..., training=True, key=None)",
        lambda: nn.mlp([8, 2], dropout=0.5).apply(
            nn.mlp([8, 2]).init(KEY, (4,))[0], {}, X, training=True), "key", "None"),
]


@pytest.mark.parametrize("case", as_params(CASES))
def test_clear_error(case):
    clear_error(case)
