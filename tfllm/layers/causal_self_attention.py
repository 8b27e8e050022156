"""Causal multi-head self-attention with grouped-query heads and a KV cache.

Dimensions: B batch, T query positions, S key positions (T, or the cache length),
D model width, H query heads, K key/value heads (H % K == 0), G = H // K query
heads per key/value head, hs head size.
"""

import tensorflow as tf

from tfllm._keras import fresh_initializer, keras, register
from tfllm.layers.dropout import Dropout
from tfllm.layers.rms_normalization import RMSNormalization
from tfllm.layers.rotary_embedding import RotaryEmbedding

MASK_MARGIN = 20.0
# Query chunking (training and evaluation, no cache): windows of at least this many
# positions are attended in two halves of queries, the first half against the first half
# of the keys only, so the masked quarter of the scores is never computed. Measured with
# XLA on this project's 2-core CPU (attention forward + backward, docs/benchmarks.md):
# 128 positions (B 32, D 192) 69 -> 56 ms, 256 (B 8, D 384) 101 -> 85 ms; at 64 no gain,
# and four chunks at 256 no better than two.
CHUNKED_MIN_LENGTH = 128


@register("tfllm")
class CausalSelfAttention(keras.layers.Layer):
    """Self-attention in which position t attends to positions <= t only.

    Projections are separate EinsumDense sublayers named by role (`query`, `key`,
    `value`, `attention_output`) with an explicit head axis, so quantization can wrap
    them and a layout map can split heads across devices.

    Args:
        num_heads: H, query heads.
        head_dim: hs; defaults to D // H.
        num_kv_heads: K, key/value heads; H for multi-head, 1 for multi-query.
        use_rope: rotate queries and keys by position (RoPE).
        rope_max_wavelength: RoPE frequency base.
        dropout: on attention probabilities.
        use_bias: biases on the projections.
        qk_norm: RMS-normalize each head's queries and keys (learned gain over hs) before
            RoPE and the dot product (QK normalization, as OLMo 2, Gemma 3 and Qwen3).
        qk_norm_epsilon: epsilon of that normalization.
        qkv_bias: biases on the query/key/value projections; None = use_bias (Qwen2
            has them, and none on the output projection).
        kernel_initializer: of the query/key/value projections.
        output_kernel_initializer: of the output projection.

    Call args:
        x: (B, T, D).
        cache: optional (S, B, 2, K, hs) keys and values of earlier positions; when
            given, the new keys/values are written at slot `cache_index % S` and the
            call returns `(output, cache)`. Past S positions the cache is a ring: each
            position attends to the last S cached positions (sliding-window attention as
            Mistral decodes; RoPE scores depend on relative positions only, so nothing
            is renumbered). A call's T positions must
            not wrap around the ring (prefill at most S tokens, then decode one by one).
            Slots lead so that writing a position is a scatter XLA does in place.
        cache_index: absolute position of x[:, 0] (scalar int).

    Example:
        >>> attn = CausalSelfAttention(num_heads=4, num_kv_heads=2)
        >>> attn(tf.zeros((2, 16, 64))).shape
        TensorShape([2, 16, 64])
    """

    def __init__(self, num_heads, head_dim=None, num_kv_heads=None, use_rope=False,
                 rope_max_wavelength=10000, dropout=0.0, use_bias=True,
                 kernel_initializer="glorot_uniform", output_kernel_initializer="glorot_uniform",
                 qk_norm=False, qk_norm_epsilon=1e-6, qkv_bias=None, **kwargs):
        super().__init__(**kwargs)
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads={num_heads} must be a multiple of "
                             f"num_kv_heads={num_kv_heads}.")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.num_kv_heads = num_kv_heads
        self.use_rope = use_rope
        self.rope_max_wavelength = rope_max_wavelength
        self.dropout = dropout
        self.use_bias = use_bias
        self.qk_norm = qk_norm
        self.qk_norm_epsilon = qk_norm_epsilon
        self.qkv_bias = qkv_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)
        # Fake quantization of the attention scores and probabilities, set by
        # tfllm.compression.qat for quantization-aware training (None: float).
        self.score_quantizer = None
        self.prob_quantizer = None
        self.mix_quantizer = None

    def build(self, input_shape):
        width = input_shape[-1]
        if self.head_dim is None and width % self.num_heads:
            raise ValueError(f"Width {width} is not divisible by num_heads={self.num_heads}.")
        hs = self.head_dim or width // self.num_heads
        self._hs = hs

        qkv_bias = self.use_bias if self.qkv_bias is None else self.qkv_bias

        def projection(name, equation, output_shape, bias_axes, initializer, bias=self.use_bias):
            return keras.layers.EinsumDense(
                equation, output_shape=output_shape, bias_axes=bias_axes if bias else None,
                kernel_initializer=fresh_initializer(initializer),
                dtype=self.dtype_policy, name=name)

        self.query = projection("query", "btd,dnh->btnh", (None, self.num_heads, hs), "nh",
                                self.kernel_initializer, qkv_bias)
        self.key = projection("key", "btd,dkh->btkh", (None, self.num_kv_heads, hs), "kh",
                              self.kernel_initializer, qkv_bias)
        self.value = projection("value", "btd,dkh->btkh", (None, self.num_kv_heads, hs), "kh",
                                self.kernel_initializer, qkv_bias)
        self.attention_output = projection("attention_output", "btnh,nhd->btd", (None, width), "d",
                                           self.output_kernel_initializer)
        self.query.build(input_shape)
        self.key.build(input_shape)
        self.value.build(input_shape)
        self.attention_output.build(tuple(input_shape[:-1]) + (self.num_heads, hs))
        self.query_norm = self.key_norm = None
        if self.qk_norm:
            self.query_norm = RMSNormalization(self.qk_norm_epsilon, dtype=self.dtype_policy,
                                               name="query_norm")
            self.key_norm = RMSNormalization(self.qk_norm_epsilon, dtype=self.dtype_policy,
                                             name="key_norm")
            self.query_norm.build((None, None, self.num_heads, hs))
            self.key_norm.build((None, None, self.num_kv_heads, hs))
        self.rotary = (RotaryEmbedding(self.rope_max_wavelength, dtype=self.dtype_policy, name="rotary")
                       if self.use_rope else None)
        self.attention_dropout = Dropout(self.dropout, dtype=self.dtype_policy,
                                                      name="attention_dropout")
        super().build(input_shape)

    def call(self, x, cache=None, cache_index=None, training=None, segment_ids=None,
             positions=None):
        """`segment_ids` (B, T): packed examples, each attending only to itself (0 is
        padding); `positions` (B, T) their tokens' positions for RoPE."""
        start = 0 if cache is None else cache_index
        q = self.query(x)   # (B, T, H, hs)
        k = self.key(x)     # (B, T, K, hs)
        v = self.value(x)   # (B, T, K, hs)
        if self.query_norm is not None:
            q, k = self.query_norm(q), self.key_norm(k)
        if self.rotary is not None:
            q = self.rotary(q, start_index=start, positions=positions)
            k = self.rotary(k, start_index=start, positions=positions)
        if cache is not None:
            # Write the new positions into the fixed-size ring cache (S, B, 2, K, hs).
            slot = cache_index % tf.shape(cache)[0]
            kv_new = tf.transpose(tf.stack([k, v], axis=2), [1, 0, 2, 3, 4])  # (T, B, 2, K, hs)
            positions = slot + tf.range(tf.shape(kv_new)[0])
            cache = tf.tensor_scatter_nd_update(cache, positions[:, tf.newaxis], kv_new)
            k = tf.transpose(cache[:, :, 0], [1, 0, 2, 3])  # (B, S, K, hs)
            v = tf.transpose(cache[:, :, 1], [1, 0, 2, 3])
        out = self._attend(q, k, v, start, training, segment_ids)
        out = self.attention_output(out)  # (B, T, D)
        return out if cache is None else (out, cache)

    @property
    def _fake_quantized(self):
        """Quantization-aware training is on (qat sets the three quantizers together)."""
        return self.score_quantizer is not None

    def _attend(self, q, k, v, start, training, segments=None):
        q_len = q.shape[1]
        if (isinstance(start, int) and start == 0 and q_len is not None and k.shape[1] == q_len
                and q_len >= CHUNKED_MIN_LENGTH and not self._fake_quantized):
            # Two query chunks: rows [0, h) see keys [0, h) only (see CHUNKED_MIN_LENGTH).
            half = q_len // 2
            first = None if segments is None else (segments[:, :half], segments[:, :half])
            second = None if segments is None else (segments[:, half:], segments)
            return tf.concat([
                self._attend_rows(q[:, :half], k[:, :half], v[:, :half], 0, training, first),
                self._attend_rows(q[:, half:], k, v, half, training, second)], axis=1)
        pair = None if segments is None else (segments, segments)
        return self._attend_rows(q, k, v, start, training, pair)

    def _attend_rows(self, q, k, v, start, training, segments=None):
        """Attention of queries at positions start + [0, T) to keys at positions [0, S);
        `segments` = (query segments (B, T), key segments (B, S)): a query sees only keys
        of its own segment."""
        batch, q_len = tf.shape(q)[0], tf.shape(q)[1]
        k_len = tf.shape(k)[1]
        groups = self.num_heads // self.num_kv_heads
        q = tf.reshape(q, [batch, q_len, self.num_kv_heads, groups, self._hs])  # (B, T, K, G, hs)
        q = q * tf.cast(self._hs ** -0.5, q.dtype)
        scores = tf.einsum("btkgh,bskh->bkgts", q, k)  # (B, K, G, T, S)
        # Softmax in float32: exp of bf16 scores loses the small probabilities.
        scores = tf.cast(scores, tf.float32)
        q_pos = tf.range(q_len) + start
        # Key index s holds position s, or (ring cache, once q_pos >= S) one of the last
        # S positions, all visible: so `s <= q_pos` masks the future and the empty slots.
        allowed = tf.range(k_len)[tf.newaxis, :] <= q_pos[:, tf.newaxis]  # (T, S)
        if segments is not None:  # (B, 1, 1, T, S): causal and within one example
            same = tf.equal(segments[0][:, :, tf.newaxis], segments[1][:, tf.newaxis, :])
            allowed = tf.logical_and(allowed, same)[:, tf.newaxis, tf.newaxis]
        if training is True and not self._fake_quantized:
            # Training in float: the plain -inf mask, the cheapest (one pass fewer each way);
            # every row sees its own position, so no row is all -inf.
            probs = tf.nn.softmax(tf.where(allowed, scores, float("-inf")), axis=-1)
            return self._mix(probs, v, batch, q_len, training)
        # Inference (what export traces) and quantization-aware training:
        # masking without -1e9, which would take the whole range of an int8 scores tensor:
        # a masked score is its row's lowest visible score minus MASK_MARGIN (masked
        # entries fill in the row maximum, which never wins the minimum), so the
        # normalizer depends on visible keys only and masked keys add at most e^-20 of a
        # visible key's weight to it (< 1e-5 over 4096 keys); the masked probabilities
        # are then zeroed, so nothing of a future key reaches the output.
        row_max = tf.reduce_max(scores, axis=-1, keepdims=True)
        visible_min = tf.reduce_min(tf.where(allowed, scores, row_max), axis=-1, keepdims=True)
        floor = tf.stop_gradient(visible_min - MASK_MARGIN)
        scores = tf.where(allowed, scores, floor)
        if self.score_quantizer is not None:
            scores = self.score_quantizer(scores, training=training)
        probs = tf.where(allowed, tf.nn.softmax(scores, axis=-1), 0.0)
        if self.prob_quantizer is not None:
            probs = self.prob_quantizer(probs, training=training)
        return self._mix(probs, v, batch, q_len, training)

    def _mix(self, probs, v, batch, q_len, training):
        probs = self.attention_dropout(tf.cast(probs, self.compute_dtype), training=training)
        out = tf.einsum("bkgts,bskh->btkgh", probs, v)  # (B, T, K, G, hs)
        if self.mix_quantizer is not None:
            out = self.mix_quantizer(out, training=training)
        return tf.reshape(out, [batch, q_len, self.num_heads, self._hs])  # (B, T, H, hs)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, head_dim=self.head_dim, num_kv_heads=self.num_kv_heads,
            use_rope=self.use_rope, rope_max_wavelength=self.rope_max_wavelength,
            dropout=self.dropout, use_bias=self.use_bias, qk_norm=self.qk_norm,
            qk_norm_epsilon=self.qk_norm_epsilon, qkv_bias=self.qkv_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            output_kernel_initializer=keras.initializers.serialize(self.output_kernel_initializer),
        )
        return config

