"""GPT-style decoder-only Transformer language model.

Dimensions: B batch, T positions, D width, V vocabulary, L layers, S cache length.
"""

import math

import tensorflow as tf

from tfllm._keras import Keras2Model, fresh_initializer, keras, register
from tfllm.layers.dropout import Dropout, seeded_masks
from tfllm.layers.int8_linear import Int8Linear
from tfllm.layers.position_embedding import PositionEmbedding
from tfllm.layers.token_embedding import TokenEmbedding
from tfllm.layers.transformer_block import TransformerBlock, make_normalization
from tfllm.models.presets import PresetMixin
from tfllm.models.sizes import check_model_axis, default_intermediate_dim


@register("tfllm")
class GPT(PresetMixin, Keras2Model):
    """Token ids (B, T) -> next-token logits (B, T, V), float32.

    A Keras model like any other: compile it with a sparse categorical cross-entropy
    from logits and `fit` it on (inputs, targets) windows; save and load it with
    `model.save("m.keras")` / `keras.models.load_model`. `call_with_cache` decodes
    incrementally with a fixed-size key/value cache.

    Args:
        vocab_size: V.
        num_layers: L.
        num_heads: query heads per layer.
        hidden_dim: D.
        max_length: the longest context (size of the learned position table).
        intermediate_dim: MLP width; 0 = 4 D (8/3 D rounded up to 64 for SwiGLU).
        num_kv_heads: key/value heads (grouped-query attention); 0 = num_heads.
        position: "learned" or "rope".
        normalization: "layer" or "rms".
        activation: "gelu", "swiglu" or "relu2".
        dropout: on embeddings and residual branches (and attention probabilities, unless
            attention_dropout is given).
        attention_dropout: on attention probabilities; None = dropout. 0 with dropout > 0
            skips the largest masks, (B, heads, T, T) per block.
        use_bias: biases in projections and LayerNorm.
        tie_embeddings: the output projection is the transposed token embedding.
        rope_max_wavelength: RoPE frequency base (a Hugging Face config's `rope_theta`).
        qk_norm: RMS-normalize each head's queries and keys (QK normalization).
        head_dim: hs, the width of a head; 0 = D / num_heads.
        norm_epsilon: epsilon of every normalization; 0 = tfllm's own (1e-5 for the
            block and final norms, 1e-6 for QK normalization).
        qkv_bias: biases on the query/key/value projections even where use_bias is off
            (Qwen2 has them where the rest of the model has none).
        init_std: std of the normal initializers; projections into the residual stream
            use init_std / sqrt(2 L) (GPT-2).
        remat: "block" recomputes each block's activations in the backward pass instead of
            keeping them (tf.recompute_grad per block): a training step holds one block's
            activations and the blocks' inputs, at the cost of a second forward pass.
            Gradients and dropout masks are the same as without it.

    Example:
        >>> model = GPT.from_preset("nano", vocab_size=65)
        >>> model(tf.zeros((2, 16), tf.int32)).shape
        TensorShape([2, 16, 65])
    """

    presets = {
        "nano": dict(num_layers=2, num_heads=2, hidden_dim=64, max_length=64),
        "tiny": dict(num_layers=4, num_heads=4, hidden_dim=128, max_length=64),
        "small": dict(num_layers=6, num_heads=6, hidden_dim=384, max_length=256),
        "gpt2": dict(num_layers=12, num_heads=12, hidden_dim=768, max_length=1024),
    }

    def __init__(self, vocab_size, num_layers, num_heads, hidden_dim, max_length,
                 intermediate_dim=0, num_kv_heads=0, position="learned",
                 normalization="layer", activation="gelu", dropout=0.0, use_bias=True,
                 tie_embeddings=True, rope_max_wavelength=10000.0, init_std=0.02, qk_norm=False,
                 attention_dropout=None, head_dim=0, norm_epsilon=0.0, qkv_bias=False,
                 remat="none", **kwargs):
        # The arguments are a config's `model` section (configs/base.py): 0 stands for the
        # size derived from the others, so a run's config.json and get_config() are one
        # dict. None (and remat=True/False) as older saved models wrote them is read too.
        super().__init__(**kwargs)
        if position not in ("learned", "rope"):
            raise ValueError(f"Unknown position {position!r}; use 'learned' or 'rope'.")
        remat = {True: "block", False: "none"}.get(remat, remat)
        if remat not in ("none", "block"):
            raise ValueError(f"Unknown remat {remat!r}; use 'none' or 'block'.")
        head_dim, norm_epsilon = head_dim or 0, norm_epsilon or 0.0
        if not head_dim and hidden_dim % num_heads:
            raise ValueError(f"hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}.")
        self.config_intermediate_dim, self.config_num_kv_heads = intermediate_dim or 0, num_kv_heads or 0
        intermediate_dim = intermediate_dim or default_intermediate_dim(hidden_dim, activation)
        self.vocab_size = vocab_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.max_length = max_length
        self.intermediate_dim = intermediate_dim
        self.num_kv_heads = num_kv_heads or num_heads
        self.position = position
        self.normalization = normalization
        self.activation = activation
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.use_bias = use_bias
        self.tie_embeddings = tie_embeddings
        self.rope_max_wavelength = rope_max_wavelength
        self.init_std = init_std
        self.qk_norm = qk_norm
        self.head_dim = head_dim
        self.norm_epsilon = norm_epsilon
        self.qkv_bias = bool(qkv_bias)
        self.remat = remat

        policy = self.dtype_policy
        init = keras.initializers.RandomNormal(stddev=init_std)
        residual_init = keras.initializers.RandomNormal(stddev=init_std / math.sqrt(2 * num_layers))
        self.token_embedding = TokenEmbedding(vocab_size, hidden_dim, embeddings_initializer=init,
                                              dtype=policy, name="token_embedding")
        self.position_embedding = (PositionEmbedding(max_length, initializer=init, dtype=policy,
                                                     name="position_embedding")
                                   if position == "learned" else None)
        self.embedding_dropout = Dropout(dropout, dtype=policy, name="embedding_dropout")
        self.blocks = [
            TransformerBlock(
                num_heads=num_heads, intermediate_dim=intermediate_dim,
                num_kv_heads=self.num_kv_heads, use_rope=position == "rope",
                rope_max_wavelength=rope_max_wavelength, activation=activation,
                normalization=normalization, dropout=dropout,
                attention_dropout=attention_dropout, use_bias=use_bias, kernel_initializer=init,
                output_kernel_initializer=residual_init, qk_norm=qk_norm,
                head_dim=head_dim or None, norm_epsilon=norm_epsilon or 1e-5,
                qk_norm_epsilon=norm_epsilon or 1e-6,
                qkv_bias=True if qkv_bias else None, dtype=policy, name=f"block_{i}")
            for i in range(num_layers)
        ]
        self.final_norm = make_normalization(
            normalization, norm_epsilon or 1e-5, use_bias, policy,
            "final_norm")
        self.lm_head = (None if tie_embeddings else
                        keras.layers.Dense(vocab_size, use_bias=False, kernel_initializer=fresh_initializer(init),
                                           dtype=policy, name="lm_head"))
        self.build((None, None))

    def build(self, input_shape):
        hidden_shape = (None, None, self.hidden_dim)
        self.token_embedding.build(input_shape)
        if self.position_embedding is not None:
            self.position_embedding.build(hidden_shape)
        for block in self.blocks:
            block.build(hidden_shape)
        self.final_norm.build(hidden_shape)
        if self.lm_head is not None:
            self.lm_head.build(hidden_shape)
        super().build(input_shape)

    def call(self, token_ids, training=None):
        """Logits (B, T, V) of `token_ids` (B, T), or of packed examples: a dict of
        "token_ids", "segment_ids" (B, T; each example attends only to itself) and
        "positions" (B, T; each example's positions from 0), as tfllm.data.packing makes."""
        return self._forward(token_ids, training)

    # Not converted by AutoGraph, nor is any layer called from it: Keras converts every
    # subclassed layer's `call` by default, yet no tfllm layer has tensor-dependent Python
    # control flow, so converting only costs time (with the steps' own: 0.8 s of building and
    # 1.1 s of tracing the speedrun's step, docs/speedrun.md). `call` keeps its signature for Keras.
    @tf.autograph.experimental.do_not_convert
    def _forward(self, token_ids, training):
        return self._head(self.features(token_ids, training))  # (B, T, V)

    @tf.autograph.experimental.do_not_convert  # as `_forward`
    def features(self, token_ids, training=None):
        """The final hidden states (B, T, D), after the final norm: what the head maps to
        logits. Takes what `call` takes."""
        packed = {}
        if isinstance(token_ids, dict):
            packed = {"segment_ids": token_ids["segment_ids"],
                      "positions": token_ids["positions"]}
            token_ids = token_ids["token_ids"]
        x = self._embed(token_ids, 0, training, packed.get("positions"))  # (B, T, D)
        for block in self.blocks:
            x = self._block_forward(block, x, training, packed)
        return self.final_norm(x)

    def head_weights(self):
        """The output projection as (matrix, vocab_first, trainable): the tied embedding
        table (V, D) or the head's kernel (D, V), in the compute dtype, and whether it
        trains. None when the head is not one plain matrix (a LoRA adapter or a
        compression wrapper on it): the loss then needs the logits (tfllm.losses)."""
        if self.lm_head is None:
            variable, vocab_first = self.token_embedding.embeddings, True
        elif type(self.lm_head) in (keras.layers.Dense, Int8Linear):
            variable, vocab_first = self.lm_head.kernel, False  # Int8Linear's: float, made here
        else:
            return None
        trainable = any(v is variable for v in self.trainable_variables)
        return tf.cast(variable, self.compute_dtype), vocab_first, trainable

    def _block_forward(self, block, x, training, packed=None):
        """One block in training or inference. Training with dropout, each block's masks
        come from one seed drawn for it (`seeded_masks`), with or without recomputation,
        so the recomputed forward pass applies the masks the first one did and remat
        changes nothing about the numbers."""
        packed = packed or {}
        random = training is True and _has_dropout(block)
        if training is not True or not (self.remat == "block" or random):
            return block(x, training=training, **packed)
        seed = block.residual_dropout.make_seed() if random else None

        def forward(h):
            if seed is None:
                return block(h, training=True, **packed)
            with seeded_masks(seed):
                return block(h, training=True, **packed)

        return tf.recompute_grad(forward)(x) if self.remat == "block" else forward(x)

    def layout_map(self, mesh, batch_axis="batch", model_axis="model"):
        """A tf_keras LayoutMap splitting this GPT over a DTensor mesh by role (Megatron's
        tensor parallelism): query/key/value heads and the MLP's hidden units over
        `model_axis` (their output projections over the same axis, so each device holds
        whole heads and units), the token embedding over its width; norms, output
        biases and the position table replicated. The batch goes over `batch_axis`
        (the dataset's layout, not the map's).

        Raises ValueError if a split size does not divide by the model axis.
        """
        from tensorflow.experimental import dtensor

        parts = mesh.dim_size(model_axis) if model_axis in mesh.dim_names else 1
        check_model_axis(self.get_config(), parts, model_axis)
        m = model_axis if parts > 1 else dtensor.UNSHARDED
        u = dtensor.UNSHARDED

        def layout(*specs):
            return dtensor.Layout(list(specs), mesh)

        layouts = keras.dtensor.experimental.LayoutMap(mesh=mesh)  # default: replicated
        layouts[r".*attention\.(query|key|value)\.kernel"] = layout(u, m, u)  # (D, heads, hs)
        layouts[r".*attention\.(query|key|value)\.bias"] = layout(m, u)
        layouts[r".*attention\.attention_output\.kernel"] = layout(m, u, u)  # (heads, hs, D)
        layouts[r".*mlp\.(mlp_in|mlp_gate)\.kernel"] = layout(u, m)  # (D, F)
        layouts[r".*mlp\.(mlp_in|mlp_gate)\.bias"] = layout(m)
        layouts[r".*mlp\.mlp_out\.kernel"] = layout(m, u)  # (F, D)
        layouts[r".*token_embedding\.embeddings"] = layout(u, m)  # (V, D)
        layouts[r".*lm_head\.kernel"] = layout(m, u)  # (D, V)
        return layouts

    def init_cache(self, batch_size, length):
        """A zero cache for `length` positions: a list of L tensors (S, B, 2, K, hs), one
        per block (a list, so a decode loop updates each in place)."""
        head_dim = self.head_dim or self.hidden_dim // self.num_heads
        shape = (length, batch_size, 2, self.num_kv_heads, head_dim)
        return [tf.zeros(shape, self.compute_dtype) for _ in range(self.num_layers)]

    @tf.autograph.experimental.do_not_convert  # as `_forward`
    def call_with_cache(self, token_ids, cache, cache_index):
        """Logits for `token_ids` (B, t) at positions [cache_index, cache_index + t).

        Returns (logits (B, t, V), updated cache). Prefill with the whole prompt at
        cache_index 0, then feed one token at a time. Past the cache length S, a RoPE
        model's cache is a ring: each layer attends to its last S cached positions.
        """
        x = self._embed(token_ids, cache_index, training=False)
        layer_caches = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, cache=cache[i], cache_index=cache_index, training=False)
            layer_caches.append(layer_cache)
        return self._head(self.final_norm(x)), layer_caches

    @tf.autograph.experimental.do_not_convert  # as `_forward`
    def logits_at(self, token_ids, positions):
        """Inference logits (B, P, V) of `token_ids` (B, T) at `positions` (B, P) only:
        the head, the largest matrix product per position at small widths, runs where
        asked (scoring a continuation needs its own positions, not the context's)."""
        hidden = self.features(token_ids, training=False)  # (B, T, D)
        return self._head(tf.gather(hidden, positions, batch_dims=1))

    def _embed(self, token_ids, start_index, training, positions=None):
        x = self.token_embedding(token_ids)
        if self.position_embedding is not None:
            x = self.position_embedding(x, start_index=start_index, positions=positions)
        return self.embedding_dropout(x, training=training)

    def _head(self, x):
        if self.lm_head is None:
            return self.token_embedding.attend(x)
        # float32 logits: the softmax over V is sensitive to rounding.
        return tf.cast(self.lm_head(x), tf.float32)

    def get_config(self):
        return {
            "name": self.name, "vocab_size": self.vocab_size, "num_layers": self.num_layers,
            "num_heads": self.num_heads, "hidden_dim": self.hidden_dim,
            "max_length": self.max_length, "intermediate_dim": self.config_intermediate_dim,
            "num_kv_heads": self.config_num_kv_heads, "position": self.position,
            "normalization": self.normalization, "activation": self.activation,
            "dropout": self.dropout, "attention_dropout": self.attention_dropout,
            "use_bias": self.use_bias,
            "tie_embeddings": self.tie_embeddings,
            "rope_max_wavelength": self.rope_max_wavelength, "init_std": self.init_std,
            "qk_norm": self.qk_norm, "head_dim": self.head_dim,
            "norm_epsilon": self.norm_epsilon, "qkv_bias": self.qkv_bias,
            "remat": self.remat,
        }


def _has_dropout(block):
    """Whether a block draws dropout masks (its own, or a LoRA adapter's put on it)."""
    return any(isinstance(layer, Dropout) and layer.rate > 0
               for layer in block._flatten_layers(include_self=False))
