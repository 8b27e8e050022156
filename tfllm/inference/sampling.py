"""Choosing the next token from logits: greedy, temperature, top-k and top-p (nucleus).

Every setting is a tensor, so one traced (and XLA-compiled) decode step serves all of
them, and a SavedModel signature can take them as inputs.

Dimensions: B samples, V vocabulary.
"""

import numpy as np
import tensorflow as tf

from tfllm.errors import UserError

# Samplers by name, as settings of the one sampler below (None: keep the caller's value).
SAMPLERS = {
    "greedy": dict(temperature=0.0, top_k=0, top_p=1.0),
    "temperature": dict(top_k=0, top_p=1.0),
    "top_k": dict(top_p=1.0),
    "top_p": dict(top_k=0),
}


def sampler_settings(name, temperature, top_k, top_p):
    """(temperature, top_k, top_p) of a named sampler, the others switched off.

    Example:
        >>> sampler_settings("top_k", 0.8, 40, 0.9)
        (0.8, 40, 1.0)
    """
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}; use one of {sorted(SAMPLERS)}.")
    if name == "top_k" and top_k < 1:
        raise UserError("the top_k sampler needs --top_k >= 1 (e.g. --top_k=40).")
    if name == "top_p" and not 0 < top_p < 1:
        raise UserError("the top_p sampler needs 0 < --top_p < 1 (e.g. --top_p=0.9).")
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    settings.update(SAMPLERS[name])
    return settings["temperature"], settings["top_k"], settings["top_p"]


def filter_logits(logits, temperature, top_k, top_p):
    """Logits (B, V) divided by the temperature, tokens outside the top-k and then outside
    the top-p mass (of the top-k distribution) set to -inf. top_k 0 and top_p 1 are off."""
    logits = tf.cast(logits, tf.float32) / tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
    vocab = tf.shape(logits)[-1]
    top_k = tf.cast(top_k, tf.int32)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    ranked = tf.sort(logits, direction="DESCENDING", axis=-1)  # (B, V)
    in_top_k = tf.range(vocab) < k
    probs = tf.nn.softmax(tf.where(in_top_k, ranked, -np.inf), axis=-1)
    # The smallest prefix whose mass reaches top_p (always at least the first token).
    mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
    kept = in_top_k & (mass_before < tf.cast(top_p, tf.float32))
    threshold = tf.reduce_min(tf.where(kept, ranked, np.inf), axis=-1, keepdims=True)
    return tf.where(logits < threshold, -np.inf, logits)


def sample_next(logits, seed, temperature, top_k, top_p):
    """Next token ids (B,) from logits (B, V); `seed` a stateless (2,) int seed.
    Temperature 0 is greedy (argmax).

    Draws by the Gumbel-max trick (argmax of logits + Gumbel noise, an exact sample of
    softmax(logits)) rather than tf.random.stateless_categorical, which XLA cannot compile.
    """
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    filtered = filter_logits(logits, temperature, top_k, top_p)
    uniform = tf.random.stateless_uniform(tf.shape(filtered), seed, minval=1e-20, maxval=1.0)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    sampled = tf.argmax(filtered + gumbel, axis=-1, output_type=tf.int32)
    return tf.where(tf.cast(temperature, tf.float32) > 0, sampled, greedy)


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
                        f"{max(limit - prompt_len, 0)} new tokens or shorten the prompt "
                        "(a RoPE model, position='rope', generates past its context).")
