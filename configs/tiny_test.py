"""A config small enough for tests: trains a few steps in seconds."""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=1, num_heads=2, hidden_dim=32, max_length=16)
    config.train.update(steps=20, batch_size=4, warmup_steps=2)
    config.eval.update(every=10, batch_size=16)
    config.checkpoint.every = 10
    config.log_every = 5
    config.sample.length = 20
    return config
