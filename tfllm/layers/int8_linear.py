"""A frozen projection held as int8 with one float32 scale per output channel."""

import numpy as np
import tensorflow as tf

from tfllm._keras import keras, register


def quantize_int8(matrix, axis=0, in_axes=1):
    """(int8 values, float32 scales) of a float array read as a matrix (its first `in_axes`
    axes flattened into rows, the others into columns): one scale per column (`axis` 0) or
    per row (`axis` 1), s = max|w| / 127, values round(w / s), each within s / 2 of w.

    `matrix` may be a tf.Variable: it is read a block of rows at a time, so quantizing a
    large table (an embedding of 50k x 768) holds a few float copies of one block, not of
    the table, next to the variable itself."""
    width = int(np.prod(matrix.shape[in_axes:]))
    step = max(1, (1 << 20) // int(np.prod(matrix.shape[1:])))  # ~1M values a block

    def blocks():
        for start in range(0, matrix.shape[0], step):
            yield np.asarray(matrix[start:start + step], np.float32).reshape(-1, width)

    def scales(peak):
        return np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)

    def rounded(block, scale):
        return np.clip(np.rint(block / scale), -127, 127).astype(np.int8)

    if axis == 0:
        peak = np.zeros(width, np.float32)
        for block in blocks():
            peak = np.maximum(peak, np.abs(block).max(axis=0))
        scale = scales(peak)
        return np.concatenate([rounded(block, scale) for block in blocks()]), scale
    values, scale = [], []
    for block in blocks():
        scale.append(scales(np.abs(block).max(axis=1)))
        values.append(rounded(block, scale[-1][:, None]))
    return np.concatenate(values), np.concatenate(scale)


def int8_matmul(x, values, scale, transpose=False):
    """x @ (values * scale) for int8 `values` (K, N) and per-column `scale` (N,), or, with
    `transpose`, x @ (values * scale[:, None]).T for values (N, K): the scale multiplies the
    product, so the float matrix is made per call and never kept for the backward pass,
    which makes it again (only x gets a gradient: the base is frozen)."""

    @tf.custom_gradient
    def product(x):
        y = tf.matmul(x, tf.cast(values, x.dtype), transpose_b=transpose) * tf.cast(scale, x.dtype)

        def grad(dy):
            return tf.matmul(dy * tf.cast(scale, dy.dtype), _float_again(values, dy.dtype),
                             transpose_b=not transpose)

        return y, grad

    return product(x)


def _float_again(values, dtype):
    """The float matrix of int8 `values`, computed otherwise than the forward pass's cast:
    XLA's common-subexpression elimination would merge two identical casts into one, whose
    float matrix would then live from the forward pass to the backward one, layer after
    layer: the whole base in float, the memory the int8 base exists to save. (Read as
    uint8, values above 127 are the negative ones, 256 too high.)"""
    unsigned = tf.cast(tf.bitcast(values, tf.uint8), dtype)
    return unsigned - tf.cast(unsigned > 127, dtype) * 256


@register("tfllm")
class Int8Linear(keras.layers.Layer):
    """y = x W + b with W frozen as int8 values and per-output-channel float32 scales.

    Made from a built Dense or EinsumDense (`from_layer`), whose kernel is read as a
    matrix (prod(in), prod(out)) with its first `kernel_in_axes` axes meeting the input, as
    LoRAAdapter reads it. Holds 1 byte per weight instead of 4; `kernel` gives the float
    kernel (values times scales) in the base's shape, and `dequantized()` a layer of the
    base's own kind and config holding it, for merging and export.

    Example:
        >>> dense = keras.layers.Dense(16); dense.build((None, 8))
        >>> Int8Linear.from_layer(dense)(tf.ones((2, 8))).shape
        TensorShape([2, 16])
    """

    def __init__(self, kernel_shape, in_axes, use_bias, base, base_build, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # The base's serialized config and build config: what `dequantized` rebuilds.
        self.base_config, self.base_build, self.use_bias = base, base_build, use_bias
        self.in_shape, self.out_shape = tuple(kernel_shape[:in_axes]), tuple(kernel_shape[in_axes:])
        fan_in, fan_out = int(np.prod(self.in_shape)), int(np.prod(self.out_shape))
        self.values = self.add_weight("kernel_int8", shape=(fan_in, fan_out), dtype=tf.int8,
                                      initializer="zeros", trainable=False)
        self.scale = self.add_weight("kernel_scale", shape=(fan_out,), dtype=tf.float32,
                                     initializer="ones", trainable=False)
        self.bias = (self.add_weight("bias", shape=self.out_shape, initializer="zeros",
                                     trainable=False) if use_bias else None)
        self.built = True

    @classmethod
    def from_layer(cls, layer):
        """The int8 copy of a built Dense / EinsumDense (its name and dtype policy)."""
        from tfllm.layers.lora_adapter import kernel_in_axes

        in_axes = kernel_in_axes(layer)
        quantized = cls(tuple(layer.kernel.shape), in_axes, layer.bias is not None,
                        keras.layers.serialize(layer), layer.get_build_config(),
                        dtype=layer.dtype_policy, name=layer.name)
        values, scale = quantize_int8(layer.kernel, in_axes=in_axes)
        quantized.values.assign(values)
        quantized.scale.assign(scale)
        if layer.bias is not None:
            quantized.bias.assign(np.reshape(layer.bias.numpy(), quantized.out_shape))
        return quantized

    def dequantized(self):
        """The base layer again (its class and config), holding `kernel` and the bias."""
        plain = keras.layers.deserialize(self.base_config)
        plain.build_from_config(self.base_build)
        plain.kernel.assign(self.kernel)
        if self.bias is not None:
            plain.bias.assign(np.reshape(self.bias.numpy(), plain.bias.shape))
        return plain

    @property
    def kernel(self):
        matrix = tf.cast(self.values, tf.float32) * self.scale
        return tf.reshape(matrix, self.in_shape + self.out_shape)

    def call(self, x):
        lead = tf.shape(x)[:tf.rank(x) - len(self.in_shape)]
        h = tf.reshape(x, tf.concat([lead, [self.values.shape[0]]], 0))
        y = int8_matmul(h, self.values, self.scale)
        y = tf.reshape(y, tf.concat([lead, self.out_shape], 0))
        if self.bias is not None:
            y = y + tf.cast(self.bias, y.dtype)
        return y

    def get_config(self):
        config = super().get_config()
        config.update(kernel_shape=list(self.in_shape + self.out_shape),
                      in_axes=len(self.in_shape), use_bias=self.use_bias,
                      base=self.base_config, base_build=self.base_build)
        return config
