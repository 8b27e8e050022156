"""Quantization-aware training in user code: the callback, the wrapped layers, what carries over."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm._keras import keras
from tfllm.compression import QuantizationAwareTraining, is_quantized, quantize_model
from tfllm.compression.qat import Q
from tfllm.errors import UserError
from tfllm.models import GPT, RecurrentLM
from tfllm.training import TrainingModel
from tfllm.runs.run_directory import restore_weights


def batches(vocab=13, length=12, batch=8, seed=0):
    x = np.random.RandomState(seed).randint(0, vocab, (batch, length + 1))
    return tf.data.Dataset.from_tensors((x[:, :-1], x[:, 1:])).repeat()


class Recorder(keras.callbacks.Callback):
    """Per step: the optimizer step it began at, whether the LM was quantized, the loss."""

    def on_train_begin(self, logs=None):
        self.began, self.quantized, self.losses = [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.began.append(int(self.model.optimizer.iterations.numpy()))

    def on_train_batch_end(self, batch, logs=None):
        self.quantized.append(is_quantized(self.model.lm))
        self.losses.append(float(logs["loss"]))


@pytest.mark.parametrize("make_lm", [
    lambda: GPT(vocab_size=13, num_layers=1, num_heads=2, hidden_dim=16, max_length=12,
                position="rope", normalization="rms", activation="swiglu"),
    lambda: RecurrentLM(vocab_size=13, embedding_dim=8, units=16, num_layers=1, cell="lstm"),
], ids=["gpt", "lstm"])
def test_callback_switches_at_the_step_and_training_continues(make_lm, tmp_path):
    keras.utils.set_random_seed(0)
    task = TrainingModel(make_lm())
    task.compile(keras.optimizers.Adam(3e-3), jit_compile=True)
    task.lm(tf.zeros((1, 12), tf.int32))
    task.optimizer.build(task.lm.trainable_variables)
    kernels = {id(v): v for v in task.lm.trainable_variables}
    recorder, switch = Recorder(), QuantizationAwareTraining(start_step=5)
    task.fit(batches(), epochs=1, steps_per_epoch=5, callbacks=[switch], verbose=0)
    assert not is_quantized(task.lm) and switch.switched_at is None
    slots_before = [v.numpy().copy() for v in task.optimizer.variables]
    slot_ids = [id(v) for v in task.optimizer.variables]
    task.fit(batches(), epochs=1, steps_per_epoch=40, callbacks=[switch, recorder], verbose=0)

    assert switch.switched_at == 5 and recorder.began[0] == 5
    assert recorder.quantized == [True] * 40  # every step of the second fit ran quantized
    assert int(task.optimizer.iterations.numpy()) == 45
    # The same kernel variables keep training; the optimizer kept its slots (and steps).
    assert {id(v) for v in task.lm.trainable_variables} == set(kernels)
    assert [id(v) for v in task.optimizer.variables][:len(slot_ids)] == slot_ids
    assert any(not np.allclose(before, v.numpy())
               for before, v in zip(slots_before, task.optimizer.variables))
    wrapped = [layer for layer in task.lm.submodules if isinstance(layer, Q.QuantizeWrapperV2)]
    assert wrapped and all(any("kernel" in w.name for w in layer.trainable_weights)
                           for layer in wrapped)
    # On one repeated batch the quantization-aware loss keeps falling.
    losses = recorder.losses
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05
    # The wrapped model checkpoints, and restores into a fresh model, wrapped again.
    path = tf.train.Checkpoint(model=task.lm).write(str(tmp_path / "ckpt"))
    fresh = make_lm()
    restore_weights(fresh, path)
    assert is_quantized(fresh)
    x = tf.constant(np.random.RandomState(0).randint(0, 13, (2, 12)))
    np.testing.assert_allclose(fresh(x), task.lm(x, training=False), atol=1e-5)


def test_projections_are_wrapped_by_role_and_outputs_stay_close():
    keras.utils.set_random_seed(1)
    lm = GPT(vocab_size=13, num_layers=2, num_heads=2, hidden_dim=16, max_length=12,
             activation="swiglu")
    x = tf.constant(np.random.RandomState(0).randint(0, 13, (2, 12)))
    float_logits = lm(x)
    assert quantize_model(lm) == 2 * 7  # q, k, v, attention_output, mlp_in, mlp_gate, mlp_out
    assert quantize_model(lm) == 0  # once
    names = {layer.name for layer in lm.submodules if isinstance(layer, Q.QuantizeWrapperV2)}
    assert names == {"query", "key", "value", "attention_output", "mlp_in", "mlp_gate", "mlp_out"}
    lm(x, training=True)  # one training call sets the activation ranges
    diff = tf.reduce_max(tf.abs(lm(x, training=False) - float_logits))
    assert 0 < float(diff) < 0.1  # int8 rounding changes the logits a little, not a lot


def test_a_layer_it_cannot_quantize_is_a_clear_error():
    class ConvLM(keras.Model):
        def __init__(self):
            super().__init__()
            self.embed = keras.layers.Embedding(13, 8)
            self.conv = keras.layers.Conv1D(13, 3, padding="causal")

        def call(self, x):
            return self.conv(self.embed(x))

    model = ConvLM()
    model(tf.zeros((1, 4), tf.int32))
    with pytest.raises(UserError, match=r"cannot quantize layer '\w+' \((Embedding|Conv1D)\)"):
        quantize_model(model)


def test_tflite_export_of_a_gru_lm_is_refused_before_anything_is_written(tmp_path):
    from tfllm.inference.exporting import export_tflite

    lm = RecurrentLM(vocab_size=13, embedding_dim=8, units=16, num_layers=1, cell="gru")
    lm(tf.zeros((1, 8), tf.int32))
    windows = np.zeros((4, 8), np.int32)
    for variant in ("float32", "int8"):
        with pytest.raises(UserError, match="TFLite export of a GRU model is not built"):
            export_tflite(lm, str(tmp_path / "out" / f"{variant}.tflite"), 8, variant, windows)
    assert not (tmp_path / "out").exists()


def test_lstm_states_are_rounded_as_the_int8_model_rounds_them():
    """QAT rounds the FusedLSTM's gate pre-activations, cell state and output over ranges
    it tracks; the TFLite export's unrolled LSTM rounds them over the same ranges."""
    from tfllm.inference.exporting import _recurrent_chunk_function

    keras.utils.set_random_seed(3)
    task = TrainingModel(RecurrentLM(vocab_size=13, embedding_dim=8, units=16, num_layers=2))
    task.compile(keras.optimizers.Adam(3e-3))
    task.fit(batches(), epochs=1, steps_per_epoch=10,
             callbacks=[QuantizationAwareTraining(start_step=0)], verbose=0)
    lstm = task.lm.recurrent.rnn_layers[0].layer
    assert int(lstm.state_ranges.seen.numpy()) == 10
    low, high = lstm.state_ranges.ranges.numpy().T
    assert np.all(low <= 0) and np.all(high > 0) and np.all(high - low < 12)  # not [-6, 6]
    x = np.random.RandomState(0).randint(0, 13, (2, 12)).astype(np.int32)
    states = {f"{n}_{i}": tf.zeros((2, 16)) for i in range(2) for n in ("h", "c")}
    unrolled = _recurrent_chunk_function(task.lm, 12)(tf.constant(x), states)["logits"]
    np.testing.assert_allclose(unrolled, task.lm(x, training=False), atol=1e-5)
    lstm.state_ranges.ranges.assign(lstm.state_ranges.ranges * 0.5)  # the ranges do matter
    assert np.max(np.abs(task.lm(x, training=False) - unrolled)) > 1e-3
