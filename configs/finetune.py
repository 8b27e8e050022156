"""Fine-tuning a pretrained model (--init_from=hf:DIR or gguf:FILE, a .jsonl chat source or
text): settings that fit a start from trained weights on a CPU, where the default config's
are a from-scratch run's (800 steps, warm-up of 100, learning rate 2e-3, a sample at the end).

200 steps of 8 windows of 256 tokens, a warm-up of 10 steps, learning rate 2e-4 (raise it
to about 2e-3 with LoRA: --config.train.lora_rank=8 --config.train.learning_rate=2e-3),
progress every 10 steps, an evaluation of at most 16,384 tokens and a checkpoint every 50,
no sample at the end. The architecture and tokenizer are the checkpoint's.
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(max_length=256, dropout=0.0)
    config.train.update(steps=200, batch_size=8, learning_rate=2e-4, warmup_steps=10)
    config.eval.update(every=50, max_tokens=16384, batch_size=8)
    config.checkpoint.update(every=50)
    config.update(log_every=10)
    config.sample.update(length=0)
    return config
