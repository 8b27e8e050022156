"""Magnitude pruning in user code: the schedule, what carries over, stripping."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm._keras import keras
from tfllm.compression import (MagnitudePruningCallback, is_pruned, prune_model, sparsity,
                               strip_pruning)
from tfllm.compression.pruning import MagnitudePruning, schedule
from tfllm.models import GPT, RecurrentLM
from tfllm.training import TrainingModel
from tfllm.runs.run_directory import restore_weights

START, END, EVERY, TARGET = 10, 40, 10, 0.75


def batches(vocab=13, length=12, batch=8, seed=0):
    x = np.random.RandomState(seed).randint(0, vocab, (batch, length + 1))
    return tf.data.Dataset.from_tensors((x[:, :-1], x[:, 1:])).repeat()


def polynomial_sparsity(step):
    """tfmot PolynomialDecay from 0 to TARGET, at the last mask update at or before `step`."""
    if step < START:
        return 0.0
    last = START + (min(step, END) - START) // EVERY * EVERY
    return TARGET * (1 - (1 - (last - START) / (END - START)) ** 3)


class Recorder(keras.callbacks.Callback):
    """Per execution: the optimizer step after it, whether pruned, kernel sparsity, loss."""

    def on_train_begin(self, logs=None):
        self.rows = []

    def on_train_batch_end(self, batch, logs=None):
        lm = self.model.lm
        self.rows.append((int(self.model.optimizer.iterations.numpy()), is_pruned(lm),
                          sparsity(lm)["pruned_fraction"], float(logs["loss"])))


@pytest.mark.parametrize("make_lm,accum,per_execution,xla", [
    (lambda: GPT(vocab_size=13, num_layers=1, num_heads=2, hidden_dim=16, max_length=12,
                 activation="swiglu"), 1, 1, True),
    (lambda: RecurrentLM(vocab_size=13, embedding_dim=8, units=16, cell="lstm"), 2, 5, True),
    # XLA compiles Keras's GRU loop for minutes; tfllm.train's configs use the FusedLSTM.
    (lambda: RecurrentLM(vocab_size=13, embedding_dim=8, units=16, cell="gru"), 1, 1, False),
], ids=["gpt", "lstm_accumulated", "gru"])
def test_callback_prunes_on_the_optimizer_step_schedule(make_lm, accum, per_execution, xla,
                                                        tmp_path):
    keras.utils.set_random_seed(0)
    task = TrainingModel(make_lm(), grad_accum_steps=accum)
    task.compile(keras.optimizers.Adam(3e-3), jit_compile=xla, steps_per_execution=per_execution)
    task.lm(tf.zeros((1, 12), tf.int32))
    task.optimizer.build(task.lm.trainable_variables)
    kernels = {id(v) for v in task.lm.trainable_variables}
    slot_ids = [id(v) for v in task.optimizer.variables]
    recorder = Recorder()
    task.fit(batches(), epochs=1, steps_per_epoch=60,
             callbacks=[MagnitudePruningCallback(TARGET, START, END, EVERY), recorder], verbose=0)

    for step, pruned, fraction, _ in recorder.rows:
        assert pruned == (step > START)
        # Masks are updated in the step that begins at a schedule step (tfmot rounds
        # each kernel's zero count to whole weights).
        np.testing.assert_allclose(fraction, polynomial_sparsity(step - 1), atol=0.01)
    assert recorder.rows[-1][2] == pytest.approx(TARGET, abs=0.005)
    # The same kernel variables keep training, the optimizer kept its slots.
    assert {id(v) for v in task.lm.trainable_variables} == kernels
    assert [id(v) for v in task.optimizer.variables][:len(slot_ids)] == slot_ids
    # On one repeated batch the loss keeps falling once the masks are fixed.
    losses = [loss for step, *_, loss in recorder.rows if step > END]
    assert losses[-1] < losses[0] - 0.02
    # The pruned model checkpoints, and restores into a fresh model as its stripped self.
    path = tf.train.Checkpoint(model=task.lm).write(str(tmp_path / "ckpt"))
    fresh = make_lm()
    restore_weights(fresh, path)
    assert not is_pruned(fresh)
    x = tf.constant(np.random.RandomState(0).randint(0, 13, (2, 12)))
    np.testing.assert_allclose(fresh(x), task.lm(x, training=False), atol=1e-5)


def test_projections_and_recurrent_kernels_are_wrapped_by_role():
    gpt = GPT(vocab_size=13, num_layers=2, num_heads=2, hidden_dim=16, max_length=12,
              activation="swiglu")
    assert prune_model(gpt, schedule(0.5, 0, 10, 5)) == 2 * 7  # q k v o, mlp in gate out
    assert prune_model(gpt, schedule(0.5, 0, 10, 5)) == 0  # once
    names = {layer.layer.name for layer in gpt.submodules if isinstance(layer, MagnitudePruning)}
    assert names == {"query", "key", "value", "attention_output", "mlp_in", "mlp_gate", "mlp_out"}
    lstm = RecurrentLM(vocab_size=13, embedding_dim=8, units=16, num_layers=2, cell="lstm")
    assert prune_model(lstm, schedule(0.5, 0, 10, 5)) == 3  # two LSTM layers and lm_head
    # The embeddings (the GPT's tied output head) and norms are never pruned.
    pruned = {id(w) for layer in gpt.submodules if isinstance(layer, MagnitudePruning)
              for w, _, _ in layer.pruning_vars}
    assert id(gpt.token_embedding.embeddings) not in pruned


def test_strip_pruning_keeps_the_pruned_models_outputs():
    keras.utils.set_random_seed(2)
    lm = GPT(vocab_size=13, num_layers=1, num_heads=2, hidden_dim=16, max_length=12)
    task = TrainingModel(lm)
    task.compile(keras.optimizers.Adam(3e-3))
    task.fit(batches(), epochs=1, steps_per_epoch=25,
             callbacks=[MagnitudePruningCallback(0.5, 0, 20, 10)], verbose=0)
    x = tf.constant(np.random.RandomState(0).randint(0, 13, (2, 12)))
    pruned_logits = lm(x, training=False)
    assert strip_pruning(lm) == 6 and not is_pruned(lm)
    np.testing.assert_allclose(lm(x, training=False), pruned_logits, atol=1e-6)
    assert sparsity(lm)["pruned_fraction"] == pytest.approx(0.5, abs=0.005)
    assert 0 < sparsity(lm)["model_fraction"] < 0.5
