"""The training loop's logging and checkpoint callbacks, driven by a real `fit`."""

import json
import time

import numpy as np
import tensorflow as tf

from tfllm.models import GPT
from tfllm.training import CheckpointSaver, MetricsLogger, TrainingModel
from tfllm.training.callbacks import PauseClock

SAVE_SECONDS = 1.0


class SlowManager:
    """A checkpoint manager whose saves take SAVE_SECONDS (a large model on a slow disk)."""

    def __init__(self):
        self.saved = []

    def save(self, checkpoint_number):
        time.sleep(SAVE_SECONDS)
        self.saved.append(checkpoint_number)


def test_logged_tokens_per_s_leaves_out_the_time_spent_saving(tmp_path):
    task = TrainingModel(GPT(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, max_length=8))
    task.compile(tf.keras.optimizers.SGD(0.1))
    x = np.random.RandomState(0).randint(0, 11, (2, 8))
    data = tf.data.Dataset.from_tensors((x, np.roll(x, -1, axis=1))).repeat()
    manager, clock = SlowManager(), PauseClock()
    tokens_seen = lambda step: step * x.size
    task.fit(data, steps_per_epoch=15, verbose=0, callbacks=[
        MetricsLogger(str(tmp_path), 5, 15, tokens_seen, lambda step: 0.1, time.time(),
                      print_fn=lambda line: None, clock=clock),
        CheckpointSaver(manager, SlowManager(), tf.Variable(np.inf), 5, 15, clock=clock)])
    assert manager.saved == [5, 10, 15]
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    # Steps 6-10 and 11-15 follow a save: their seconds of training, as the logged
    # tokens/s implies, are a tiny model's 5 steps, not the save's second.
    for record in records[1:]:
        assert 5 * x.size / record["tokens_per_s"] < SAVE_SECONDS / 2, records
