"""Optimization: optimizers (AdamW, Lion, Muon, SOAP, Sophia, ...), learning-rate
schedules and the learning-rate range test's analysis.

Names load lazily (TensorFlow with them).
"""

from tfllm._lazy import lazy_getattr

# The registries' names, TensorFlow-free: the config check's choices (tfllm.config.CHOICES)
# are these, and build_optimizer and build_schedule make each of them.
OPTIMIZERS = ("adamw", "adam", "lion", "muon", "soap", "sophia", "sgd", "adagrad", "rmsprop")
SCHEDULES = ("constant", "warmup_cosine", "wsd", "one_cycle", "step", "exponential")
# Optimizers tf_keras has in a DTensor version (keras.dtensor.experimental.optimizers).
DTENSOR_OPTIMIZERS = ("adamw", "adam", "sgd", "adagrad", "rmsprop")

_WHERE = {
    "build_optimizer": "optimizers", "Muon": "optimizers",
    "SOAP": "soap", "Sophia": "sophia", "Constant": "schedules", "Exponential": "schedules",
    "OneCycle": "schedules", "StepDecay": "schedules", "WarmupCosine": "schedules",
    "WarmupStableDecay": "schedules", "Geometric": "schedules", "build_schedule": "schedules",
}

__all__ = sorted(_WHERE) + ["DTENSOR_OPTIMIZERS", "OPTIMIZERS", "SCHEDULES"]

__getattr__ = lazy_getattr(__name__, _WHERE)
