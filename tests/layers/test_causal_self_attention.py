import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_causal, assert_config_round_trip, check_layer
from tfllm._keras import keras
from tfllm.layers import CausalSelfAttention


@pytest.mark.parametrize("kv_heads,rope", [(4, False), (2, True), (1, True)])
def test_causal_and_grouped_query_shapes(kv_heads, rope):
    layer = CausalSelfAttention(num_heads=4, num_kv_heads=kv_heads, use_rope=rope)
    x = tf.random.normal((2, 6, 16))
    assert layer(x).shape == (2, 6, 16)
    assert layer.key.kernel.shape == (16, kv_heads, 4)
    assert_causal(layer, width=16)


@pytest.mark.parametrize("rope", [False, True])
def test_cached_decode_equals_full_forward(rope):
    layer = CausalSelfAttention(num_heads=4, num_kv_heads=2, use_rope=rope)
    x = tf.random.normal((2, 7, 16))
    full = layer(x)
    cache = tf.zeros((10, 2, 2, 2, 4))
    prefix, cache = layer(x[:, :3], cache=cache, cache_index=0)
    steps = [prefix]
    for t in range(3, 7):
        out, cache = layer(x[:, t:t + 1], cache=cache, cache_index=t)
        steps.append(out)
    np.testing.assert_allclose(tf.concat(steps, 1).numpy(), full.numpy(), atol=1e-5)


def test_head_count_must_divide():
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        CausalSelfAttention(num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        CausalSelfAttention(num_heads=3)(tf.zeros((1, 2, 16)))


def test_config_round_trip():
    assert_config_round_trip(CausalSelfAttention(num_heads=2, num_kv_heads=1, use_rope=True,
                                                 dropout=0.1, use_bias=False),
                             tf.zeros((1, 3, 8)))


def test_qk_norm_normalizes_each_heads_queries_and_keys():
    layer = CausalSelfAttention(num_heads=4, num_kv_heads=2, use_rope=True, qk_norm=True)
    x = tf.random.normal((2, 6, 16)) * 30.0  # scale the queries and keys would carry
    assert layer(x).shape == (2, 6, 16)
    assert_causal(layer, width=16)
    assert layer.query_norm.gamma.shape == (4,) and layer.key_norm.gamma.shape == (4,)
    q = layer.query_norm(layer.query(x))
    np.testing.assert_allclose(tf.reduce_mean(q ** 2, axis=-1).numpy(), 1.0, rtol=1e-3)
    # The cached decode path normalizes the same way.
    cache = tf.zeros((6, 2, 2, 2, 4))
    prefix, cache = layer(x[:, :5], cache=cache, cache_index=0)
    last, _ = layer(x[:, 5:], cache=cache, cache_index=5)
    np.testing.assert_allclose(tf.concat([prefix, last], 1).numpy(), layer(x).numpy(), atol=1e-4)
    assert_config_round_trip(layer, x)


def _loss_and_grads(layer, x, training, jit):
    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.cos(tf.range(y.shape[-1], dtype=y.dtype)))
        return loss, tape.gradient(loss, [x] + layer.trainable_variables)
    return tf.function(f, jit_compile=jit)(x)


@pytest.mark.parametrize("jit", [False, True])
def test_training_paths_compute_the_plain_attention(monkeypatch, jit):
    """Training at 128+ positions attends in two query chunks with a -inf mask; its loss
    and gradients are those of the one-chunk, int8-friendly path inference uses."""
    keras.utils.set_random_seed(0)
    layer = CausalSelfAttention(num_heads=4, num_kv_heads=2, use_rope=True)
    x = tf.random.normal((2, 130, 16)) * 3.0
    layer(x)
    loss, grads = _loss_and_grads(layer, x, training=True, jit=jit)
    inference_loss, inference_grads = _loss_and_grads(layer, x, training=False, jit=jit)
    monkeypatch.setattr("tfllm.layers.causal_self_attention.CHUNKED_MIN_LENGTH", 10 ** 9)
    plain_loss, plain_grads = _loss_and_grads(layer, x, training=True, jit=jit)
    for other, other_grads in ((inference_loss, inference_grads), (plain_loss, plain_grads)):
        np.testing.assert_allclose(loss.numpy(), other.numpy(), rtol=1e-5)
        for g, h in zip(grads, other_grads):
            # Float32 sums in another order: differences of ~1e-6 of the gradient's scale.
            np.testing.assert_allclose(g.numpy(), h.numpy(), rtol=1e-4,
                                       atol=1e-5 * np.abs(h.numpy()).max())


def test_chunked_training_attention_is_causal():
    layer = CausalSelfAttention(num_heads=2)
    assert_causal(lambda x: layer(x, training=True), batch=1, length=128, width=8)


def _decode(layer, x):
    """(full forward, prefix of 3 then one token at a time through the cache)."""
    cache = tf.zeros((x.shape[1], x.shape[0], 2, layer.num_kv_heads, 4))
    prefix, cache = layer(x[:, :3], cache=cache, cache_index=0)
    steps = [prefix]
    for t in range(3, x.shape[1]):
        out, cache = layer(x[:, t:t + 1], cache=cache, cache_index=t)
        steps.append(out)
    return layer(x), tf.concat(steps, 1)


def test_layer_contract():
    check_layer(lambda: CausalSelfAttention(num_heads=4, num_kv_heads=2, use_rope=True,
                                            qk_norm=True, use_bias=False),
                tf.random.normal((2, 6, 16)), decode=_decode)
