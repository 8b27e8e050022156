"""Sampling text from a language model: greedy, temperature, top-k and top-p, with a
KV cache (GPT) or carried recurrent state (RecurrentLM), the whole loop one tf.function.

Dimensions: B samples, P prompt length, N new tokens, V vocabulary.
"""

import numpy as np
import tensorflow as tf

from tfllm.errors import UserError


def filter_logits(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Logits (B, V) with temperature applied and tokens outside top-k / top-p set to -inf."""
    logits = tf.cast(logits, tf.float32) / tf.maximum(temperature, 1e-6)
    if top_k:
        kth = tf.math.top_k(logits, k=top_k).values[:, -1:]
        logits = tf.where(logits < kth, -np.inf, logits)
    if top_p < 1.0:
        sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
        probs = tf.nn.softmax(sorted_logits, axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
        kept = tf.where(mass_before < top_p, sorted_logits, np.inf)
        threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
        logits = tf.where(logits < threshold, -np.inf, logits)
    return logits


def sample_token(logits, seed, temperature=1.0, top_k=0, top_p=1.0):
    """Next token ids (B,) from logits (B, V); `seed` is a stateless (2,) int seed."""
    if temperature == 0:
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    filtered = filter_logits(logits, temperature, top_k, top_p)
    return tf.random.stateless_categorical(filtered, 1, seed, dtype=tf.int32)[:, 0]


def check_sampling_args(model, prompt_len, max_new_tokens, temperature, top_k, top_p):
    """Raises UserError for arguments no sampler can honour."""
    if prompt_len < 1:
        raise UserError("the prompt is empty; give at least one token of prompt.")
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens={max_new_tokens}; ask for at least 1 new token.")
    if not 0 < top_p <= 1:
        raise UserError(f"top_p={top_p} is outside (0, 1]; use e.g. 0.9, or 1 for no filtering.")
    if top_k < 0 or temperature < 0:
        raise UserError("top_k and temperature must be >= 0 (0 means off / greedy).")
    if top_k > getattr(model, "vocab_size", top_k):
        raise UserError(f"top_k={top_k} exceeds the vocabulary of {model.vocab_size}; use a smaller top_k.")
    limit = getattr(model, "max_length", None)
    learned = getattr(model, "position", None) == "learned"
    if learned and prompt_len + max_new_tokens > limit:
        raise UserError(f"prompt ({prompt_len}) + max_new_tokens ({max_new_tokens}) exceeds the "
                        f"model's context of {limit} learned positions; ask for at most "
                        f"{max(limit - prompt_len, 0)} new tokens or shorten the prompt.")


def generate(model, prompt_ids, max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0,
             num_samples=1):
    """New token ids (num_samples, N) continuing `prompt_ids` (a 1-D sequence of ids).

    Example:
        >>> ids = generate(model, tokenizer.encode("ROMEO:"), 100, temperature=0.8, top_k=20)
        >>> print(tokenizer.decode(ids[0]))
    """
    prompt = np.asarray(prompt_ids, np.int32).reshape(-1)
    check_sampling_args(model, len(prompt), max_new_tokens, temperature, top_k, top_p)
    prompt = tf.constant(np.tile(prompt[None], [num_samples, 1]))
    loop = _decode_loop(model, max_new_tokens, float(temperature), int(top_k), float(top_p))
    return loop(prompt, tf.constant([seed, 0], tf.int64)).numpy()


def _decode_loop(model, num_new, temperature, top_k, top_p):
    """A compiled loop prompt (B, P) -> new ids (B, N), cached per model and settings."""
    cache = model.__dict__.setdefault("_tfllm_decode_loops", {})
    key = (num_new, temperature, top_k, top_p)
    if key in cache:
        return cache[key]
    stateful = hasattr(model, "call_with_state")

    @tf.function
    def loop(prompt, seed):
        batch, prompt_len = tf.shape(prompt)[0], tf.shape(prompt)[1]
        if stateful:
            logits, state = model.call_with_state(prompt, model.init_state(batch))
        else:
            state = model.init_cache(batch, prompt_len + num_new)
            logits, state = model.call_with_cache(prompt, state, 0)
        next_logits = logits[:, -1]
        new_tokens = tf.TensorArray(tf.int32, size=num_new)
        for i in tf.range(num_new):
            token = sample_token(next_logits, tf.random.experimental.stateless_fold_in(seed, i),
                                 temperature, top_k, top_p)
            new_tokens = new_tokens.write(i, token)
            if stateful:
                logits, state = model.call_with_state(token[:, None], state)
            else:
                logits, state = model.call_with_cache(token[:, None], state, prompt_len + i)
            next_logits = logits[:, -1]
        return tf.transpose(new_tokens.stack())  # (B, N)

    cache[key] = loop
    return loop
