import numpy as np
import pytest
import tensorflow as tf

from tfllm._keras import keras
from tfllm.models import GPT, RecurrentLM
from tfllm.training import TrainingModel, token_cross_entropy


def make(accum, seed=0):
    keras.utils.set_random_seed(seed)
    lm = GPT(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, max_length=8)
    task = TrainingModel(lm, grad_accum_steps=accum)
    task.compile(keras.optimizers.SGD(0.5))
    return task


def test_accumulation_gives_the_full_batch_update():
    x = np.random.RandomState(1).randint(0, 11, (8, 8))
    y = np.roll(x, -1, axis=1)
    ds = tf.data.Dataset.from_tensors((x, y))
    plain, accumulated = make(1), make(4)
    l1 = plain.fit(ds, verbose=0).history["loss"][0]
    l4 = accumulated.fit(ds, verbose=0).history["loss"][0]
    np.testing.assert_allclose(l1, l4, rtol=1e-5)
    for a, b in zip(plain.lm.weights, accumulated.lm.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_loss_is_mean_token_cross_entropy():
    task = make(1)
    x = np.random.RandomState(2).randint(0, 11, (4, 8))
    y = np.roll(x, -1, axis=1)
    expected = float(tf.reduce_mean(token_cross_entropy(y, task.lm(x))))
    task.compile(keras.optimizers.SGD(0.0))
    loss = task.fit(tf.data.Dataset.from_tensors((x, y)), verbose=0).history["loss"][0]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_evaluation_is_the_exact_token_weighted_mean():
    task = make(1)
    task.compile(weighted_metrics=[])
    rng = np.random.RandomState(3)
    x, y = rng.randint(0, 11, (6, 8)), rng.randint(0, 11, (6, 8))
    w = (rng.rand(6, 8) > 0.3).astype("float32")
    per_token = token_cross_entropy(y, task.lm(x)).numpy()
    expected = (per_token * w).sum() / w.sum()
    ds = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(4)  # uneven batches on purpose
    result = task.evaluate(ds, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(result, expected, rtol=1e-5)


@pytest.mark.parametrize("model_name", ["gpt", "recurrent"])
def test_xla_step_equals_the_plain_step(model_name):
    """The compiled (XLA) step, as tfllm.train runs it by default, updates the weights
    exactly as the plain TensorFlow graph does."""
    x = np.random.RandomState(4).randint(0, 11, (4, 8))
    y = np.roll(x, -1, axis=1)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat(3)
    results = []
    for xla in (False, True):
        keras.utils.set_random_seed(0)
        lm = (GPT(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, max_length=8)
              if model_name == "gpt" else
              RecurrentLM(vocab_size=11, embedding_dim=4, units=8, num_layers=2))
        task = TrainingModel(lm)
        task.compile(keras.optimizers.AdamW(1e-2), jit_compile=xla)
        loss = task.fit(ds, verbose=0).history["loss"][0]
        results.append((loss, [w.numpy() for w in lm.weights]))
    (plain_loss, plain_weights), (xla_loss, xla_weights) = results
    np.testing.assert_allclose(xla_loss, plain_loss, rtol=1e-5)
    for a, b in zip(plain_weights, xla_weights):
        np.testing.assert_allclose(b, a, atol=1e-5)
