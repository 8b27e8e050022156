"""Adapting a trained model: LoRA adapters and distillation from a teacher.

Names load lazily (TensorFlow with them).
"""

from tfllm._lazy import lazy_getattr

# train.lora_targets: each name, the projections (GPT role names) it puts adapters on.
_ATTENTION = ("query", "key", "value", "attention_output")
_MLP = ("mlp_in", "mlp_gate", "mlp_out")
LORA_TARGETS = {"query_value": ("query", "value"), "attention": _ATTENTION,
                "attention_mlp": _ATTENTION + _MLP, "all": _ATTENTION + _MLP + ("lm_head",)}

# train.base_quantization: how a LoRA run holds its frozen base (tfllm.adapt.quantized_base).
BASE_QUANTIZATIONS = ("none", "int8")

_WHERE = {
    "apply_lora": "lora", "merge_lora": "lora", "distillation_loss": "distillation",
}

__all__ = sorted(_WHERE) + ["BASE_QUANTIZATIONS", "LORA_TARGETS"]

__getattr__ = lazy_getattr(__name__, _WHERE)
