"""Training: the step, optimizers, schedules, callbacks and the Trainer that runs a config.

Names load lazily, so the TensorFlow-free parts (`tfllm.training.run_directory`'s config
and checkpoint lookups) answer a command's bad input before TensorFlow is imported.
"""

from tfllm._lazy import lazy_getattr

_WHERE = {
    "CheckpointSaver": "callbacks", "Evaluator": "callbacks", "MetricsLogger": "callbacks",
    "ReduceLROnPlateau": "callbacks", "OPTIMIZERS": "optimizers", "build_optimizer": "optimizers",
    "SCHEDULES": "schedules", "Constant": "schedules", "Exponential": "schedules",
    "OneCycle": "schedules", "StepDecay": "schedules", "WarmupCosine": "schedules",
    "WarmupStableDecay": "schedules", "build_schedule": "schedules", "Trainer": "trainer",
    "TrainingModel": "training_model", "token_cross_entropy": "training_model",
    "Muon": "optimizers", "SOAP": "soap", "Sophia": "sophia", "Geometric": "schedules",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
