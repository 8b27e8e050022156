"""Pretrained checkpoints in the Hugging Face layout: import into a tfllm GPT, export back.

Names load lazily: checking a checkpoint directory (`check_checkpoint`) never imports
TensorFlow.
"""

from tfllm._lazy import lazy_getattr

_WHERE = {
    "HF_PREFIX": "checkpoint", "Checkpoint": "checkpoint", "check_checkpoint": "checkpoint",
    "pretrained_path": "checkpoint", "GGUF_PREFIX": "checkpoint",
    "open_checkpoint": "checkpoint", "from_pretrained": "conversion", "load_pretrained": "conversion",
    "save_pretrained": "conversion",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
