"""LoRAAdapter: starts as its base, trains only A and B, folds into one kernel."""

import numpy as np
import tensorflow as tf

from tfllm._keras import keras
from tests.helpers import check_layer
from tfllm.layers.lora_adapter import LoRAAdapter


def _einsum(equation, output_shape, input_shape):
    layer = keras.layers.EinsumDense(equation, output_shape=output_shape, bias_axes=None)
    layer.build(input_shape)
    return layer


def test_starts_as_its_base_and_merges_exactly():
    # The attention output projection: (B, T, H, hs) with an (H, hs, D) kernel, 2 input axes.
    base = _einsum("btnh,nhd->btd", (None, 12), (None, None, 3, 4))
    adapter = LoRAAdapter(base, rank=2, alpha=4.0, in_axes=2)
    x = tf.random.normal((2, 5, 3, 4))
    np.testing.assert_array_equal(adapter(x).numpy(), base(x).numpy())  # B is zero
    adapter.lora_b.assign(tf.random.normal(adapter.lora_b.shape))
    merged = _einsum("btnh,nhd->btd", (None, 12), (None, None, 3, 4))
    merged.kernel.assign(adapter.merged_kernel())
    np.testing.assert_allclose(adapter(x).numpy(), merged(x).numpy(), atol=1e-5)


def test_only_the_adapters_are_trainable():
    base = keras.layers.Dense(6)
    base.build((None, 4))
    base.trainable = False
    adapter = LoRAAdapter(base, rank=2)
    assert [w.name.split("/")[-1] for w in adapter.trainable_weights] == ["lora_a:0", "lora_b:0"]
    x = tf.random.normal((3, 4))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(adapter(x) ** 2)
    grads = tape.gradient(y, adapter.trainable_weights)
    assert all(g is not None for g in grads)
    assert adapter.get_config()["rank"] == 2 and adapter.scale == 8.0


def test_layer_contract():
    def make():
        return LoRAAdapter(_einsum("btnh,nhd->btd", (None, 12), (None, None, 3, 4)), rank=2,
                           alpha=4.0, in_axes=2, dropout=0.1)

    def call(layer, x):
        if not layer.lora_b.numpy().any():  # B starts at zero: give the adapter a say
            layer.lora_b.assign(tf.reshape(tf.range(24, dtype=tf.float32) / 24, (2, 12)))
        return layer(x)

    check_layer(make, tf.random.normal((2, 5, 3, 4)), call=call)
