"""Int8Linear and Int8Embedding: a frozen base held as int8 values and float32 scales."""

import numpy as np
import tensorflow as tf

from tests.helpers import check_layer
from tfllm._keras import keras
from tfllm.layers.int8_embedding import Int8Embedding
from tfllm.layers.int8_linear import Int8Linear
from tfllm.layers.token_embedding import TokenEmbedding


def _einsum_query():
    layer = keras.layers.EinsumDense("btd,dnh->btnh", output_shape=(None, 3, 4), bias_axes="nh")
    layer.build((None, None, 8))
    layer.bias.assign(tf.random.normal(layer.bias.shape))
    return layer


def test_int8_linear_computes_the_dequantized_kernel():
    base = _einsum_query()
    int8 = Int8Linear.from_layer(base)
    x = tf.random.normal((2, 5, 8))
    np.testing.assert_allclose(int8(x), tf.einsum("btd,dnh->btnh", x, int8.kernel) + base.bias,
                               atol=1e-5)
    np.testing.assert_allclose(int8.kernel, base.kernel, atol=np.abs(base.kernel).max() / 254 + 1e-7)
    assert not int8.trainable_weights and int8.values.dtype == tf.int8


def test_int8_linear_gradient_is_the_float_kernels():
    int8 = Int8Linear.from_layer(_einsum_query())
    x = tf.random.normal((2, 5, 8))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.sin(int8(x)))
        z = tf.reduce_sum(tf.sin(tf.einsum("btd,dnh->btnh", x, int8.kernel) + int8.bias))
    np.testing.assert_allclose(tape.gradient(y, x), tape.gradient(z, x), atol=1e-5)


def test_int8_embedding_looks_up_and_attends_as_its_float_table():
    emb = TokenEmbedding(20, 8)
    emb.build(None)
    int8 = Int8Embedding.from_layer(emb)
    ids = tf.constant([[1, 5, 19]])
    np.testing.assert_allclose(int8(ids), tf.gather(int8.embeddings, ids), atol=1e-6)
    x = tf.random.normal((1, 3, 8))
    np.testing.assert_allclose(int8.attend(x), tf.einsum("btd,vd->btv", x, int8.embeddings),
                               atol=1e-5)
    np.testing.assert_allclose(int8.dequantized().embeddings, int8.embeddings)


def test_layer_contract():
    check_layer(lambda: Int8Linear.from_layer(_einsum_query()), tf.random.normal((2, 5, 8)))

    def make_embedding():
        emb = TokenEmbedding(20, 8)
        emb.build(None)
        return Int8Embedding.from_layer(emb)

    check_layer(make_embedding, tf.constant([[1, 5, 19]]),
                call=lambda layer, ids: layer.attend(layer(ids)))
