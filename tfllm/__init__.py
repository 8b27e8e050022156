"""tfllm: train language models fast on limited compute with TensorFlow and Keras.

Submodules load lazily so that `python -m tfllm.train --help` and config errors
answer before TensorFlow is imported.
"""

import importlib
import os

# Before TensorFlow is first imported anywhere in the package: tf.keras resolves to
# tf_keras (see tfllm/_keras.py), and TensorFlow's C++ start-up chatter stays quiet.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Host memory from TensorFlow's BFC allocator, which keeps freed blocks for reuse. The
# default CPU allocator hands large blocks back to the system, so every XLA step faulted
# its working memory in again: ~9,400 page faults per bench_tiny step, 54 -> 40 ms when
# kept (docs/benchmarks.md). TensorFlow reads this when it first places a tensor on the
# CPU; TF_CPU_ALLOCATOR_USE_BFC=false in the environment keeps the default allocator.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

__version__ = "0.1.0"

_SUBMODULES = ("layers", "models", "tokenizers", "data", "training")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfllm.{name}")
    raise AttributeError(f"module 'tfllm' has no attribute {name!r}")
