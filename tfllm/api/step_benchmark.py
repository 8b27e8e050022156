"""Timing the training step exactly as `tfllm.train` runs it.

The step is `TrainingModel.fit` over `train_dataset`, built by `build_training_setup`
from the same config, so what is timed here is what a training run does per step
(model, optimizer, precision, XLA, input pipeline and Keras's per-step loop).
"""

import os
import resource
import time

import numpy as np
import tensorflow as tf

from tfllm._keras import keras
from tfllm.data.pipeline import train_dataset
from tfllm.bench import scaling
from tfllm.distribute import distribution
from tfllm.bench.mfu import POLICY_DTYPES, flops_per_token
from tfllm.config import resolve_precision
from tfllm.training.training_setup import apply_runtime_settings, build_training_setup


def _minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class StepTimer(keras.callbacks.Callback):
    """Records the wall time and the process's page faults at the end of every compiled
    call (Keras syncs on its logs).

    With `steps_per_execution` k, Keras runs k steps per call and calls
    `on_train_batch_end` once, with the index of the call's last step.
    """

    def on_train_begin(self, logs=None):
        self.ends = [(time.perf_counter(), 0, _minor_faults())]

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append((time.perf_counter(), batch + 1, _minor_faults()))

    def _calls(self, skip):
        times, steps, faults = np.array(self.ends, dtype=np.float64).T
        counts = np.diff(steps).astype(int)
        keep = steps[:-1] >= skip
        return np.diff(times)[keep], counts[keep], np.diff(faults)[keep]

    def step_times(self, skip):
        """Per-step durations of the calls that start at or after step `skip` (compilation
        and warm-up are in the calls before); a call of k steps counts k steps of its
        mean duration."""
        durations, counts, _ = self._calls(skip)
        return np.repeat(durations / counts, counts)

    def faults_per_step(self, skip):
        """Minor page faults per step over the same calls: memory the step touches afresh."""
        _, counts, faults = self._calls(skip)
        return float(faults.sum() / max(counts.sum(), 1))


def training_data(cfg):
    """The PreparedDataset a config trains on: its prepared data.source in place, or its
    corpus prepared into a temporary directory (removed with the dataset)."""
    import tempfile

    from tfllm.data.sources import configured_dataset

    scratch = tempfile.TemporaryDirectory(prefix="tfllm-data-")
    data = configured_dataset(cfg.data, os.path.join(scratch.name, "data"), print_fn=None,
                              progress=False)
    data.scratch = scratch
    return data


def _build(cfg, strategy, mesh, vocab_size):
    """(the prepared data, training setup, distributed dataset, where it runs) as the
    Trainer builds them."""
    t = cfg.train
    data = training_data(cfg)
    strategy = strategy or tf.distribute.get_strategy()
    replicas = mesh.dim_size("batch") if mesh is not None else strategy.num_replicas_in_sync
    distribution.check_batch(strategy, t.batch_size, t.grad_accum_steps, replicas=replicas)
    apply_runtime_settings(cfg)
    from tfllm.training.teacher import configured_teacher

    teacher = configured_teacher(cfg, data.tokenizer, strategy)  # distillation: the step runs it
    setup = build_training_setup(cfg, max(vocab_size or 0, data.tokenizer.vocab_size), strategy,
                                 mesh, teacher=teacher)
    dataset = distribution.distribute_dataset(
        lambda context: train_dataset(data.train, cfg.model.max_length, t.batch_size, cfg.seed,
                                      0, context), t.batch_size, strategy, mesh)
    placement = {"strategy": ("dtensor" if mesh is not None else "none" if strategy is
                              tf.distribute.get_strategy() and not tf.distribute.has_strategy()
                              else type(strategy).__name__),
                 "replicas": replicas,
                 "model_devices": mesh.dim_size("model") if mesh is not None else 1}
    return data, setup, dataset, placement


def _step_figures(cfg, setup, times):
    """The settings timed and the step's statistics (seconds `times` of each step)."""
    t = cfg.train
    median = float(np.median(times))
    tokens_per_step = t.batch_size * cfg.model.max_length
    return {
        "config": {"model": cfg.model.name, "precision": t.precision,
                   "xla": bool(setup.task.jit_compile), "batch_size": t.batch_size,
                   "seq_len": cfg.model.max_length, "optimizer": t.optimizer,
                   "grad_accum_steps": t.grad_accum_steps, "remat": cfg.model.remat},
        "params": int(setup.model.count_params()),
        "trainable_params": int(sum(np.prod(v.shape) for v in setup.model.trainable_variables)),
        "steps": len(times),
        "step_ms": {"median": 1e3 * median, "p10": 1e3 * float(np.percentile(times, 10)),
                    "p90": 1e3 * float(np.percentile(times, 90))},
        "tokens_per_s": tokens_per_step / median,
        # Tokens over the measured steps' whole time: the statistic `tfllm.train` logs per
        # interval, so compare it with those; it is below tokens_per_s when slow steps skew.
        "mean_tokens_per_s": tokens_per_step * len(times) / float(np.sum(times)),
        "flops_per_token": flops_per_token(setup.model),
    }


