"""Builds what a training run steps: model, schedule, optimizer and the compiled step.

`tfllm.train`, `tfllm.benchmark` and the speedrun all call `build_training_setup`, so
the step a benchmark times is the step a training run takes.
"""

import dataclasses

import tensorflow as tf

from tfllm._keras import keras
from tfllm.config import checked_window, eval_length  # noqa: F401  (re-exported)
from tfllm.config import resolve_precision
from tfllm.errors import UserError
from tfllm.adapt.lora import apply_configured_lora
from tfllm.models import build_model
from tfllm.optim.optimizers import build_optimizer
from tfllm.optim.schedules import Scaled, build_schedule
from tfllm.training.training_model import TrainingModel


@dataclasses.dataclass
class TrainingSetup:
    """The objects of one training run (all created in the strategy's scope).

    Attributes:
        model: the language model (GPT or RecurrentLM).
        task: the compiled TrainingModel wrapping it; `task.fit` runs the steps.
        optimizer: the Keras optimizer (a LossScaleOptimizer under float16).
        schedule: the learning rate as a function of the step (includes `lr_scale`).
        lr_scale: the variable reduce-on-plateau lowers; checkpointed with the run.
    """

    model: keras.Model
    task: TrainingModel
    optimizer: keras.optimizers.Optimizer
    schedule: keras.optimizers.schedules.LearningRateSchedule
    lr_scale: tf.Variable


def apply_thread_settings(cfg):
    """TensorFlow's thread pools as `cfg.train` sets them (0 keeps TensorFlow's default).

    They can only be set before TensorFlow runs its first op, so call this first.
    One inter-op thread measured faster on 2 cores: independent ops no longer compete
    with the intra-op (matmul) threads for the same cores (docs/benchmarks.md).
    """
    threading = tf.config.threading
    for value, getter, setter in (
            (cfg.train.inter_op_threads, threading.get_inter_op_parallelism_threads,
             threading.set_inter_op_parallelism_threads),
            (cfg.train.intra_op_threads, threading.get_intra_op_parallelism_threads,
             threading.set_intra_op_parallelism_threads)):
        if value and getter() != value:
            try:
                setter(value)
            except RuntimeError:  # TensorFlow already ran ops in this process (e.g. a test)
                pass


def apply_runtime_settings(cfg):
    """Threads, seeds, op determinism and the mixed-precision policy a config asks for.

    Call before building the model: the policy decides the dtypes its layers compute in.
    """
    apply_thread_settings(cfg)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(resolve_precision(cfg).train.precision)


def xla_works(strategy):
    """Whether the step can be XLA-compiled under `strategy`: not with replicas on several
    logical CPU devices, where XLA places every replica's cluster on the first device and
    fails ("Trying to access resource ... located in device CPU:1 from device CPU:0").
    GPUs and TPUs are fine."""
    if strategy.num_replicas_in_sync == 1:
        return True
    devices = getattr(strategy.extended, "worker_devices", ())
    return not any("CPU" in device.upper() for device in devices)


def build_training_setup(cfg, vocab_size, strategy=None, mesh=None, init_weights=None,
                         teacher=None, schedule=None):
    """Builds and compiles the training objects of `cfg` for a `vocab_size` vocabulary.

    Args:
        cfg: a validated config (see configs/base.py; train.precision=auto is resolved here).
        vocab_size: V of the run's tokenizer.
        strategy: the tf.distribute strategy; the default strategy when None.
        mesh: a DTensor mesh (instead of a strategy): the model is built as on one
            device, then sharded by its layout map (tfllm.distribute.distribution).
        init_weights: called with the built model before LoRA adapters are put on it
            and the optimizer is built (a run's starting weights: --init_from).
        teacher: the frozen model to distil from (train.teacher; built under `strategy`'s
            scope), or None.
        schedule: a LearningRateSchedule in place of the config's (tfllm.lr_find's rise).

    Example:
        >>> setup = build_training_setup(config, tokenizer.vocab_size)
        >>> setup.task.fit(train_dataset(...), steps_per_epoch=100)
    """
    cfg = resolve_precision(cfg)
    t = cfg.train
    if mesh is not None:
        return _build_on_mesh(cfg, vocab_size, mesh, init_weights, schedule)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(cfg.model, vocab_size)
        if init_weights is not None:
            init_weights(model)
        apply_configured_lora(model, t, record_fingerprint=True)
        lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
        schedule = Scaled(schedule or build_schedule(t, t.steps), lr_scale)
        optimizer = build_optimizer(t, schedule)
        exclude = getattr(optimizer, "exclude_from_muon", getattr(optimizer, "exclude_from_soap", None))
        if exclude and getattr(model, "lm_head", None):
            exclude(model.lm_head.trainable_variables)  # AdamW for an untied head
        if t.precision == "mixed_float16":
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        task = TrainingModel(model, t.grad_accum_steps, teacher=teacher,
                             distill_weight=t.distill_weight,
                             distill_temperature=t.distill_temperature,
                             loss_chunk_rows=t.loss_chunk_rows)
        task.compile(optimizer=optimizer, jit_compile=t.xla and xla_works(strategy),
                     weighted_metrics=[],
                     steps_per_execution=t.steps_per_execution)
        optimizer.build(model.trainable_variables)
    return TrainingSetup(model, task, optimizer, schedule, lr_scale)


def _build_on_mesh(cfg, vocab_size, mesh, init_weights=None, schedule=None):
    from tfllm.distribute.distribution import replicated_variable, shard_model
    from tfllm.distribute.placement import check_config_on_mesh

    t = cfg.train
    check_config_on_mesh(cfg)  # LoRA's adapters are not in the layout map, and more
    if t.precision != "float32" or t.grad_accum_steps > 1 or cfg.model.dropout:
        raise UserError("on a DTensor mesh tfllm trains in float32 without gradient accumulation "
                        "or dropout; set train.precision=float32, train.grad_accum_steps=1 and "
                        "model.dropout=0.")
    model = build_model(cfg.model, vocab_size)
    if init_weights is not None:
        init_weights(model)
    model = shard_model(model, mesh)
    lr_scale = replicated_variable(mesh, 1.0, "lr_scale")
    schedule = Scaled(schedule or build_schedule(t, t.steps), lr_scale)
    optimizer = build_optimizer(t, schedule, mesh=mesh)
    task = TrainingModel(model, mesh=mesh)
    # No XLA: DTensor runs its own SPMD expansion of the step.
    task.compile(optimizer=optimizer, weighted_metrics=[], steps_per_execution=t.steps_per_execution)
    return TrainingSetup(model, task, optimizer, schedule, lr_scale)
