"""The training loop: the compiled step (TrainingModel), its callbacks, and the Trainer
that runs a config; the checks `tfllm.train` makes before TensorFlow loads (preflight).

Names load lazily, so a command's bad input is answered before TensorFlow is imported.
"""

from tfllm._lazy import lazy_getattr

_WHERE = {
    "CheckpointSaver": "callbacks", "Evaluator": "callbacks", "MetricsLogger": "callbacks",
    "ReduceLROnPlateau": "callbacks", "Trainer": "trainer",
    "TrainingModel": "training_model", "token_cross_entropy": "training_model",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
