"""Packed chat examples: each attends only to itself, so a packed batch's per-token losses
and gradients are the examples' own, computed one by one."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.data.packing import pack, positions
from tfllm.models import GPT
from tfllm.training.training_model import token_cross_entropy


def examples(lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        mask = np.zeros(n, np.int8)
        mask[n // 2:] = 1  # the second half trained: an answer after its prompt
        out.append((rng.integers(1, 50, n).astype(np.int32), mask))
    return out


def test_best_fit_decreasing_fills_windows_and_keeps_every_example_whole():
    lengths = [9, 7, 5, 4, 3, 3, 2, 1]
    packed = pack(examples(lengths), length=9)  # windows of 10 tokens
    assert len(packed) == 4 and packed.segments.max() <= 4
    seen = sorted(int((packed.segments[r] == s).sum()) for r in range(len(packed))
                  for s in range(1, packed.segments[r].max() + 1))
    assert seen == sorted(n for n in lengths if n >= 2)  # a 1-token example has no target
    assert packed.dropped == 1 and packed.truncated == 0
    unpacked = pack(examples(lengths), length=9, packing=False)
    assert len(unpacked) == 7 and unpacked.segments.max() == 1


def test_positions_restart_at_each_example():
    segments = np.array([[1, 1, 1, 2, 2, 3, 0, 0]])
    assert positions(segments).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]


def test_truncation_keeps_the_start_and_drops_examples_left_untrained():
    ids = np.arange(1, 21, dtype=np.int32)
    late = np.zeros(20, np.int8)
    late[15:] = 1  # trained tokens beyond the window
    early = np.zeros(20, np.int8)
    early[5:] = 1
    packed = pack([(ids, late), (ids, early)], length=9)
    assert (packed.truncated, packed.dropped, packed.examples) == (2, 1, 1)
    assert packed.tokens[0].tolist() == list(range(1, 11))


def test_weights_skip_padding_prompts_and_the_step_between_examples():
    packed = pack(examples([4, 4]), length=9)
    w = packed.weights()[0]
    seg = packed.segments[0]
    # Targets: trained (second half) of the same example only.
    for t in range(9):
        expected = seg[t + 1] > 0 and seg[t + 1] == seg[t] and packed.mask[0, t + 1] == 1
        assert w[t] == expected


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(1)
    m = GPT(vocab_size=50, num_layers=2, hidden_dim=32, num_heads=4, num_kv_heads=2,
            intermediate_dim=64, max_length=16, position="rope")
    return m


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_packed_losses_and_gradients_equal_each_example_alone(position):
    tf.keras.utils.set_random_seed(1)
    model = GPT(vocab_size=50, num_layers=2, hidden_dim=32, num_heads=4, num_kv_heads=2,
                intermediate_dim=64, max_length=16, position=position)
    data = examples([6, 5, 4], seed=3)
    packed = pack(data, length=15)
    assert len(packed) == 1

    def summed_loss(inputs, targets, weights):
        return tf.reduce_sum(token_cross_entropy(targets, model(inputs)) * weights)

    with tf.GradientTape() as tape:
        inputs = {k: tf.constant(v) for k, v in packed.inputs().items()}
        per_token = token_cross_entropy(packed.targets(), model(inputs)) * packed.weights()
        total = tf.reduce_sum(per_token)
    packed_grads = tape.gradient(total, model.trainable_variables)
    alone_total, alone_grads, alone_losses = 0.0, None, []
    for ids, mask in data:
        with tf.GradientTape() as tape:
            losses = token_cross_entropy(ids[None, 1:], model(ids[None, :-1]))
            loss = tf.reduce_sum(losses * mask[None, 1:].astype(np.float32))
        alone_losses.append(losses.numpy()[0][mask[1:] == 1])
        grads = tape.gradient(loss, model.trainable_variables)
        alone_grads = grads if alone_grads is None else [
            tf.convert_to_tensor(a) + tf.convert_to_tensor(g) for a, g in zip(alone_grads, grads)]
        alone_total += float(loss)
    w = packed.weights()[0] == 1
    np.testing.assert_allclose(np.sort(per_token.numpy()[0][w]),
                               np.sort(np.concatenate(alone_losses)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(total), alone_total, rtol=1e-5)
    for p, a in zip(packed_grads, alone_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(p), tf.convert_to_tensor(a),
                                   rtol=1e-4, atol=1e-6)


def test_no_attention_across_examples(model):
    packed = pack(examples([5, 5]), length=9)
    inputs = {k: tf.constant(v) for k, v in packed.inputs().items()}
    embedded = model.token_embedding(inputs["token_ids"])
    with tf.GradientTape() as tape:
        tape.watch(embedded)
        x = embedded
        segments, pos = inputs["segment_ids"], inputs["positions"]
        for block in model.blocks:
            x = block(x, segment_ids=segments, positions=pos)
        second = tf.reduce_sum(x[0, 5:])  # the second example's outputs
    grad = tape.gradient(second, embedded).numpy()
    assert np.all(grad[0, :5] == 0)  # nothing of the first example reaches the second
    assert np.any(grad[0, 5:] != 0)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_the_weighted_step_splits_into_micro_batches_alike(policy):
    """Gradient accumulation over packed, weighted batches: the same loss and gradients as
    the whole batch (the mean over the batch's trained tokens); finite under bfloat16."""
    from tfllm._keras import keras
    from tfllm.training.training_model import TrainingModel

    keras.mixed_precision.set_global_policy(policy)
    tf.keras.utils.set_random_seed(2)
    model = GPT(vocab_size=50, num_layers=1, hidden_dim=32, num_heads=4, intermediate_dim=64,
                max_length=16, position="rope")
    packed = pack(examples([9, 7, 6, 5, 4, 4, 3, 3], seed=5), length=15)
    rows = np.arange(4) % len(packed)
    batch = ({k: tf.constant(v) for k, v in packed.inputs(rows).items()},
             tf.constant(packed.targets(rows)), tf.constant(packed.weights(rows)))
    results = []
    for accumulate in (1, 2):
        task = TrainingModel(model, grad_accum_steps=accumulate)
        task.compile(optimizer=keras.optimizers.SGD(0.0))
        loss, grads = task.loss_and_gradients(batch)
        results.append((float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]))
    (loss1, grads1), (loss2, grads2) = results
    assert np.isfinite(loss1)
    rtol = 1e-5 if policy == "float32" else 2e-2
    np.testing.assert_allclose(loss2, loss1, rtol=rtol)
    for a, b in zip(grads1, grads2):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-6 if policy == "float32" else 1e-3)
