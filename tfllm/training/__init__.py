"""Training: the step, optimizers, schedules, callbacks and the Trainer that runs a config."""

from tfllm.training.callbacks import (CheckpointSaver, Evaluator, MetricsLogger,
                                      ReduceLROnPlateau)
from tfllm.training.optimizers import OPTIMIZERS, build_optimizer
from tfllm.training.schedules import (SCHEDULES, Constant, Exponential, OneCycle, StepDecay,
                                      WarmupCosine, WarmupStableDecay, build_schedule)
from tfllm.training.trainer import Trainer
from tfllm.training.training_model import TrainingModel, token_cross_entropy

__all__ = ["CheckpointSaver", "Evaluator", "MetricsLogger", "ReduceLROnPlateau", "OPTIMIZERS",
           "build_optimizer", "SCHEDULES", "Constant", "Exponential", "OneCycle", "StepDecay",
           "WarmupCosine", "WarmupStableDecay",
           "build_schedule", "Trainer", "TrainingModel", "token_cross_entropy"]
