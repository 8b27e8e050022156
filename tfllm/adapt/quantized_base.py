"""A LoRA run's frozen base held in int8 (train.base_quantization="int8").

Every frozen projection (the bases under the adapters and the projections without any) is
replaced by an Int8Linear and the token embedding by an Int8Embedding: one byte per weight
and a float32 scale per output channel (per token for the embedding), computed once from the
float weights when the run starts. The matrix products dequantize inside the compiled step
and keep only the int8 values for the backward pass (tfllm.layers.int8_linear.int8_matmul).
Adapters, norms, the learned position table and the optimizer's state stay float32.
Checkpoints hold the int8 base, so a run resumes from them exactly; `merge_lora` folds the
adapters into float kernels made from the int8 ones, so every export writes float weights.
"""

from tfllm._keras import keras
from tfllm.layers.int8_embedding import Int8Embedding
from tfllm.layers.int8_linear import Int8Linear
from tfllm.layers.token_embedding import TokenEmbedding
from tfllm.models.wrapping import replace_layers


def quantize_base(model):
    """Puts Int8Linear in place of every frozen Dense / EinsumDense of `model` (under its
    LoRA adapters too) and Int8Embedding in place of its token embedding, in place; returns
    how many layers were replaced. Call after apply_lora has frozen the model."""

    def replace(layer):
        if isinstance(layer, (Int8Linear, Int8Embedding)):
            return layer
        if isinstance(layer, TokenEmbedding):
            return Int8Embedding.from_layer(layer)
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) \
                and not layer.trainable_weights:
            return Int8Linear.from_layer(layer)
        return None

    return replace_layers(model, replace)


def dequantize_base(model):
    """The inverse, for merging and export: float layers of the base's own kinds (holding
    the int8 values times their scales) in place of every Int8Linear and Int8Embedding of
    `model`, in place; returns how many."""

    def replace(layer):
        return layer.dequantized() if isinstance(layer, (Int8Linear, Int8Embedding)) else None

    return replace_layers(model, replace)
