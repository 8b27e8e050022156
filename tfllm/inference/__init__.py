"""Generation from trained language models."""

from tfllm.inference.sampling import filter_logits, generate, sample_token

__all__ = ["filter_logits", "generate", "sample_token"]
