"""tf.data pipelines of token windows for training and whole-split evaluation.

Dimensions: B batch (windows), T window length (context), N tokens in a split.
"""

import numpy as np
import tensorflow as tf


def window_starts(num_tokens, seq_len, batch_size, seed, step):
    """Start offsets (B,) of the training windows of global step `step`.

    A pure function of (seed, step), so the data position of a run is just its step:
    a resumed run continues with exactly the batches an uninterrupted run would see,
    and workers take disjoint slices of the same global batch. Windows are sampled
    uniformly with replacement (as nanoGPT does).
    """
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, num_tokens - seq_len, size=batch_size)


def train_dataset(tokens, seq_len, batch_size, seed, start_step=0, input_context=None):
    """Infinite dataset of (inputs, targets), each (B, T) int32, from step `start_step` on.

    Args:
        tokens: 1-D array of training token ids (a memmap is fine: windows are gathered
            per batch, the corpus is never copied into the graph).
        seq_len: T.
        batch_size: the global batch B.
        seed: the data seed.
        start_step: the first step to produce the batch of.
        input_context: a tf.distribute.InputContext; each input pipeline then yields its
            consecutive slice of the global batch (B / num_input_pipelines windows).
    """
    if len(tokens) <= seq_len:
        raise ValueError(f"{len(tokens)} training tokens are too few for one window of "
                         f"{seq_len + 1}; use a longer corpus or a smaller model.max_length.")
    shard, num_shards = 0, 1
    if input_context is not None:
        shard, num_shards = input_context.input_pipeline_id, input_context.num_input_pipelines
    if batch_size % num_shards:
        raise ValueError(f"batch size {batch_size} is not divisible by {num_shards} input pipelines.")
    local = batch_size // num_shards
    offsets = np.arange(seq_len + 1)

    def batch_for_step(step):
        starts = window_starts(len(tokens), seq_len, batch_size, seed, int(step))
        starts = starts[shard * local:(shard + 1) * local]
        return np.asarray(tokens[starts[:, None] + offsets], dtype=np.int32)  # (B, T+1)

    def load(step):
        windows = tf.numpy_function(batch_for_step, [step], tf.int32, stateful=False)
        windows = tf.ensure_shape(windows, [local, seq_len + 1])
        return windows[:, :-1], windows[:, 1:]

    dataset = tf.data.Dataset.counter(start=start_step).map(load)
    return dataset.prefetch(tf.data.AUTOTUNE)


def eval_windows(tokens, seq_len, batch_size):
    """Every token of a split as non-overlapping windows, padded to whole batches.

    Returns numpy (inputs, targets, weights), each (num_windows, T); weights are 1 for
    real targets and 0 for padding, so a weighted mean is the loss over every token of
    the split exactly once (each window's context starts fresh at its first token).
    """
    tokens = np.asarray(tokens, dtype=np.int32)
    num_targets = len(tokens) - 1
    if num_targets < 1:
        raise ValueError("the validation split has fewer than 2 tokens; use a longer corpus or "
                         "a larger data.val_fraction.")
    num_windows = -(-num_targets // seq_len)
    num_windows = -(-num_windows // batch_size) * batch_size
    padded = np.zeros(num_windows * seq_len + 1, np.int32)
    padded[:len(tokens)] = tokens
    weights = np.zeros(num_windows * seq_len, np.float32)
    weights[:num_targets] = 1.0
    inputs = padded[:-1].reshape(num_windows, seq_len)
    targets = padded[1:].reshape(num_windows, seq_len)
    return inputs, targets, weights.reshape(num_windows, seq_len)


def eval_dataset(tokens, seq_len, batch_size):
    """Finite dataset of (inputs, targets, weights) batches covering a whole split."""
    inputs, targets, weights = eval_windows(tokens, seq_len, batch_size)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets, weights))
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
