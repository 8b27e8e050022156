"""Incremental decoding: a compiled loop over a fixed-size KV cache (GPT) or a carried
recurrent state (RecurrentLM), and the naive recompute-everything loop to compare it with.

Dimensions: B samples, P prompt length, N new tokens, V vocabulary, S cache length
(the GPT's max_length).
"""

import numpy as np
import tensorflow as tf

from tfllm.inference.sampling import check_sampling_args, sample_next

NO_END_TOKEN = -1


class Decoder(tf.Module):
    """Prefill once, then one position per step, the whole loop (sampling included) one
    XLA-compiled while loop. Every setting is a tensor, so nothing retraces for a new
    prompt or sampler; XLA compiles once per size of the output buffer (`generate` rounds
    it up to a power of two) and of the cache.

    The GPT's cache always holds S = max_length positions, so the step compiles once.
    A RoPE model decodes past S with the cache as a ring (sliding-window attention: each
    layer attends to its last S cached positions); a learned-position model cannot
    (`check_sampling_args` says so).

    The same functions serve `generate` and the exported SavedModel (tfllm.export), so
    both give the same tokens for the same seed.

    Args:
        model: a GPT (`init_cache`, `call_with_cache`) or RecurrentLM (`init_state`,
            `call_with_state`).
        jit_compile: compile the decode step with XLA.

    Example:
        >>> decoder = Decoder(model)
        >>> logits, state, position = decoder.prefill(tf.constant([[5, 7, 9]]))
        >>> out = decoder.decode(logits, state, position, seed=tf.constant([0, 0], tf.int64),
        ...                      step0=0, num_new=20, temperature=0.8, top_k=0, top_p=1.0,
        ...                      end_token=-1, done=tf.zeros([1], tf.bool))
    """

    def __init__(self, model, jit_compile=True, cache_length=None):
        super().__init__(name="decoder")
        self.model = model
        self.recurrent = hasattr(model, "call_with_state")
        self.decode = tf.function(self._decode, jit_compile=jit_compile)
        self._cache_length = cache_length

    @property
    def cache_length(self):
        """S (the model's max_length unless a shorter cache was asked for), or None for a
        recurrent model (unbounded)."""
        if self.recurrent:
            return None
        return min(self._cache_length or self.model.max_length, self.model.max_length)

    # Traced once for any batch and prompt length (a chat's prompt grows each turn): a trace
    # of SmolLM2-135M's prefill took about 4 s, which a retrace for the second length paid again.
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def prefill(self, prompt):
        """Prompt (B, P) -> (next-token logits (B, V), state, position of the next token).

        A RoPE GPT keeps the last S tokens of a longer prompt."""
        prompt = tf.cast(prompt, tf.int32)
        batch = tf.shape(prompt)[0]
        if self.recurrent:
            logits, state = self.model.call_with_state(prompt, self.model.init_state(batch))
            return logits[:, -1], state, tf.shape(prompt)[1]
        if self.model.position == "rope":
            prompt = prompt[:, -self.cache_length:]
        cache = self.model.init_cache(batch, self.cache_length)
        logits, cache = self.model.call_with_cache(prompt, cache, 0)
        return logits[:, -1], cache, tf.shape(prompt)[1]

    def _decode(self, logits, state, position, seed, step0, num_new, temperature, top_k, top_p,
                end_token, done, capacity=None):
        """Up to `num_new` tokens (B, n) continuing from a prefill (or an earlier decode).

        Token i is drawn with seed fold_in(seed, step0 + i), so decoding in chunks (for
        streaming) gives the same tokens as one call. A sample that draws `end_token`
        (-1: none) pads with it from then on; the loop stops once every sample is done.

        `capacity` (a Python int >= num_new) sizes the output buffer: XLA compiles the loop
        once per buffer size (a shape), so `generate` rounds it up to a power of two and any
        `num_new` up to it reuses the compiled loop; None sizes it to `num_new` (the
        exported SavedModel, whose callers pass any number).

        Returns (tokens (B, n), logits, state, position, done) to continue from; with
        `capacity`, tokens is (B, capacity), end_token past the last one decoded.
        """
        position = tf.convert_to_tensor(position, tf.int32)
        num_new = tf.convert_to_tensor(num_new, tf.int32)
        end_token = tf.convert_to_tensor(end_token, tf.int32)
        if not self.recurrent and self.model.position == "learned":
            tf.debugging.assert_less_equal(
                position + num_new, self.cache_length + 1,
                message="prompt + new tokens exceed the model's learned positions")
        batch = tf.shape(logits)[0]
        # (N, B), padded with end_token if every sample ends early.
        tokens = tf.fill([num_new if capacity is None else capacity, batch], end_token)
        i = tf.constant(0)
        while i < num_new and not tf.reduce_all(done):
            seed_i = tf.random.experimental.stateless_fold_in(seed, tf.cast(step0 + i, tf.int64))
            token, logits, state = self._step(logits, state, position + i, seed_i,
                                              temperature, top_k, top_p)
            token = tf.where(done, end_token, token)
            done = done | tf.equal(token, end_token)
            tokens = tf.tensor_scatter_nd_update(tokens, [[i]], token[tf.newaxis])
            i += 1
        return tf.transpose(tokens), logits, state, position + i, done

    def _step(self, logits, state, position, seed, temperature, top_k, top_p):
        token = sample_next(logits, seed, temperature, top_k, top_p)
        if self.recurrent:
            logits, state = self.model.call_with_state(token[:, None], state)
        else:
            logits, state = self.model.call_with_cache(token[:, None], state, position)
        return token, logits[:, -1], state


