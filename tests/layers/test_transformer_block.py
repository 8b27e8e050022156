import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_causal, assert_config_round_trip, check_layer
from tfllm.layers import TransformerBlock


@pytest.mark.parametrize("norm,activation,rope", [("layer", "gelu", False), ("rms", "swiglu", True)])
def test_causal(norm, activation, rope):
    block = TransformerBlock(num_heads=2, intermediate_dim=16, normalization=norm,
                             activation=activation, use_rope=rope)
    assert_causal(block, width=8)


def test_cache_equals_full_forward():
    block = TransformerBlock(num_heads=2, intermediate_dim=16, num_kv_heads=1, use_rope=True)
    x = tf.random.normal((1, 5, 8))
    full = block(x)
    cache = tf.zeros((5, 1, 2, 1, 4))
    outs = []
    for t in range(5):
        y, cache = block(x[:, t:t + 1], cache=cache, cache_index=t)
        outs.append(y)
    np.testing.assert_allclose(tf.concat(outs, 1), full, atol=1e-5)


def test_dropout_only_in_training():
    block = TransformerBlock(num_heads=2, intermediate_dim=16, dropout=0.5)
    x = tf.random.normal((2, 4, 8))
    np.testing.assert_array_equal(block(x, training=False), block(x, training=False))
    assert not np.allclose(block(x, training=True), block(x, training=False))


def test_attention_dropout_apart_from_residual_dropout():
    x = tf.random.normal((2, 4, 8))
    attention_only = TransformerBlock(num_heads=2, intermediate_dim=16, attention_dropout=0.5)
    assert not np.allclose(attention_only(x, training=True), attention_only(x, training=False))
    residual_only = TransformerBlock(num_heads=2, intermediate_dim=16, dropout=0.5,
                                     attention_dropout=0.0)
    residual_only(x)
    assert residual_only.attention.dropout == 0.0 and residual_only.residual_dropout.rate == 0.5
    both = TransformerBlock(num_heads=2, intermediate_dim=16, dropout=0.5)
    both(x)
    assert both.attention.dropout == 0.5  # attention_dropout=None follows dropout


def test_config_round_trip():
    assert_config_round_trip(TransformerBlock(num_heads=2, intermediate_dim=16, num_kv_heads=1,
                                              normalization="rms", activation="relu2",
                                              dropout=0.1, attention_dropout=0.0),
                             tf.zeros((1, 3, 8)))


def _decode(block, x):
    cache = tf.zeros((x.shape[1], x.shape[0], 2, 1, 4))
    outs = []
    for t in range(x.shape[1]):
        y, cache = block(x[:, t:t + 1], cache=cache, cache_index=t)
        outs.append(y)
    return block(x), tf.concat(outs, 1)


def test_layer_contract():
    check_layer(lambda: TransformerBlock(num_heads=2, intermediate_dim=16, num_kv_heads=1,
                                         normalization="rms", activation="swiglu",
                                         use_rope=True, dropout=0.1),
                tf.random.normal((1, 5, 8)), decode=_decode)
