"""The default run: a 4-layer char-level GPT on the bundled Tiny Shakespeare corpus."""

from tfllm.configs import base


def get_config():
    return base.get_config()