class NaiveDecoder(tf.Module):
    """The reference decoding loop: every step runs the full forward pass over the whole
    context (the last S tokens, in a fixed (B, S) buffer so the loop compiles once per
    token count, like Decoder's) and keeps the logits of the last real position. What the
    KV cache saves; used by the benchmark and the tests. GPT only.
    """

    def __init__(self, model, jit_compile=True):
        super().__init__(name="naive_decoder")
        self.model = model
        self.decode = tf.function(self._decode, jit_compile=jit_compile)

    def _decode(self, prompt, seed, num_new, temperature, top_k, top_p):
        """Prompt (B, P) -> new tokens (B, N), P <= S."""
        size = self.model.max_length
        prompt = tf.cast(prompt, tf.int32)
        length = tf.shape(prompt)[1]
        buffer = tf.pad(prompt, [[0, 0], [0, size - length]])
        tokens = tf.TensorArray(tf.int32, size=num_new)
        for i in tf.range(num_new):
            seed_i = tf.random.experimental.stateless_fold_in(seed, tf.cast(i, tf.int64))
            token, buffer, length = self._step(buffer, length, seed_i, temperature, top_k, top_p)
            tokens = tokens.write(i, token)
        return tf.transpose(tokens.stack())

    def _step(self, buffer, length, seed, temperature, top_k, top_p):
        size = self.model.max_length
        logits = self.model(buffer, training=False)[:, tf.minimum(length, size) - 1]  # (B, V)
        token = sample_next(logits, seed, temperature, top_k, top_p)
        full = length >= size
        # Append the token: in the first free slot, or shift the window left once full.
        shifted = tf.concat([buffer[:, 1:], token[:, None]], axis=1)
        slot = tf.equal(tf.range(size), tf.minimum(length, size - 1))[tf.newaxis]
        written = tf.where(slot, token[:, None], buffer)
        return token, tf.where(full, shifted, written), length + 1


# The shortest cache generate() gives a GPT; longer ones are the next power of two.
MIN_CACHE = 256


def cache_bucket(model, tokens):
    """The cache length generate() uses for `tokens` (prompt + new) positions: the next
    power of two from MIN_CACHE, at most max_length. Every decode step attends over the
    whole cache, so a model with a long context (SmolLM2: 8,192) decoding a short chat
    reads a cache sized to the chat, and compiles once per size reached."""
    if hasattr(model, "call_with_state"):
        return None
    size = MIN_CACHE
    while size < tokens:
        size *= 2
    return min(size, model.max_length)


