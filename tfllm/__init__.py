"""tfllm: train language models fast on limited compute with TensorFlow and Keras.

The Python API of what the commands do (docs/api.md):

    >>> import tfllm
    >>> config, tokenizer, model = tfllm.load_run("runs/default")      # a trained run
    >>> model, tokenizer = tfllm.from_pretrained("path/to/hf_checkpoint")
    >>> tfllm.generate_text("runs/default", "ROMEO:", max_new_tokens=50)
    >>> tfllm.evaluate_run("runs/default")["loss"]
    >>> tfllm.export_run("runs/default", "hf")

Submodules and these names load lazily, so that `python -m tfllm.train --help` and config
errors answer before TensorFlow is imported.
"""

import importlib
import os

from tfllm import native_logs

# Before TensorFlow is first imported anywhere in the package: tf.keras resolves to
# tf_keras (see tfllm/_keras.py), and TensorFlow's C++ start-up chatter stays quiet.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
native_logs.quiet_tensorflow_import()

__version__ = "0.1.0"

_SUBMODULES = ("layers", "models", "tokenizers", "data", "training", "optim", "adapt",
               "distribute", "runs", "bench", "pretrained", "inference", "compression", "api")
# The public API: each name, the module that defines it.
_API = {"load_run": "tfllm.runs.run_directory", "from_pretrained": "tfllm.pretrained.conversion",
        "generate_text": "tfllm.api.generation", "evaluate_run": "tfllm.api.evaluation",
        "export_run": "tfllm.api.export", "build_model": "tfllm.models",
        "Trainer": "tfllm.training"}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfllm.{name}")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tfllm' has no attribute {name!r}")
