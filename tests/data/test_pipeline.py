import numpy as np
import pytest
import tensorflow as tf

from tfllm.data import eval_dataset, eval_windows, train_dataset, window_starts


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
