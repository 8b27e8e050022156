"""Generation speed: the cached decode loop against the naive recompute-everything loop."""

import time

import numpy as np
import tensorflow as tf

from tfllm.inference.decoding import NaiveDecoder, decoder_for, generate


def generation_throughput(model, new_tokens=256, prompt_len=1, repeats=5, seed=0):
    """{"cached_tokens_per_s", "naive_tokens_per_s", "speedup", ...} for one sample of
    `new_tokens` tokens after a `prompt_len`-token prompt, sampled at temperature 1
    (a learned-position GPT generates only up to its context).

    Each loop is compiled first, then timed `repeats` times; the median is reported.
    The cached figure includes the prefill and the Python around the compiled loop (what
    `generate` costs); the naive loop exists for GPTs only (None otherwise).
    """
    if getattr(model, "position", None) == "learned":  # cannot pass its context
        new_tokens = min(new_tokens, model.max_length - prompt_len)
    prompt = np.arange(prompt_len, dtype=np.int32) % model.vocab_size

    def cached():
        return generate(model, prompt, new_tokens, temperature=1.0, seed=seed)[0]

    result = {"new_tokens": new_tokens, "prompt_len": prompt_len,
              "cached_tokens_per_s": new_tokens / _median_time(cached, repeats),
              "naive_tokens_per_s": None, "speedup": None}
    if not decoder_for(model).recurrent:
        naive_decoder = NaiveDecoder(model)
        args = dict(seed=tf.constant([seed, 0], tf.int64), num_new=tf.constant(new_tokens),
                    temperature=tf.constant(1.0), top_k=tf.constant(0), top_p=tf.constant(1.0))
        start = tf.constant(prompt[None][:, -model.max_length:])

        def naive():
            return naive_decoder.decode(start, **args).numpy()

        result["naive_tokens_per_s"] = new_tokens / _median_time(naive, repeats)
        result["speedup"] = result["cached_tokens_per_s"] / result["naive_tokens_per_s"]
    return result


def _median_time(fn, repeats):
    fn()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
