"""Benchmark config: GPT 6 layers, 6 heads, width 384, context 256, batch 8, char vocabulary."""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=6, num_heads=6, hidden_dim=384, max_length=256)
    config.train.update(batch_size=8)
    return config
