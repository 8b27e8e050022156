"""Model FLOPs utilization: the model's training FLOPs per token against the machine's
measured matmul peak.

Convention (as nanoGPT / PaLM): a training step costs 6 FLOPs per token per parameter
that takes part in a matmul (2 forward, 4 backward), plus, for a Transformer,
12 * L * T * D per token for the attention scores and their weighted sum (T the
training context). Lookups (token and learned position embeddings) are not matmuls and
are not counted, except a tied token embedding, which is the output projection.
Normalization gains and biases are counted; they are a fraction of a percent.

The peak is measured, not taken from a data sheet: the best rate of large square
matmuls on this machine, in TensorFlow, with and without XLA. `tfllm.benchmark`
measures it in every run; `tfllm.train` reuses the last measurement of this machine
(cached under ~/.cache/tfllm) so its progress line can show MFU without the cost.
"""

import json
import os
import platform
import time

import numpy as np
import tensorflow as tf

from tfllm import hardware
from tfllm.models import GPT, RecurrentLM

PEAK_SIZES = (1024, 2048)
# The dtype whose peak an MFU is measured against, by mixed-precision policy.
POLICY_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def flops_per_token(model):
    """Training FLOPs per token of a GPT or RecurrentLM, by the convention above."""
    params = _count(model.trainable_weights)
    if isinstance(model, GPT):
        if model.position_embedding is not None:
            params -= _count(model.position_embedding.trainable_weights)
        if not model.tie_embeddings:
            params -= _count(model.token_embedding.trainable_weights)
        attention = 12 * model.num_layers * model.max_length * model.hidden_dim
        return 6 * params + 4 * _frozen_matmul_params(model) + attention
    if isinstance(model, RecurrentLM):
        return 6 * (params - _count(model.token_embedding.trainable_weights))
    raise TypeError(f"no FLOP count for {type(model).__name__}; tfllm counts GPT and RecurrentLM.")


def _frozen_matmul_params(model):
    """Parameters of a GPT's frozen matmuls (LoRA fine-tuning): forward and input
    gradient but no weight gradient, so 4 FLOPs per token each instead of 6."""
    from tfllm._keras import keras

    trainable = {id(v) for v in model.trainable_weights}
    frozen = [layer.kernel for layer in model._flatten_layers()
              if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))
              and id(layer.kernel) not in trainable]
    if model.tie_embeddings and id(model.token_embedding.embeddings) not in trainable:
        frozen.append(model.token_embedding.embeddings)  # the tied head's matmul
    return _count(frozen)


def measure_matmul_peak(dtype="float32", sizes=PEAK_SIZES, repeats=10):
    """The best matmul rate in FLOP/s for `dtype`, over square sizes, with and without XLA.

    Returns {"flops_per_s", "size", "xla", "dtype"} of the fastest variant. Each variant
    is timed by its fastest of `repeats` calls after a warm-up call: a peak is the best
    the machine does, and on a shared machine a median reading swings by 25% from run to
    run, which an MFU would inherit.
    """
    best = None
    for size in sizes:
        a = tf.random.normal((size, size), dtype=tf.float32)
        a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
        for xla in (False, True):
            matmul = tf.function(tf.linalg.matmul, jit_compile=xla)
            matmul(a, b).numpy()  # compile and warm caches
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                matmul(a, b).numpy()  # numpy() waits for the result (a copy: < 1% here)
                times.append(time.perf_counter() - start)
            rate = 2 * size ** 3 / min(times)
            if best is None or rate > best["flops_per_s"]:
                best = {"flops_per_s": rate, "size": size, "xla": xla, "dtype": dtype}
    return best


def machine_id():
    """What the peak depends on: processor, cores, TensorFlow version."""
    cpu = hardware.cpu_info()["name"] or platform.processor() or platform.machine()
    return f"{cpu} | {os.cpu_count()} cores | TensorFlow {tf.__version__}"


def _cache_path():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "tfllm", "matmul_peak.json")


def _read_cache():
    try:
        with open(_cache_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def remember_peak(peak):
    """Stores a measured peak for this machine unless a higher one is stored: a peak is the
    best the machine does, and a reading in a slow stretch of a shared VM would inflate
    every MFU `tfllm.train` logs after it (best effort: a read-only home is fine)."""
    cache = _read_cache()
    key = f"{machine_id()} | {peak['dtype']}"
    if cache.get(key, {}).get("flops_per_s", 0.0) >= peak["flops_per_s"]:
        return
    cache[key] = peak
    path = _cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + f".{os.getpid()}.tmp", "w") as f:
            json.dump(cache, f, indent=1)
        os.replace(path + f".{os.getpid()}.tmp", path)
    except OSError:
        pass


def matmul_peak(dtype="float32"):
    """This machine's peak for `dtype`: the cached measurement, else measured now (a few seconds)."""
    cached = _read_cache().get(f"{machine_id()} | {dtype}")
    if cached:
        return cached
    peak = measure_matmul_peak(dtype)
    remember_peak(peak)
    return peak
