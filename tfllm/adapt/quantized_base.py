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
            return Int8Linear.from_layer(layer, 2 if layer.name == "attention_output" else 1)
        return None

    return replace_layers(model, replace)


def dequantized(layer):
    """A float layer computing what an Int8Linear computes (a Dense for a one-axis input,
    else an EinsumDense), for merging and export; any other layer as it is."""
    if not isinstance(layer, Int8Linear):
        return layer
    import numpy as np

    kernel = layer.kernel.numpy()
    if len(layer.in_shape) == 1 and len(layer.out_shape) == 1:
        plain = keras.layers.Dense(layer.out_shape[0], use_bias=layer.use_bias,
                                   dtype=layer.dtype_policy, name=layer.name)
        plain.build((None, layer.in_shape[0]))
    else:
        plain = _einsum_dense(layer)
    plain.kernel.assign(kernel)
    if layer.use_bias:
        plain.bias.assign(np.reshape(layer.bias.numpy(), plain.bias.shape))
    return plain


def _einsum_dense(layer):
    """The attention projections' EinsumDense for an Int8Linear's shapes: (D,) -> (heads,
    head size) or (heads, head size) -> (D,), over (batch, time) inputs."""
    if len(layer.in_shape) == 1:
        equation, output_shape, bias_axes = "btd,dnh->btnh", (None, *layer.out_shape), "nh"
    else:
        equation, output_shape, bias_axes = "btnh,nhd->btd", (None, *layer.out_shape), "d"
    plain = keras.layers.EinsumDense(equation, output_shape=output_shape,
                                     bias_axes=bias_axes if layer.use_bias else None,
                                     dtype=layer.dtype_policy, name=layer.name)
    plain.build((None, None, *layer.in_shape))
    return plain
