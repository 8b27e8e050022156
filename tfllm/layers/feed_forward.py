"""Position-wise MLP of a Transformer block: GELU, SwiGLU or squared ReLU."""

import tensorflow as tf

from tfllm._keras import fresh_initializer, keras, register

ACTIVATIONS = ("gelu", "swiglu", "relu2")


@register("tfllm")
class FeedForward(keras.layers.Layer):
    """D -> F -> D MLP. Sublayers are Dense layers named by role: `mlp_in`,
    `mlp_gate` (SwiGLU only) and `mlp_out`.

    Args:
        intermediate_dim: F.
        activation: "gelu" (tanh approximation, as GPT-2), "swiglu"
            (silu(x W_gate) * (x W_in), Shazeer 2020) or "relu2" (relu(x)^2, So et al. 2021).
        use_bias: biases on the Dense layers.
        kernel_initializer: of `mlp_in` and `mlp_gate`.
        output_kernel_initializer: of `mlp_out`.

    Example:
        >>> FeedForward(256, activation="swiglu")(tf.zeros((2, 4, 64))).shape
        TensorShape([2, 4, 64])
    """

    def __init__(self, intermediate_dim, activation="gelu", use_bias=True,
                 kernel_initializer="glorot_uniform", output_kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; use one of {ACTIVATIONS}.")
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)

    def build(self, input_shape):
        def dense(name, units, initializer):
            return keras.layers.Dense(
                units, use_bias=self.use_bias, dtype=self.dtype_policy, name=name,
                kernel_initializer=fresh_initializer(initializer))

        self.mlp_in = dense("mlp_in", self.intermediate_dim, self.kernel_initializer)
        self.mlp_in.build(input_shape)
        self.mlp_gate = None
        if self.activation == "swiglu":
            self.mlp_gate = dense("mlp_gate", self.intermediate_dim, self.kernel_initializer)
            self.mlp_gate.build(input_shape)
        self.mlp_out = dense("mlp_out", input_shape[-1], self.output_kernel_initializer)
        self.mlp_out.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        super().build(input_shape)

    def call(self, x):
        h = self.mlp_in(x)  # (B, T, F)
        if self.activation == "gelu":
            h = tf.nn.gelu(h, approximate=True)
        elif self.activation == "swiglu":
            h = tf.nn.silu(self.mlp_gate(x)) * h
        else:
            h = tf.square(tf.nn.relu(h))
        return self.mlp_out(h)  # (B, T, D)

    def get_config(self):
        config = super().get_config()
        config.update(
            intermediate_dim=self.intermediate_dim, activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            output_kernel_initializer=keras.initializers.serialize(self.output_kernel_initializer),
        )
        return config
