"""Benchmark config: GPT 4 layers, 4 heads, width 128, context 64, batch 12, char vocabulary.

The size of nanoGPT's CPU recipe for Tiny Shakespeare; `python -m tfllm.benchmark
--config=bench_tiny` times its training step.
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=4, num_heads=4, hidden_dim=128, max_length=64)
    config.train.update(batch_size=12)
    return config
