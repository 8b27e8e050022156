"""A config small enough for tests: trains a few steps in seconds."""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=1, num_heads=2, hidden_dim=32, max_length=16)
    # No XLA: at this size compiling the step costs more than it saves (a 20-step run took
    # 11-13 s with it, 8-9 s without). Tests of the XLA path set train.xla=True.
    config.train.update(steps=20, batch_size=4, warmup_steps=2, xla=False)
    # Whole-split evaluations in batches of 256 windows: 28 steps each instead of 436 at 16
    # (the same loss), 4-5 s less per test run on 2 cores.
    config.eval.update(every=10, batch_size=256)
    config.checkpoint.every = 10
    config.log_every = 5
    # No sample at the end: generating one costs a tiny run 2-3 s of its 9 (decode loop
    # traced and compiled); tests of the sample set sample.length themselves.
    config.sample.length = 0
    return config
