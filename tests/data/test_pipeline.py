import numpy as np
import pytest
import tensorflow as tf

from tfllm.data import ShapeWarmup, eval_dataset, eval_windows, train_dataset, window_starts


def take(ds, n):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(n)]


def test_targets_are_inputs_shifted_by_one():
    tokens = np.arange(1000) % 97
    for x, y in take(train_dataset(tokens, 16, 4, seed=0), 3):
        assert x.shape == y.shape == (4, 16)
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        np.testing.assert_array_equal((x + 1) % 97, y)


def test_starting_at_a_step_continues_the_same_stream():
    tokens = np.arange(5000)
    full = take(train_dataset(tokens, 8, 4, seed=3), 10)
    resumed = take(train_dataset(tokens, 8, 4, seed=3, start_step=6), 4)
    for a, b in zip(full[6:], resumed):
        np.testing.assert_array_equal(a[0], b[0])


def test_input_pipelines_split_the_global_batch():
    tokens = np.arange(5000)
    whole = take(train_dataset(tokens, 8, 6, seed=1), 2)
    parts = [take(train_dataset(tokens, 8, 6, seed=1,
                                input_context=tf.distribute.InputContext(3, i, 3)), 2)
             for i in range(3)]
    for step in range(2):
        np.testing.assert_array_equal(np.concatenate([p[step][0] for p in parts]), whole[step][0])


def test_window_starts_depend_on_seed_and_step():
    a = window_starts(10_000, 16, 8, seed=0, step=5)
    np.testing.assert_array_equal(a, window_starts(10_000, 16, 8, seed=0, step=5))
    assert not np.array_equal(a, window_starts(10_000, 16, 8, seed=0, step=6))
    assert a.max() <= 10_000 - 16 - 1 and a.min() >= 0


def test_eval_windows_predict_every_token_exactly_once():
    tokens = np.arange(1, 104)  # 103 tokens -> 102 targets
    inputs, targets, weights = eval_windows(tokens, seq_len=10, batch_size=4)
    assert inputs.shape[0] % 4 == 0
    predicted = targets[weights > 0]
    np.testing.assert_array_equal(np.sort(predicted), tokens[1:])
    np.testing.assert_array_equal(inputs[weights > 0] + 1, predicted)


def test_too_short_corpus_is_an_error():
    with pytest.raises(ValueError, match="too few for one window"):
        train_dataset(np.arange(10), 16, 2, seed=0)


def test_eval_dataset_is_not_autotuned_and_repeats_exactly():
    # Deleting an autotuned iterator waits for the autotuner's next wake-up (up to 2.5 s
    # per evaluation on TF 2.21); each evaluation makes a new iterator.
    dataset = eval_dataset(np.arange(1, 500) % 7, seq_len=10, batch_size=4)
    assert dataset.options().autotune.enabled is False
    first = [b[0].numpy() for b in dataset]
    second = [b[0].numpy() for b in dataset]
    assert len(first) == len(second) > 1
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_shape_warmup_doubles_each_size_in_equal_stages():
    warmup = ShapeWarmup(batch_size=16, seq_len=64, steps=100, seq_len_start=16)
    assert [warmup.shape(s) for s in (0, 49, 50, 99, 100, 500)] == [
        (16, 16), (16, 16), (16, 32), (16, 32), (16, 64), (16, 64)]
    assert warmup.tokens_seen(100) == 50 * 16 * 16 + 50 * 16 * 32
    assert warmup.tokens_seen(103) == warmup.tokens_seen(100) + 3 * 16 * 64
    both = ShapeWarmup(batch_size=32, seq_len=128, steps=90, batch_size_start=4, seq_len_start=48)
    # Batch stages end at steps 30 and 60, length stages at 45: five shapes.
    assert both.sizes() == [(4, 48), (8, 48), (8, 96), (16, 96), (32, 128)]
    off = ShapeWarmup(batch_size=8, seq_len=32)
    assert not off.active and off.shape(0) == (8, 32) and off.tokens_seen(5) == 5 * 8 * 32


def test_warmup_batches_have_the_scheduled_shapes_and_resume_exactly():
    tokens = np.arange(5000) % 251
    warmup = ShapeWarmup(batch_size=4, seq_len=16, steps=4, batch_size_start=2, seq_len_start=4)
    full = take(train_dataset(tokens, 16, 4, seed=2, warmup=warmup), 6)
    assert [x.shape for x, _ in full] == [(2, 4), (2, 4), (2, 8), (2, 8), (4, 16), (4, 16)]
    for x, y in full:
        np.testing.assert_array_equal((x + 1) % 251, y)
    resumed = take(train_dataset(tokens, 16, 4, seed=2, start_step=3, warmup=warmup), 3)
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
    parts = [take(train_dataset(tokens, 16, 4, seed=2, warmup=warmup,
                                input_context=tf.distribute.InputContext(2, i, 2)), 6)
             for i in range(2)]
    for step in range(6):  # each pipeline feeds its half of every warm-up batch
        np.testing.assert_array_equal(np.concatenate([p[step][0] for p in parts]), full[step][0])


def test_warmup_batches_that_do_not_split_across_replicas_are_an_error():
    warmup = ShapeWarmup(batch_size=8, seq_len=16, steps=4, batch_size_start=1)
    with pytest.raises(ValueError, match="does not split across 2 replicas"):
        train_dataset(np.arange(5000), 16, 8, seed=0, warmup=warmup,
                      input_context=tf.distribute.InputContext(1, 0, 2))
