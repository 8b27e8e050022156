"""tf.data pipelines of token windows for training and whole-split evaluation.

Dimensions: B batch (windows), T window length (context), N tokens in a split.
"""

import dataclasses
import math

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


def doubling_warmup(step, start, final, steps):
    """A size that warms up from `start` to `final` over `steps` steps by doubling:
    start, 2 start, 4 start, ... in equal stages, then `final` from step `steps` on.
    `start` 0 (or >= final) is no warm-up: always `final`."""
    if not start or start >= final or step >= steps:
        return final
    stages = math.ceil(math.log2(final / start))  # sizes below final
    return min(start * 2 ** (step * stages // steps), final)


@dataclasses.dataclass(frozen=True)
class ShapeWarmup:
    """Batch-size and sequence-length warm-up: the training batch of step s is
    `shape(s)`, each size doubling from its start to the full batch_size / seq_len over
    the first `steps` steps (`doubling_warmup`; a start of 0 keeps that size fixed).

    Sizes double so that a warm-up compiles log2(final / start) extra step programs, not
    one per size: each new shape is a new XLA compilation. Shorter windows early train on
    fewer tokens per step at the same number of windows (Li et al. 2022, "The
    Stability-Efficiency Dilemma").

    Example:
        >>> warmup = ShapeWarmup(batch_size=16, seq_len=64, steps=100, seq_len_start=16)
        >>> warmup.shape(0), warmup.shape(50), warmup.shape(100)
        ((16, 16), (16, 32), (16, 64))
    """

    batch_size: int
    seq_len: int
    steps: int = 0
    batch_size_start: int = 0
    seq_len_start: int = 0

    def shape(self, step):
        """(B, T) of the batch of global step `step` (0-based)."""
        return (doubling_warmup(step, self.batch_size_start, self.batch_size, self.steps),
                doubling_warmup(step, self.seq_len_start, self.seq_len, self.steps))

    def sizes(self):
        """Every (B, T) the warm-up and the run after it train on, sorted."""
        return sorted({self.shape(s) for s in range(self.steps + 1)})

    def tokens_seen(self, step):
        """Tokens trained on in steps 0 .. step - 1 (B x T each)."""
        warm = min(step, self.steps)
        tokens = sum(b * t for b, t in map(self.shape, range(warm)))
        return tokens + (step - warm) * self.batch_size * self.seq_len

    @property
    def active(self):
        return self.steps > 0 and (self.batch_size_start or self.seq_len_start) > 0


def train_dataset(tokens, seq_len, batch_size, seed, start_step=0, input_context=None,
                  warmup=None):
    """Infinite dataset of (inputs, targets), each (B, T) int32, from step `start_step` on.

    Args:
        tokens: 1-D array of training token ids (a memmap is fine: windows are gathered
            per batch, the corpus is never copied into the graph).
        seq_len: T.
        batch_size: the global batch B.
        seed: the data seed.
        start_step: the first step to produce the batch of.
        input_context: a tf.distribute.InputContext (from
            `strategy.distribute_datasets_from_function`); the pipeline then yields, for
            each step, one element per replica it feeds: replica r's consecutive slice of
            B / num_replicas windows of the same global batch. Every replica of every
            worker thus sees its own part of the batch a single device would see.
        warmup: a `ShapeWarmup` (of this batch_size and seq_len): step s then yields
            `warmup.shape(s)`, and a size that changes is None in the element spec.
    """
    if len(tokens) <= seq_len:
        raise ValueError(f"{len(tokens)} training tokens are too few for one window of "
                         f"{seq_len + 1}; use a longer corpus or a smaller model.max_length.")
    first, local, per_replica = _replica_slices(batch_size, input_context)
    replicas = batch_size // per_replica
    warmup = warmup if warmup is not None and warmup.active else None
    if warmup is not None:
        for b, _ in warmup.sizes():
            _replica_slices(b, input_context)  # every batch of the warm-up must split

    def batch_for_step(step):
        b, t = warmup.shape(int(step)) if warmup else (batch_size, seq_len)
        starts = window_starts(len(tokens), t, b, seed, int(step))
        part = b // replicas
        starts = starts[first * part:(first + local) * part]
        return np.asarray(tokens[starts[:, None] + np.arange(t + 1)], dtype=np.int32)  # (b, T+1)

    static = [local * per_replica, seq_len + 1]
    if warmup is not None:  # the sizes that warm up are dynamic
        static = [None if warmup.batch_size_start else static[0],
                  None if warmup.seq_len_start else static[1]]

    def load(step):
        windows = tf.numpy_function(batch_for_step, [step], tf.int32, stateful=False)
        windows = tf.ensure_shape(windows, static)
        return windows[:, :-1], windows[:, 1:]

    dataset = tf.data.Dataset.counter(start=start_step).map(load)
    if input_context is not None:
        dataset = dataset.flat_map(lambda x, y: _per_replica(local, x, y))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _replica_slices(batch_size, input_context):
    """(first replica, replicas, windows per replica) an input pipeline makes."""
    if input_context is None:
        return 0, 1, batch_size
    replicas = input_context.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} does not split across {replicas} replicas.")
    local = replicas // input_context.num_input_pipelines
    return input_context.input_pipeline_id * local, local, batch_size // replicas


def _per_replica(local, *tensors):
    """A dataset of `local` consecutive equal slices of each tensor (one per replica)."""
    return tf.data.Dataset.from_tensor_slices(
        tuple(tf.reshape(t, tf.concat([[local, -1], tf.shape(t)[1:]], 0)) for t in tensors))


def eval_batches(num_tokens, seq_len, batch_size, max_tokens=0):
    """How many batches `eval_windows` makes of a split of `num_tokens` tokens."""
    num_windows = _eval_starts(num_tokens, seq_len, max_tokens).size
    return -(-num_windows // batch_size)


def eval_targets(num_tokens, seq_len, max_tokens=0):
    """How many tokens `eval_windows` scores in a split of `num_tokens` tokens."""
    if not max_tokens or num_tokens - 1 <= max_tokens:
        return num_tokens - 1
    return _eval_starts(num_tokens, seq_len, max_tokens).size * seq_len


def _eval_starts(num_tokens, seq_len, max_tokens):
    """Start offsets of the evaluation windows: every token of the split once, in
    consecutive windows; or, when that is more than `max_tokens` targets, max_tokens // T
    windows spread evenly over the split (the same ones every time)."""
    num_targets = num_tokens - 1
    if not max_tokens or num_targets <= max_tokens:
        return np.arange(0, num_targets, seq_len)
    count = max(1, max_tokens // seq_len)
    return np.linspace(0, num_targets - seq_len, count).astype(np.int64)


def eval_windows(tokens, seq_len, batch_size, max_tokens=0):
    """The windows an evaluation reads, padded to whole batches.

    Every token of the split once, in non-overlapping windows; with `max_tokens` (> 0)
    and a split of more targets than that, max_tokens // T windows evenly spread over it
    (`eval.max_tokens`: a fixed part of a large split, the same at every evaluation).

    Returns numpy (inputs, targets, weights), each (num_windows, T); weights are 1 for
    real targets and 0 for padding, so a weighted mean is the loss over every token read
    exactly once (each window's context starts fresh at its first token).
    """
    if len(tokens) < 2:
        raise ValueError("the validation split has fewer than 2 tokens; use a longer corpus or "
                         "a larger data.val_fraction.")
    starts = _eval_starts(len(tokens), seq_len, max_tokens)
    num_windows = -(-starts.size // batch_size) * batch_size
    if max_tokens and len(tokens) - 1 > max_tokens:  # a sample of whole windows
        windows = np.zeros((num_windows, seq_len + 1), np.int32)
        windows[:starts.size] = tokens[starts[:, None] + np.arange(seq_len + 1)]
        weights = (np.arange(num_windows) < starts.size).astype(np.float32)[:, None]
        weights = np.repeat(weights, seq_len, axis=1)
    else:  # the whole split, the last window cut short by its end, then padding windows
        flat = np.zeros(num_windows * seq_len + 1, np.int32)
        flat[:len(tokens)] = tokens[0:len(tokens)]
        windows = np.lib.stride_tricks.sliding_window_view(flat, seq_len + 1)[::seq_len]
        weights = (np.arange(num_windows * seq_len) < len(tokens) - 1).astype(np.float32)
        weights = weights.reshape(num_windows, seq_len)
    return windows[:, :-1], windows[:, 1:], weights


def eval_dataset(tokens, seq_len, batch_size, input_context=None, max_tokens=0):
    """Finite dataset of (inputs, targets, weights) batches of `eval_windows`.

    With an `input_context`, each batch is split across replicas as `train_dataset`
    splits (batch_size must divide by the replicas); the padding windows weigh 0."""
    inputs, targets, weights = eval_windows(tokens, seq_len, batch_size, max_tokens)
    first, local, per_replica = _replica_slices(batch_size, input_context)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets, weights))
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if input_context is not None:
        pipeline = slice(first * per_replica, (first + local) * per_replica)
        dataset = dataset.flat_map(
            lambda *batch: _per_replica(local, *(t[pipeline] for t in batch)))
    # No autotuning: every evaluation makes a new iterator, and deleting an autotuned one
    # waited for the autotuner's next wake-up: about one evaluation in five returned only
    # 5.11 s after it began however early it ended (TF 2.21, docs/speedrun.md). The
    # windows are in memory; two batches ahead are plenty.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)