def output_bucket(num_new):
    """The output buffer generate() decodes `num_new` tokens into: the next power of two
    from 16, so that a new `max_new_tokens` seldom means a new compilation (12 s for
    SmolLM2-135M's loop)."""
    size = 16
    while size < num_new:
        size *= 2
    return size


# The size from which generate() decodes without XLA. Decoding one token reads every weight
# once: a large model is bound by memory, where XLA's loop decoded no faster and compiled 4 s
# longer (SmolLM2-135M: 24-25 tokens/s either way, its first answer after 10.8-11.6 s with
# XLA against 5.8-6.8 s without); a small one is bound by the ops' overhead, which XLA
# removes (10.8 M parameters: 340-356 against 216-228 tokens/s; 0.8 M: 2,761-3,033 against
# 650). AMD EPYC (Zen 5), 2 cores, 2026-12-08.
XLA_DECODE_MAX_PARAMS = 50_000_000


def decodes_with_xla(model):
    """Whether generate() and the exported SavedModel compile `model`'s decode loop with
    XLA: below XLA_DECODE_MAX_PARAMS parameters. Both decide alike because a sample's
    random numbers differ with and without XLA: the same seed gives the same tokens only
    in the same mode."""
    return model.count_params() < XLA_DECODE_MAX_PARAMS


def decoder_for(model, cache_length=None):
    """The model's Decoder for a cache of `cache_length` (default max_length), made once
    and kept on the model (so its compilations are too)."""
    decoders = model.__dict__.setdefault("_tfllm_decoders", {})
    if cache_length not in decoders:
        decoders[cache_length] = Decoder(model, jit_compile=decodes_with_xla(model),
                                         cache_length=cache_length)
    return decoders[cache_length]


def generate(model, prompt_ids, max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0,
             num_samples=1, end_token=None, stream=None, chunk_size=16):
    """New token ids, one array per sample, continuing `prompt_ids` (a 1-D sequence).

    A sample ends after `max_new_tokens` or at `end_token` (included). With `stream`,
    decoding runs in chunks (the first token alone, then `chunk_size` tokens at a time) and
    `stream(ids (num_samples, n))` is called after each; the tokens are the same as without
    it, except that decoding stops after a chunk for which `stream` returns True (a stop
    string seen in the text).

    Example:
        >>> samples = generate(model, tokenizer.encode("ROMEO:"), 100, temperature=0.8, top_k=20)
        >>> print(tokenizer.decode(samples[0]))
    """
    prompt = np.asarray(prompt_ids, np.int32).reshape(-1)
    check_sampling_args(model, len(prompt), max_new_tokens, temperature, top_k, top_p)
    decoder = decoder_for(model, cache_bucket(model, len(prompt) + max_new_tokens))
    logits, state, position = decoder.prefill(tf.constant(np.tile(prompt[None], [num_samples, 1])))
    settings = dict(seed=tf.constant([seed, 0], tf.int64),
                    temperature=tf.constant(temperature, tf.float32),
                    top_k=tf.constant(top_k, tf.int32), top_p=tf.constant(top_p, tf.float32),
                    end_token=tf.constant(NO_END_TOKEN if end_token is None else end_token, tf.int32))
    done = tf.zeros([num_samples], tf.bool)
    chunk = chunk_size if stream is not None else max_new_tokens
    pieces = []
    step = 0
    while step < max_new_tokens and not bool(tf.reduce_all(done)):
        # A stream's first chunk is one token: it shows as soon as the prompt is read.
        n = min(1 if stream is not None and step == 0 else chunk, max_new_tokens - step)
        before = int(position)
        new, logits, state, position, done = decoder.decode(
            logits, state, position, step0=tf.constant(step), num_new=tf.constant(n),
            done=done, capacity=output_bucket(n), **settings)
        new = new.numpy()[:, :int(position) - before]  # the loop ends early once all are done
        pieces.append(new)
        step += n
        if stream is not None and new.shape[1] and stream(new):
            break
    tokens = np.concatenate(pieces, axis=1)
    return [_cut_at_end(row, end_token) for row in tokens]


def _cut_at_end(row, end_token):
    if end_token is not None:
        hits = np.flatnonzero(row == end_token)
        if hits.size:
            return row[:hits[0] + 1]
    return row
