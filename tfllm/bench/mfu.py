"""Model FLOPs utilization: the model's training FLOPs per token against the machine's
measured matmul peak.

Convention (as nanoGPT / PaLM): a training step costs 6 FLOPs per token per parameter
that takes part in a matmul (2 forward, 4 backward), plus, for a Transformer,
12 * L * T * D per token for the attention scores and their weighted sum (T the
training context). Lookups (token and learned position embeddings) are not matmuls and
are not counted, except a tied token embedding, which is the output projection.
Normalization gains and biases are counted; they are a fraction of a percent.

The peak is measured, not taken from a data sheet: the best rate of large square
matmuls on this machine, in TensorFlow, with and without XLA (tfllm.hardware).
`tfllm.benchmark` measures it in every run; `tfllm.train` reuses the last measurement of
this machine (cached under ~/.cache/tfllm) so its progress line can show MFU without the
cost.
"""

import numpy as np

from tfllm.models import GPT, RecurrentLM

# The dtype whose peak an MFU is measured against, by mixed-precision policy.
POLICY_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def flops_per_token(model):
    """Training FLOPs per token of a GPT or RecurrentLM, by the convention above."""
    params = _count(model.trainable_weights)
    if isinstance(model, GPT):
        if model.position_embedding is not None:
            params -= _count(model.position_embedding.trainable_weights)
        if not model.tie_embeddings:
            params -= _count(model.token_embedding.trainable_weights)
        attention = 12 * model.num_layers * model.max_length * model.hidden_dim
        return 6 * params + 4 * _frozen_matmul_params(model) + attention
    if isinstance(model, RecurrentLM):
        return 6 * (params - _count(model.token_embedding.trainable_weights))
    raise TypeError(f"no FLOP count for {type(model).__name__}; tfllm counts GPT and RecurrentLM.")


def _frozen_matmul_params(model):
    """Parameters of a GPT's frozen matmuls (LoRA fine-tuning): forward and input
    gradient but no weight gradient, so 4 FLOPs per token each instead of 6."""
    from tfllm._keras import keras

    trainable = {id(v) for v in model.trainable_weights}
    frozen = [layer.kernel for layer in model._flatten_layers()
              if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))
              and id(layer.kernel) not in trainable]
    if model.tie_embeddings and id(model.token_embedding.embeddings) not in trainable:
        frozen.append(model.token_embedding.embeddings)  # the tied head's matmul
    return _count(frozen)
