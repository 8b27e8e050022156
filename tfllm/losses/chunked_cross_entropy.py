"""The output head's cross-entropy computed a chunk of positions at a time.

Dimensions: N positions (the batch's B x T flattened), D width, V vocabulary, C positions
per chunk.

The plain loss holds the logits of every position (N, V) in float32, and autodiff keeps
them and their softmax for the backward pass: at V = 151,936 (Qwen3), context 512 and
batch 4 that is 1.2 GB per copy. Here the head's matrix product, the log-softmax and
their gradients run C positions at a time inside one compiled loop, so at most (C, V)
logits exist at once. The loss is a weighted sum, so its upstream gradient is one scalar:
the gradients with respect to the hidden states and the head's matrix are computed in the
forward loop and scaled by it in the backward pass, and each of the head's three matrix
products runs once, as under autodiff (no recomputation). Positions of weight 0 (chat
prompts, padding) are moved behind the others and never reach the head.

Written here because neither TensorFlow nor tf_keras has a chunked or fused cross-entropy
(for PyTorch, Liger-Kernel's fused linear cross-entropy does this job).
"""

import tensorflow as tf

# A chunk's logits hold at most this many float32 values (512 MB) when the rows are sized
# from the vocabulary; rows are a power of two between MIN_ROWS and MAX_ROWS. Measured at
# V = 151,936 (6 x 384 GPT, context 512, batch 4; docs/training.md): 128 rows per chunk
# took the step's memory to 0.45 of the plain loss's at 0.78x its speed, 512 rows to 0.53
# at 0.94x (each chunk adds the head gradient's (V, D) accumulation to memory traffic).
CHUNK_VALUES = 1 << 27
MIN_ROWS, MAX_ROWS = 16, 4096


def chunk_rows_for(vocab_size):
    """Positions per chunk for a vocabulary: a power of two whose (C, V) float32 logits
    are at most 512 MB (16 <= C <= 4096). E.g. V = 50,257 -> 2,048; 151,936 -> 512."""
    rows = MAX_ROWS
    while rows > MIN_ROWS and rows * vocab_size > CHUNK_VALUES:
        rows //= 2
    return rows


