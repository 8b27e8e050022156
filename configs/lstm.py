"""A 2-layer LSTM (384 units) language model on the bundled Tiny Shakespeare corpus."""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model = base.recurrent_model()
    config.model.max_length = 64
    config.train.update(
        steps=500, batch_size=32, learning_rate=3e-3, warmup_steps=50, weight_decay=0.0,
        xla=False)  # XLA compiles the LSTM's time loop 4-5x slower here
    config.eval.every = 250
    config.checkpoint.every = 250
    return config
