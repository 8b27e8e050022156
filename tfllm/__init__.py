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

__version__ = "0.1.0"

_SUBMODULES = ("layers", "models", "tokenizers", "data", "training")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfllm.{name}")
    raise AttributeError(f"module 'tfllm' has no attribute {name!r}")
