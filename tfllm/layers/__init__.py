"""Reusable Keras layers for language models."""

from tfllm.layers.causal_self_attention import CausalSelfAttention
from tfllm.layers.dropout import Dropout
from tfllm.layers.feed_forward import FeedForward
from tfllm.layers.fused_lstm import FusedLSTM
from tfllm.layers.layer_normalization import LayerNormalization
from tfllm.layers.position_embedding import PositionEmbedding
from tfllm.layers.recurrent_block import RecurrentBlock
from tfllm.layers.rms_normalization import RMSNormalization
from tfllm.layers.rotary_embedding import RotaryEmbedding
from tfllm.layers.token_embedding import TokenEmbedding
from tfllm.layers.transformer_block import TransformerBlock

__all__ = [
    "CausalSelfAttention", "Dropout", "FeedForward", "FusedLSTM", "LayerNormalization",
    "PositionEmbedding", "RecurrentBlock", "RMSNormalization", "RotaryEmbedding", "TokenEmbedding",
    "TransformerBlock",
]
