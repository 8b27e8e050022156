"""A 2-layer LSTM (384 units) language model on the bundled Tiny Shakespeare corpus.

Trains in under 5 minutes on 2 CPU cores (docs/training.md). The LSTM is tfllm's
FusedLSTM, compiled with XLA (2.3x the throughput of Keras's LSTM at its best here). Evaluation reads
the validation split in windows of 2048 characters, as char-rnn does with carried state:
every character is still predicted exactly once.
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model = base.recurrent_model()
    config.model.max_length = 64
    config.train.update(steps=720, batch_size=32, learning_rate=3e-3, warmup_steps=50,
                        weight_decay=0.0)
    config.eval.update(every=240, seq_len=2048, batch_size=55)  # 55 windows hold the split
    config.checkpoint.every = 240
    return config
