"""Low-rank adaptation (LoRA, Hu et al. 2021) of a frozen Dense or EinsumDense layer."""

import math

import numpy as np
import tensorflow as tf

from tfllm._keras import keras, register
from tfllm.layers.dropout import Dropout


def kernel_in_axes(layer):
    """How many leading axes of a Dense / EinsumDense kernel meet the input: 1 for a Dense;
    for an EinsumDense the kernel's letters its input shares ("btnh,nhd->btd": 2)."""
    if isinstance(layer, keras.layers.EinsumDense):
        inputs, rest = layer.equation.split(",")
        return sum(letter in inputs for letter in rest.split("->")[0])
    return 1


@register("tfllm")
class LoRAAdapter(keras.layers.Layer):
    """y = base(x) + (alpha / rank) * dropout(x) A B: `base` frozen, A and B trained.

    The base's kernel is read as a matrix (prod(in), prod(out)): its first `in_axes` axes
    meet the input (the attention output projection's (H, hs, D) kernel has two, every
    other projection one). B starts at zero, so the adapted layer starts as the base.
    `merged_kernel()` folds the adapter into the base kernel for export.

    Args:
        base: the built Dense or EinsumDense it adapts (held as `base`, its variables
            unchanged: checkpoints and the optimizer see them under base/).
        rank: r, the adapters' inner width.
        alpha: the adapter's output is scaled by alpha / r.
        in_axes: kernel axes contracted with the input.
        dropout: on the adapter's input.

    Example:
        >>> dense = keras.layers.Dense(16); dense.build((None, 8))
        >>> LoRAAdapter(dense, rank=4)(tf.zeros((2, 8))).shape
        TensorShape([2, 16])
    """

    def __init__(self, base, rank, alpha=16.0, in_axes=1, dropout=0.0, **kwargs):
        super().__init__(dtype=base.dtype_policy, name=base.name, **kwargs)
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.in_axes = in_axes
        self.dropout = dropout
        shape = tuple(base.kernel.shape)
        self.in_shape, self.out_shape = shape[:in_axes], shape[in_axes:]
        fan_in, fan_out = int(np.prod(self.in_shape)), int(np.prod(self.out_shape))
        # A as PEFT and the paper initialize it (Kaiming-uniform); B zero.
        bound = 1 / math.sqrt(fan_in)
        self.lora_a = self.add_weight(
            "lora_a", shape=(fan_in, rank),
            initializer=keras.initializers.RandomUniform(-bound, bound))
        self.lora_b = self.add_weight("lora_b", shape=(rank, fan_out), initializer="zeros")
        self.adapter_dropout = Dropout(dropout, dtype=self.dtype_policy, name="adapter_dropout")
        self.built = True

    @property
    def scale(self):
        return self.alpha / self.rank

    @property
    def kernel(self):
        return self.base.kernel

    @property
    def bias(self):
        return self.base.bias

    def call(self, x, training=None):
        y = self.base(x)
        lead = tf.shape(x)[:tf.rank(x) - self.in_axes]
        fan_in = self.lora_a.shape[0]
        h = tf.reshape(self.adapter_dropout(x, training=training),
                       tf.concat([lead, [fan_in]], 0))  # (..., prod(in))
        a = tf.cast(self.lora_a, self.compute_dtype)
        b = tf.cast(self.lora_b * self.scale, self.compute_dtype)
        delta = tf.matmul(tf.matmul(h, a), b)  # (..., prod(out)): two thin matmuls
        return y + tf.reshape(delta, tf.concat([lead, self.out_shape], 0))

    def merged_kernel(self):
        """The base kernel with the adapter folded in (float32)."""
        update = tf.matmul(self.lora_a, self.lora_b) * self.scale
        return self.base.kernel + tf.reshape(update, self.base.kernel.shape)

    def get_config(self):
        config = super().get_config()
        config.update(rank=self.rank, alpha=self.alpha, in_axes=self.in_axes,
                      dropout=self.dropout, base=keras.layers.serialize(self.base),
                      base_build=self.base.get_build_config())
        return config

    @classmethod
    def from_config(cls, config):
        """A LoRAAdapter around a new base built as the saved one was (weights fresh: load
        them as for any layer)."""
        config = dict(config)
        base = keras.layers.deserialize(config.pop("base"))
        base.build_from_config(config.pop("base_build"))
        for key in ("name", "dtype", "trainable"):  # the base's own: __init__ takes them
            config.pop(key, None)
        return cls(base, **config)
