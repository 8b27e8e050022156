"""Benchmark config: the `lstm` config's model and batch (2 x 384-unit LSTM, embedding 128)."""

from tfllm.configs import lstm


def get_config():
    return lstm.get_config()
