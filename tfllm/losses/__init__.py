"""Losses computed without the whole (B, T, V) logits: the head's cross-entropy a chunk of
positions at a time (tfllm.losses.chunked_cross_entropy)."""
