"""Pre-norm Transformer decoder block: x + Attn(Norm(x)), then + MLP(Norm(x))."""

from tfllm._keras import keras, register
from tfllm.layers.causal_self_attention import CausalSelfAttention
from tfllm.layers.dropout import Dropout
from tfllm.layers.feed_forward import FeedForward
from tfllm.layers.layer_normalization import LayerNormalization
from tfllm.layers.rms_normalization import RMSNormalization

NORMALIZATIONS = {"layer": LayerNormalization, "rms": RMSNormalization}


def make_normalization(kind, epsilon, use_bias, dtype, name):
    """Builds the normalization layer called `kind` ("layer" or "rms")."""
    if kind not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalization {kind!r}; use one of {sorted(NORMALIZATIONS)}.")
    if kind == "layer":
        return LayerNormalization(epsilon=epsilon, use_bias=use_bias, dtype=dtype, name=name)
    return RMSNormalization(epsilon=epsilon, dtype=dtype, name=name)


@register("tfllm")
class TransformerBlock(keras.layers.Layer):
    """One decoder block of a GPT-style language model (pre-norm, residual).

    Args:
        num_heads, num_kv_heads, head_dim, use_rope, rope_max_wavelength: as CausalSelfAttention.
        intermediate_dim: MLP width F.
        activation: MLP activation ("gelu", "swiglu", "relu2").
        normalization: "layer" or "rms".
        norm_epsilon: epsilon of the normalizations.
        dropout: on both residual branches (and attention probabilities, unless
            attention_dropout is given).
        attention_dropout: on attention probabilities; None = dropout.
        use_bias: biases in projections and LayerNorm.
        qk_norm: as CausalSelfAttention; qk_norm_epsilon: its epsilon.
        qkv_bias: biases on the query/key/value projections; None = use_bias.
        kernel_initializer: of input projections.
        output_kernel_initializer: of the projections that write to the residual stream.

    Call args:
        x: (B, T, D); cache, cache_index: as CausalSelfAttention (returns (y, cache) then).

    Example:
        >>> TransformerBlock(num_heads=2, intermediate_dim=64)(tf.zeros((1, 8, 32))).shape
        TensorShape([1, 8, 32])
    """

    def __init__(self, num_heads, intermediate_dim, num_kv_heads=None, head_dim=None,
                 use_rope=False, rope_max_wavelength=10000, activation="gelu",
                 normalization="layer", norm_epsilon=1e-5, dropout=0.0, use_bias=True,
                 kernel_initializer="glorot_uniform", output_kernel_initializer="glorot_uniform",
                 qk_norm=False, attention_dropout=None, qk_norm_epsilon=1e-6, qkv_bias=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.qk_norm = qk_norm
        self.qk_norm_epsilon = qk_norm_epsilon
        self.qkv_bias = qkv_bias
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.use_rope = use_rope
        self.rope_max_wavelength = rope_max_wavelength
        self.activation = activation
        self.normalization = normalization
        self.norm_epsilon = norm_epsilon
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)

    def build(self, input_shape):
        policy = self.dtype_policy
        self.attention_norm = make_normalization(self.normalization, self.norm_epsilon,
                                                 self.use_bias, policy, "attention_norm")
        self.attention = CausalSelfAttention(
            num_heads=self.num_heads, head_dim=self.head_dim, num_kv_heads=self.num_kv_heads,
            use_rope=self.use_rope, rope_max_wavelength=self.rope_max_wavelength,
            dropout=self.dropout if self.attention_dropout is None else self.attention_dropout,
            use_bias=self.use_bias, qk_norm=self.qk_norm, qk_norm_epsilon=self.qk_norm_epsilon,
            qkv_bias=self.qkv_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            output_kernel_initializer=keras.initializers.serialize(self.output_kernel_initializer),
            dtype=policy, name="attention")
        self.mlp_norm = make_normalization(self.normalization, self.norm_epsilon, self.use_bias,
                                           policy, "mlp_norm")
        self.mlp = FeedForward(
            self.intermediate_dim, activation=self.activation, use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            output_kernel_initializer=keras.initializers.serialize(self.output_kernel_initializer),
            dtype=policy, name="mlp")
        self.residual_dropout = Dropout(self.dropout, dtype=policy,
                                                     name="residual_dropout")
        for layer in (self.attention_norm, self.attention, self.mlp_norm, self.mlp):
            layer.build(input_shape)
        super().build(input_shape)

    def call(self, x, cache=None, cache_index=None, training=None, segment_ids=None,
             positions=None):
        h = self.attention_norm(x)
        if cache is None:
            h = self.attention(h, training=training, segment_ids=segment_ids,
                               positions=positions)
        else:
            h, cache = self.attention(h, cache=cache, cache_index=cache_index, training=training)
        x = x + self.residual_dropout(h, training=training)
        h = self.mlp(self.mlp_norm(x))
        x = x + self.residual_dropout(h, training=training)
        return x if cache is None else (x, cache)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, intermediate_dim=self.intermediate_dim,
            num_kv_heads=self.num_kv_heads, head_dim=self.head_dim, use_rope=self.use_rope,
            rope_max_wavelength=self.rope_max_wavelength, activation=self.activation,
            normalization=self.normalization, norm_epsilon=self.norm_epsilon,
            dropout=self.dropout, attention_dropout=self.attention_dropout,
            use_bias=self.use_bias, qk_norm=self.qk_norm, qk_norm_epsilon=self.qk_norm_epsilon,
            qkv_bias=self.qkv_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            output_kernel_initializer=keras.initializers.serialize(self.output_kernel_initializer),
        )
        return config
