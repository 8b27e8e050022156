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


def tiny_task():
    """(compiled TrainingModel, endless dataset of one batch, tokens per step)."""
    task = TrainingModel(GPT(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, max_length=8))
    task.compile(tf.keras.optimizers.SGD(0.1))
    x = np.random.RandomState(0).randint(0, 11, (2, 8))
    return task, tf.data.Dataset.from_tensors((x, np.roll(x, -1, axis=1))).repeat(), x.size


def test_logged_tokens_per_s_leaves_out_the_time_spent_saving(tmp_path):
    task, data, tokens_per_step = tiny_task()
    manager, clock = SlowManager(), PauseClock()
    task.fit(data, steps_per_epoch=15, verbose=0, callbacks=[
        MetricsLogger(str(tmp_path), 5, 15, lambda step: step * tokens_per_step,
                      lambda step: 0.1, time.time(), print_fn=lambda line: None, clock=clock),
        CheckpointSaver(manager, SlowManager(), tf.Variable(np.inf), 5, 15, clock=clock)])
    assert manager.saved == [5, 10, 15]
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    # Steps 6-10 and 11-15 follow a save: their seconds of training, as the logged
    # tokens/s implies, are a tiny model's 5 steps, not the save's second.
    for record in records[1:]:
        assert 5 * tokens_per_step / record["tokens_per_s"] < SAVE_SECONDS / 2, records


class SlowFirstCall(tf.keras.callbacks.Callback):
    """Makes fit's first call take a second longer, as compiling a large step does."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            time.sleep(1.0)


def test_the_first_interval_leaves_out_the_first_call_which_compiles(tmp_path):
    task, data, tokens_per_step = tiny_task()
    task.fit(data, steps_per_epoch=10, verbose=0, callbacks=[
        SlowFirstCall(),
        MetricsLogger(str(tmp_path), 5, 10, lambda step: step * tokens_per_step, lambda step: 0.1,
                      time.time(), print_fn=lambda line: None)])
    with open(tmp_path / "metrics.jsonl") as f:
        first = json.loads(f.readline())
    assert first["step"] == 5 and first["elapsed_s"] >= 1.0
    # Steps 2-5: a tiny model's 4 steps, not the first call's second.
    assert 4 * tokens_per_step / first["tokens_per_s"] < 0.5, first
