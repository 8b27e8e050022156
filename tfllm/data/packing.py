"""Examples (token ids and a loss mask each) packed into fixed windows.

Best-fit decreasing: the longest example first, each into the window whose free space it
fills best, a new window when none has room. In a window, each example attends only to
itself (segment ids) and its positions start at zero, so a packed batch's losses are the
examples' own (tests/data/test_packing.py). Without packing, each example has a window of
its own, padded; padding and the step from one example to the next are never trained.

The plan is made from the examples' lengths alone (tfllm.data.chat_examples); a window's
tokens are copied from the examples when a batch asks for it, so a prepared dataset of
millions of conversations is packed without reading its tokens.
"""

import bisect

import numpy as np

from tfllm.data.chat_examples import ExampleStore


class Packed:
    """Windows of `length` + 1 tokens cut from an ExampleStore: window w holds examples
    members[bounds[w]:bounds[w + 1]], of which the first `takes` tokens each.
    `examples`, `truncated` and `dropped` count the examples kept, those cut to fit and
    those left with no trained token."""

    def __init__(self, store, length, members, bounds, takes, truncated, dropped):
        self.store, self.length = store, length
        self.members, self.bounds, self.takes = members, bounds, takes
        self.examples, self.truncated, self.dropped = len(members), truncated, dropped

    def __len__(self):
        return len(self.bounds) - 1

    @property
    def trained_tokens(self):
        return self.trained_in(len(self))

    def trained_in(self, windows):
        """Trained targets in the first `windows` windows."""
        end = self.bounds[windows]
        return sum(self.store.trained_within(int(i), int(n))
                   for i, n in zip(self.members[:end], self.takes[:end]))

    def arrays(self, rows=slice(None)):
        """(tokens, segments, mask) of windows `rows`, each (B, length + 1): segments 0 on
        padding, 1, 2, ... the examples of a window; mask 1 where a token is trained."""
        rows = np.arange(len(self))[rows]
        shape = (len(rows), self.length + 1)
        tokens, segments = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
        mask = np.zeros(shape, np.int8)
        for r, w in enumerate(rows):
            at = 0
            for segment, k in enumerate(range(self.bounds[w], self.bounds[w + 1]), 1):
                take = int(self.takes[k])
                ids, m = self.store.span(int(self.members[k]), take)
                tokens[r, at:at + take], mask[r, at:at + take] = ids, m
                segments[r, at:at + take] = segment
                at += take
        return tokens, segments, mask

    @property
    def tokens(self):
        return self.arrays()[0]

    @property
    def segments(self):
        return self.arrays()[1]

    @property
    def mask(self):
        return self.arrays()[2]

    def batch(self, rows=slice(None)):
        """(inputs, targets, weights) of windows `rows`: the model's inputs
        {"token_ids", "segment_ids", "positions"}, targets and weights, each (B, T)."""
        tokens, segments, mask = self.arrays(rows)
        return window_batch(tokens, segments, mask)

    def inputs(self, rows=slice(None)):
        return self.batch(rows)[0]

    def targets(self, rows=slice(None)):
        return self.batch(rows)[1]

    def weights(self, rows=slice(None)):
        return self.batch(rows)[2]


def window_batch(tokens, segments, mask):
    """(inputs, targets, weights) of windows of length + 1 tokens: the weight is 1.0 on a
    target that is trained and follows a token of its own example."""
    inputs = {"token_ids": tokens[:, :-1], "segment_ids": segments[:, :-1],
              "positions": positions(segments[:, :-1])}
    same = (segments[:, 1:] == segments[:, :-1]) & (segments[:, 1:] > 0)
    return inputs, tokens[:, 1:], (same & (mask[:, 1:] > 0)).astype(np.float32)


def positions(segments):
    """Each token's position within its segment (B, T), from 0."""
    index = np.broadcast_to(np.arange(segments.shape[1]), segments.shape)
    starts = np.ones(segments.shape, bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    start_index = np.maximum.accumulate(np.where(starts, index, 0), axis=1)
    return (index - start_index).astype(np.int32)


def fit(store, indices, length):
    """The examples `indices` of `store` cut to `length` + 1 tokens (the start kept: the
    prompt, then as much of the answer as fits); those left with no trained target
    dropped. Returns (kept indices, tokens taken of each, truncated count, dropped count)."""
    indices = np.asarray(indices, np.int64)
    lengths = store.lengths[indices]
    takes = np.minimum(lengths, length + 1)
    keep = (takes >= 2) & (store.first_trained[indices] < takes)
    truncated = int(np.count_nonzero(lengths > length + 1))
    return indices[keep], takes[keep], truncated, int(np.count_nonzero(~keep))


def pack(examples, length, packing=True, indices=None):
    """`Packed` windows of `length` + 1 tokens.

    Args:
        examples: an ExampleStore, or a list of (ids, mask) pairs.
        length: the model's window; examples are cut to length + 1 tokens (`fit`).
        packing: several examples per window (best-fit decreasing), else one each.
        indices: the examples to pack, in this order (ties of length keep it); default all.
    """
    store = examples if isinstance(examples, ExampleStore) else ExampleStore.from_examples(
        examples)
    if indices is None:
        indices = np.arange(len(store))
    kept, takes, truncated, dropped = fit(store, indices, length)
    bins = _best_fit(takes, length + 1) if packing else [[i] for i in range(len(kept))]
    order = np.asarray([i for members in bins for i in members], np.int64)
    bounds = np.concatenate([[0], np.cumsum([len(m) for m in bins])]).astype(np.int64)
    return Packed(store, length, kept[order], bounds, takes[order], truncated, dropped)


def _best_fit(sizes, size):
    """Lists of example positions, one per window: best-fit decreasing."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    free, bins = [], []  # free: sorted (space left, window index)
    for i in order:
        need = int(sizes[i])
        at = bisect.bisect_left(free, (need, -1))
        if at < len(free):
            space, window = free.pop(at)
            bins[window].append(i)
            if space - need:
                bisect.insort(free, (space - need, window))
        else:
            bins.append([i])
            if size - need:
                bisect.insort(free, (size - need, len(bins) - 1))
    return bins
