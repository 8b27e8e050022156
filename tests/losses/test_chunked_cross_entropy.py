"""The chunked cross-entropy: the loss and gradients of the plain loss, never all logits."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm._keras import keras
from tfllm.adapt.lora import apply_lora
from tfllm.losses.chunked_cross_entropy import balanced_rows, chunk_rows_for, cross_entropy_sum
from tfllm.models.gpt import GPT
from tfllm.training.training_model import TrainingModel, token_cross_entropy


def relative(a, b):
    a, b = np.asarray(tf.convert_to_tensor(a)), np.asarray(tf.convert_to_tensor(b))
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def plain_sum(hidden, head, targets, weights, vocab_first):
    logits = tf.einsum("btd,vd->btv" if vocab_first else "btd,dv->btv", hidden, head)
    losses = token_cross_entropy(targets, logits)
    return tf.reduce_sum(losses if weights is None else losses * weights)


@pytest.mark.parametrize("vocab_first,masked,jit", [
    (True, False, False), (True, True, False), (False, False, False), (False, True, True)])
def test_equals_plain_loss_and_gradients(vocab_first, masked, jit):
    rng = np.random.default_rng(0)
    hidden = tf.constant(rng.normal(size=(3, 7, 8)), tf.float32)
    head = tf.constant(rng.normal(size=(11, 8) if vocab_first else (8, 11)), tf.float32)
    targets = tf.constant(rng.integers(0, 11, size=(3, 7)), tf.int32)
    weights = tf.constant(rng.integers(0, 2, size=(3, 7)) * rng.uniform(0.5, 2, size=(3, 7)),
                          tf.float32) if masked else None

    def both(h, m):  # 21 positions in chunks of 4: a partial last chunk
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([h, m])
            chunked = cross_entropy_sum(h, m, targets, weights, 4, vocab_first)
            plain = plain_sum(h, m, targets, weights, vocab_first)
        return chunked, plain, tape.gradient(chunked, [h, m]), tape.gradient(plain, [h, m])

    chunked, plain, grads, plain_grads = tf.function(both, jit_compile=jit)(hidden, head)
    assert relative(chunked, plain) < 1e-6
    for g, p in zip(grads, plain_grads):
        assert relative(g, p) < 1e-6
    forward_only = cross_entropy_sum(hidden, head, targets, weights, 4, vocab_first,
                                     gradients=False)
    assert relative(forward_only, plain) < 1e-6


def test_masked_positions_never_reach_the_head():
    """Positions of weight 0 are skipped: their hidden states get no gradient, even NaN
    ones (a skipped position's hidden state is never multiplied)."""
    hidden = np.random.default_rng(1).normal(size=(1, 6, 4)).astype(np.float32)
    hidden[0, :3] = np.nan
    hidden = tf.constant(hidden)
    head = tf.constant(np.random.default_rng(2).normal(size=(5, 4)), tf.float32)
    weights = tf.constant([[0, 0, 0, 1, 1, 1]], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        loss = cross_entropy_sum(hidden, head, tf.zeros((1, 6), tf.int32), weights, 2)
    d_hidden = tape.gradient(loss, hidden).numpy()
    assert np.isfinite(loss.numpy())
    np.testing.assert_array_equal(d_hidden[0, :3], 0.0)
    assert np.all(d_hidden[0, 3:] != 0.0)


def test_chunk_rows_follow_the_vocabulary():
    assert chunk_rows_for(65) == 4096
    assert chunk_rows_for(50_257) == 2048
    assert chunk_rows_for(151_936) == 512
    assert chunk_rows_for(100_000_000) == 16


def test_chunks_never_hold_more_rows_than_the_batch_has_positions():
    # A batch of 1 x 256 at GPT-2's vocabulary: one chunk of 256 rows, not 2,048 (8x the
    # head's work and logits, measured in the compiled LoRA step before this).
    assert balanced_rows(2048, 256) == 256
    assert balanced_rows(2048, 4 * 256) == 1024
    assert balanced_rows(512, 4 * 512) == 512
    assert balanced_rows(2048, 3000) == 1500  # two even chunks, not 2,048 + 952 padding
    assert balanced_rows(2048, None) == 2048  # unknown until run time: by the vocabulary
    for rows in (1, 7, 64, 2048):
        for n in (1, 5, 63, 64, 65, 1000, 4097):
            got = balanced_rows(rows, n)
            chunks = -(-n // got)
            assert got <= rows and chunks == -(-n // rows) and chunks * got - n < chunks


def _gpt(tie, lora=False):
    keras.utils.set_random_seed(3)
    model = GPT(vocab_size=37, num_layers=2, num_heads=2, hidden_dim=16, max_length=12,
                position="rope", normalization="rms", activation="swiglu",
                tie_embeddings=tie, use_bias=False)
    if lora:
        apply_lora(model, rank=2, targets="attention")
        for v in model.trainable_variables:  # adapters start at zero: give them a gradient path
            v.assign(tf.random.stateless_normal(v.shape, [1, 2], stddev=0.1))
    return model


def _loss_and_gradients(model, chunk_rows, batch, jit=False):
    task = TrainingModel(model, grad_accum_steps=2, loss_chunk_rows=chunk_rows)
    task.compile(optimizer=keras.optimizers.SGD(0.0))
    loss, grads = tf.function(task.loss_and_gradients, jit_compile=jit)(batch)
    return loss, [tf.convert_to_tensor(g) for g in grads]


@pytest.mark.parametrize("tie,lora,weighted", [(True, False, False), (False, False, True),
                                               (True, True, True)])
def test_training_step_equals_the_plain_loss(tie, lora, weighted):
    """TrainingModel's loss and every trainable variable's gradient, chunked (5 positions
    per chunk) and plain, with accumulation: tied and untied heads, a chat batch's
    weights, LoRA (the head frozen)."""
    rng = np.random.default_rng(4)
    inputs = tf.constant(rng.integers(0, 37, size=(4, 12)), tf.int32)
    targets = tf.constant(rng.integers(0, 37, size=(4, 12)), tf.int32)
    batch = (inputs, targets)
    if weighted:
        batch += (tf.constant(rng.integers(0, 2, size=(4, 12)), tf.float32),)
    model = _gpt(tie, lora)
    chunked, grads = _loss_and_gradients(model, 5, batch, jit=weighted)  # XLA as tfllm.train
    plain, plain_grads = _loss_and_gradients(model, -1, batch, jit=weighted)
    assert relative(chunked, plain) < 1e-6
    assert len(grads) == len(plain_grads) > 0
    # Through the whole network float32 rounding differs with the order of XLA's threaded
    # sums: seen up to 1.07e-6 on a LoRA adapter's gradient, run to run.
    for g, p in zip(grads, plain_grads):
        assert relative(g, p) < 2e-6


def test_evaluation_equals_the_plain_loss():
    rng = np.random.default_rng(5)
    data = (tf.constant(rng.integers(0, 37, size=(3, 12)), tf.int32),
            tf.constant(rng.integers(0, 37, size=(3, 12)), tf.int32),
            tf.constant(rng.integers(0, 2, size=(3, 12)), tf.float32))
    model = _gpt(tie=False)
    results = []
    for rows in (5, -1):
        task = TrainingModel(model, loss_chunk_rows=rows)
        task.compile(optimizer=keras.optimizers.SGD(0.0))
        results.append(task.evaluate(tf.data.Dataset.from_tensors(data), verbose=0))
    assert relative(results[0], results[1]) < 1e-6


def test_mixed_bfloat16_close_to_float32():
    """Under mixed bfloat16 the chunked loss rounds as the plain one does."""
    rng = np.random.default_rng(6)
    batch = (tf.constant(rng.integers(0, 37, size=(2, 12)), tf.int32),
             tf.constant(rng.integers(0, 37, size=(2, 12)), tf.int32))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = _gpt(tie=True)
    chunked, grads = _loss_and_gradients(model, 5, batch)
    plain, plain_grads = _loss_and_gradients(model, -1, batch)
    assert relative(chunked, plain) < 1e-3
    for g, p in zip(grads, plain_grads):
        assert relative(g, p) < 2e-2


def test_a_bad_chunk_size_is_refused_before_training():
    from tfllm.config import validate
    from tfllm.configs import tiny_test
    from tfllm.errors import UserError

    config = tiny_test.get_config()
    assert config.train.loss_chunk_rows == 0  # chunked by default
    config.train.loss_chunk_rows = -2
    with pytest.raises(UserError, match=r"train.loss_chunk_rows=-2.*-1 for the whole batch"):
        validate(config)
