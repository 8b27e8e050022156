"""Benchmark config: a GPT-2-124M-sized GPT (12 x 768, 12 heads, learned positions,
LayerNorm, GELU, tied head) at context 256, batch 4: the fine-tuning cost of
`python -m tfllm.benchmark --config=bench_gpt2 --finetune` (full vs LoRA), with
--vocab_size=50257 for GPT-2's vocabulary."""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=12, num_heads=12, hidden_dim=768, max_length=256)
    config.train.update(batch_size=4, learning_rate=1e-4, warmup_steps=0)
    return config
