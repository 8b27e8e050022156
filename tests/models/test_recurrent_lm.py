import numpy as np
import pytest
import tensorflow as tf

from tfllm._keras import keras
from tfllm.models import RecurrentLM


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepwise_equals_unrolled(cell):
    model = RecurrentLM(vocab_size=10, embedding_dim=4, units=8, num_layers=2, cell=cell)
    tokens = tf.constant(np.random.randint(0, 10, (2, 7)))
    full = model(tokens)
    logits, state = model.call_with_state(tokens[:, :3], model.init_state(2))
    steps = [logits]
    for t in range(3, 7):
        logits, state = model.call_with_state(tokens[:, t:t + 1], state)
        steps.append(logits)
    np.testing.assert_allclose(tf.concat(steps, 1), full, atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    model = RecurrentLM.from_preset("nano", vocab_size=10, cell="gru")
    tokens = np.random.randint(0, 10, (2, 5))
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(tokens), model(tokens), atol=1e-6)


def test_future_tokens_do_not_change_past_logits():
    model = RecurrentLM.from_preset("nano", vocab_size=10)
    a = np.random.randint(0, 10, (1, 6))
    b = a.copy()
    b[0, 4:] = (b[0, 4:] + 1) % 10
    np.testing.assert_allclose(model(a)[:, :4], model(b)[:, :4], atol=1e-6)
