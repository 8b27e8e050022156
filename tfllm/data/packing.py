"""Examples (token ids and a loss mask each) packed into fixed windows.

Best-fit decreasing: the longest example first, each into the window whose free space it
fills best, a new window when none has room. In a window, each example attends only to
itself (segment ids) and its positions start at zero, so a packed batch's losses are the
examples' own (tests/data/test_packing.py). Without packing, each example has a window of
its own, padded; padding and the step from one example to the next are never trained.
"""

import bisect

import numpy as np


class Packed:
    """Windows of `length` + 1 tokens: `tokens`, `segments` (0 padding, 1, 2, ... the
    examples of a window) and `mask` (1 where the token is trained), each (N, length + 1);
    `truncated` and `dropped` count the examples cut to fit and those left with no trained
    token."""

    def __init__(self, tokens, segments, mask, examples, truncated, dropped):
        self.tokens, self.segments, self.mask = tokens, segments, mask
        self.examples, self.truncated, self.dropped = examples, truncated, dropped

    def __len__(self):
        return len(self.tokens)

    @property
    def trained_tokens(self):
        return int(self.weights().sum())

    def inputs(self, rows=slice(None)):
        """The model's inputs for `rows`: {"token_ids", "segment_ids", "positions"} (B, T)."""
        segments = self.segments[rows, :-1]
        return {"token_ids": self.tokens[rows, :-1], "segment_ids": segments,
                "positions": positions(segments)}

    def targets(self, rows=slice(None)):
        return self.tokens[rows, 1:]

    def weights(self, rows=slice(None)):
        """1.0 on a target that is trained and follows a token of its own example."""
        seg = self.segments[rows]
        same = (seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] > 0)
        return (same & (self.mask[rows, 1:] > 0)).astype(np.float32)


def positions(segments):
    """Each token's position within its segment (B, T), from 0."""
    index = np.broadcast_to(np.arange(segments.shape[1]), segments.shape)
    starts = np.ones(segments.shape, bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    start_index = np.maximum.accumulate(np.where(starts, index, 0), axis=1)
    return (index - start_index).astype(np.int32)


def fit(examples, length):
    """Examples cut to `length` + 1 tokens (the start kept: the prompt, then as much of
    the answer as fits); those left with no trained target dropped. Returns (kept,
    truncated count, dropped count)."""
    kept, truncated, dropped = [], 0, 0
    for ids, mask in examples:
        if len(ids) > length + 1:
            ids, mask = ids[:length + 1], mask[:length + 1]
            truncated += 1
        if len(ids) < 2 or not np.any(mask[1:]):
            dropped += 1
            continue
        kept.append((ids, mask))
    return kept, truncated, dropped


def pack(examples, length, packing=True):
    """`Packed` windows of the (ids, mask) examples, each at most `length` + 1 tokens
    after `fit`."""
    kept, truncated, dropped = fit(examples, length)
    size = length + 1
    bins = _best_fit(kept, size) if packing else [[i] for i in range(len(kept))]
    tokens = np.zeros((len(bins), size), np.int32)
    segments = np.zeros((len(bins), size), np.int32)
    mask = np.zeros((len(bins), size), np.int8)
    for row, members in enumerate(bins):
        at = 0
        for segment, i in enumerate(members, 1):
            ids, m = kept[i]
            tokens[row, at:at + len(ids)] = ids
            segments[row, at:at + len(ids)] = segment
            mask[row, at:at + len(ids)] = m
            at += len(ids)
    return Packed(tokens, segments, mask, len(kept), truncated, dropped)


def _best_fit(examples, size):
    """Lists of example indices, one per window: best-fit decreasing."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i][0]))
    free, bins = [], []  # free: sorted (space left, window index)
    for i in order:
        need = len(examples[i][0])
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