def _timed_fit(task, dataset, warmup, steps, per_call):
    """The StepTimer of `steps` steps after `warmup`, both rounded up to whole calls of
    `per_call` steps (train.steps_per_execution), and the warm-up in steps."""
    warmup, steps = (-(-n // per_call) * per_call for n in (warmup, steps))
    timer = StepTimer()
    task.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0)
    return timer, warmup


def _input_ms_per_batch(dataset, batches=50):
    """Milliseconds the pipeline takes to produce one batch when nothing else runs."""
    iterator = iter(dataset)
    for _ in range(5):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return 1e3 * (time.perf_counter() - start) / batches


def benchmark_training(cfg, steps=30, warmup=5, peaks=None, generate_tokens=0, strategy=None,
                       mesh=None, vocab_size=None):
    """Times `steps` training steps of `cfg` after `warmup` steps.

    Args:
        cfg: a validated config (train.precision=auto is resolved here).
        steps, warmup: measured and discarded steps.
        peaks: {dtype: peak dict of `measure_matmul_peak`}; MFU is reported against the
            peak of the dtype the precision policy computes in, when given.
        generate_tokens: also time generating this many tokens from the model (one
            sample, cached and naive loops: tfllm.bench.generation_throughput); 0 = skip.
        strategy, mesh: where the step runs, as `tfllm.train --strategy` (the same
            per-replica input and build as Trainer).
        vocab_size: the model's vocabulary if larger than the tokenizer's (a pretrained
            model's size, e.g. GPT-2's 50257, timed on the corpus's ids); None = the
            tokenizer's.

    Returns a dict: tokens_per_s (of the median step), mean_tokens_per_s (over all the
    measured steps' time, as `tfllm.train` logs), step_ms (median, p10, p90), flops_per_token, mfu,
    input_ms (time the input pipeline takes to make one batch), input_wait (input_ms as
    a share of the median step: an upper bound on the time a step waits for input, since
    the pipeline prefetches on its own thread while the step runs), page_faults_per_step
    (minor faults of the measured steps: memory a step touches afresh), peak_rss_mb
    (the process's peak resident memory) and setup_rss_mb (its peak before the first
    step: weights, optimizer slots, data), params,
    exchanged_bytes (what each device sends per step: tfllm.bench.scaling) and the
    settings timed.
    """
    cfg = resolve_precision(cfg)  # train.precision=auto: what tfllm.train would choose
    t = cfg.train
    # `data` is kept for the whole run: a raw corpus is prepared into a scratch directory
    # that goes when the dataset does, and the input pipeline reads its shards.
    data, setup, dataset, placement = _build(cfg, strategy, mesh, vocab_size)
    # What the process held before its first step (weights, optimizer slots, data): the
    # steps' own memory (activations, gradients, compiled temporaries) is the rest of its peak.
    setup_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timer, warmup = _timed_fit(setup.task, dataset, warmup, steps, t.steps_per_execution)
    times = timer.step_times(warmup)
    result = {**placement, **_step_figures(cfg, setup, times), "input_ms": _input_ms_per_batch(dataset),
              "page_faults_per_step": timer.faults_per_step(warmup)}
    result["input_wait"] = result["input_ms"] / result["step_ms"]["median"]
    result["exchanged_bytes"] = scaling.exchanged_bytes(
        result["params"], t.batch_size, cfg.model.max_length, cfg.model.hidden_dim,
        cfg.model.num_layers, placement["replicas"], placement["model_devices"],
        t.precision)["total"]
    peak = (peaks or {}).get(POLICY_DTYPES[t.precision])
    if peak:
        result["mfu"] = result["flops_per_token"] * result["tokens_per_s"] / peak["flops_per_s"]
        result["peak_dtype"] = peak["dtype"]
    if generate_tokens:
        from tfllm.bench.generation_throughput import generation_throughput

        result["generation"] = generation_throughput(setup.model, generate_tokens)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["setup_rss_mb"] = setup_rss_mb
    return result
