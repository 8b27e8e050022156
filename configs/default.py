"""The default run: a 4-layer char-level GPT (width 128, RoPE, RMSNorm, SwiGLU, a context
of 256 characters) on the bundled Tiny Shakespeare corpus, 800 steps of 8 x 256 tokens.

RoPE lets `tfllm.generate` continue past the context (a sliding window); the longer
context makes cached decoding pay (docs/benchmarks.md) and lowers the loss per step
(docs/training.md). Every other key is base.py's default.
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(position="rope", normalization="rms", activation="swiglu", max_length=256)
    config.train.update(steps=800, batch_size=8)
    return config