def balanced_rows(rows, positions):
    """Positions per chunk for `positions` (N, or None where unknown until run time): at
    most `rows`, and the chunks made even, so padding never exceeds one row per chunk.
    E.g. 2,048 rows for N = 256 (a batch of 1 x 256) -> 256, not 8x the head's work and
    logits; N = 3,000 -> 1,500 (two chunks) rather than 2,048 + 952 rows of padding."""
    if not positions:
        return rows
    chunks = -(-positions // rows)
    return -(-positions // chunks)


def cross_entropy_sum(hidden, head, targets, weights=None, chunk_rows=0, vocab_first=True,
                      head_gradient=True, gradients=True):
    """sum(weights * cross-entropy(softmax(hidden @ head), targets)), a float32 scalar,
    never holding more than `chunk_rows` positions' logits.

    Args:
        hidden: (B, T, D) the final hidden states (after the final norm), compute dtype.
        head: the output projection in the compute dtype: (V, D) if `vocab_first` (a tied
            embedding table), else (D, V) (a Dense kernel).
        targets: (B, T) token ids.
        weights: (B, T) per-position weights, or None for 1 everywhere. Positions of
            weight 0 are skipped.
        chunk_rows: at most C positions per chunk; 0 = `chunk_rows_for(V)`; made even over
            the batch's positions where their number is known (`balanced_rows`).
        head_gradient: False when the head is frozen (LoRA): its gradient is not computed.
        gradients: False for evaluation: the forward loop alone (no gradients).

    Returns the weighted sum; differentiable with respect to `hidden` and `head` (the same
    gradients as autodiff of the plain loss, up to float rounding).
    """
    dim = hidden.shape[-1]
    vocab = head.shape[0] if vocab_first else head.shape[-1]
    flat = tf.reshape(hidden, [-1, dim])  # (N, D)
    rows = balanced_rows(chunk_rows or chunk_rows_for(vocab), flat.shape[0])
    labels = tf.reshape(tf.cast(targets, tf.int32), [-1])  # (N,)
    if weights is None:
        w = tf.ones_like(labels, tf.float32)
        order, count = tf.range(tf.shape(labels)[0]), tf.shape(labels)[0]
    else:
        w = tf.reshape(tf.cast(weights, tf.float32), [-1])
        # The positions to score first, in their order (a stable sort of "skipped?").
        order = tf.argsort(tf.cast(tf.equal(w, 0.0), tf.int32), stable=True)
        count = tf.reduce_sum(tf.cast(tf.not_equal(w, 0.0), tf.int32))
    # Padded by one chunk, so the last chunk's slice stays inside (its extra rows weigh 0).
    order = tf.concat([order, tf.zeros([rows], tf.int32)], axis=0)

    def chunks(flat_hidden, head_matrix):
        return _Chunks(flat_hidden, head_matrix, labels, w, order, count, rows, vocab_first)

    if not gradients:
        return chunks(flat, head).loss()
    return _differentiable(chunks, flat, head, head_gradient)


def _differentiable(chunks, flat, head, head_gradient):
    @tf.custom_gradient
    def loss_sum(flat_hidden, head_matrix):
        # The loop computes its own gradients: a tape must not differentiate it again.
        total, d_hidden, d_head = chunks(tf.stop_gradient(flat_hidden),
                                         tf.stop_gradient(head_matrix)).loss_and_gradients(
                                             head_gradient)

        def grad(upstream):
            scale = tf.cast(upstream, tf.float32)
            return (tf.cast(scale * d_hidden, flat_hidden.dtype),
                    None if d_head is None else tf.cast(scale * d_head, head_matrix.dtype))

        return total, grad

    return loss_sum(flat, head)


class _Chunks:
    """One batch's positions in chunks of `rows`: the loop over them, with or without
    gradients. `order` lists the scored positions first (then padding); `count` of them."""

    def __init__(self, hidden, head, labels, weights, order, count, rows, vocab_first):
        self.hidden, self.head, self.labels, self.weights = hidden, head, labels, weights
        self.order, self.count, self.rows, self.vocab_first = order, count, rows, vocab_first
        self.num_chunks = (count + rows - 1) // rows

    def _chunk(self, i):
        """Positions (C,), their hidden states (C, D), float32 logits (C, V), log-sum-exp
        (C,), the target logits' positions (C, 2) and weights (C,; 0 past `count`)."""
        start = i * self.rows
        index = tf.slice(self.order, [start], [self.rows])
        scored = start + tf.range(self.rows) < self.count
        # The last chunk's rows past `count` are padding: zeros, not a skipped position.
        h = tf.where(scored[:, None], tf.gather(self.hidden, index), tf.zeros([], self.hidden.dtype))
        logits = tf.matmul(h, self.head, transpose_b=self.vocab_first)
        logits = tf.cast(logits, tf.float32)  # the softmax over V is sensitive to rounding
        lse = tf.reduce_logsumexp(logits, axis=-1)
        at_target = tf.stack([tf.range(self.rows), tf.gather(self.labels, index)], axis=1)
        w = tf.where(scored, tf.gather(self.weights, index), 0.0)
        return index, h, logits, lse, at_target, w

    def _chunk_loss(self, logits, lse, at_target, w):
        return tf.reduce_sum(w * (lse - tf.gather_nd(logits, at_target)))

    def loss(self):
        def body(i, total):
            _, _, logits, lse, at_target, w = self._chunk(i)
            return i + 1, total + self._chunk_loss(logits, lse, at_target, w)

        _, total = tf.while_loop(lambda i, _: i < self.num_chunks, body,
                                 (tf.constant(0), tf.constant(0.0)), parallel_iterations=1)
        return total

    def loss_and_gradients(self, head_gradient):
        """(loss, d loss / d hidden (N, D) float32, d loss / d head float32 or None)."""
        d_hidden = tf.zeros(tf.shape(self.hidden), tf.float32)
        d_head = tf.zeros(self.head.shape, tf.float32) if head_gradient else tf.zeros([])

        def body(i, total, d_hidden, d_head):
            index, h, logits, lse, at_target, w = self._chunk(i)
            total += self._chunk_loss(logits, lse, at_target, w)
            # d loss / d logits = w (softmax - one_hot(target)), in the compute dtype as
            # autodiff of the plain loss would pass it back through the float32 cast.
            probs = tf.exp(logits - lse[:, None])
            probs = tf.tensor_scatter_nd_sub(probs, at_target, tf.ones([self.rows]))
            d_logits = tf.cast(probs * w[:, None], h.dtype)  # (C, V)
            d_h = tf.matmul(d_logits, self.head, transpose_b=not self.vocab_first)  # (C, D)
            d_hidden = tf.tensor_scatter_nd_add(d_hidden, index[:, None], tf.cast(d_h, tf.float32))
            if head_gradient:
                d_head += tf.cast(tf.matmul(d_logits, h, transpose_a=True) if self.vocab_first
                                  else tf.matmul(h, d_logits, transpose_a=True), tf.float32)
            return i + 1, total, d_hidden, d_head

        _, total, d_hidden, d_head = tf.while_loop(
            lambda i, *_: i < self.num_chunks, body,
            (tf.constant(0), tf.constant(0.0), d_hidden, d_head),
            # One chunk at a time: without XLA, TensorFlow runs up to 10 iterations at once
            # by default, each holding its chunk's logits (1.34x the plain loss's memory).
            parallel_iterations=1)
        return total, d_hidden, d_head if head_gradient else None
