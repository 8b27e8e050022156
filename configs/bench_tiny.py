"""Benchmark config: GPT 4 layers, 4 heads, width 128, context 64, batch 12, char vocabulary.

The size of nanoGPT's CPU recipe for Tiny Shakespeare; `python -m tfllm.benchmark
--config=bench_tiny` times its training step.
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=4, num_heads=4, hidden_dim=128, max_length=64)
    # Five steps per compiled call: at ~40 ms a step, Keras's per-call work (its loop,
    # callbacks and the sync on the loss) cost ~7% (docs/benchmarks.md).
    config.train.update(batch_size=12, steps_per_execution=5)
    return config
