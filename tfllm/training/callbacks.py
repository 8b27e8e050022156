"""Callbacks of the training loop: evaluation, logging, checkpoints, plateau.

They act on optimizer steps (not epochs), so a run resumed from any checkpoint
evaluates, logs and saves at the same steps as an uninterrupted one. Each reads the
step from the batch index Keras passes, which avoids a device sync per step.
Callbacks earlier in the list add entries to `logs` (e.g. `val_loss`) that later ones read.
"""

import contextlib
import json
import math
import os
import time

import tensorflow as tf

from tfllm._keras import keras
from tfllm.config import MARGIN_OFF
from tfllm.errors import UserError


@contextlib.contextmanager
def averaged_weights(model):
    """Within the block, `model`'s trainable variables hold their moving average when its
    optimizer keeps one (train.ema_decay); afterwards the training values again."""
    # Under float16 the average is the LossScaleOptimizer's inner optimizer's.
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    if not getattr(optimizer, "use_ema", False) or not getattr(optimizer, "_built", False):
        yield
        return
    variables = model.trainable_variables
    training_values = [tf.identity(v) for v in variables]
    # tf_keras's own overwrite, the one `fit` applies at its end (it handles replicas).
    optimizer._overwrite_model_variables_with_average_value(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, training_values):
            variable.assign(value)


class PauseClock:
    """Seconds the callbacks spend saving (checkpoints, metrics) after MetricsLogger has
    taken its reading, which it then leaves out of the next interval's tokens_per_s."""

    def __init__(self):
        self.seconds = 0.0

    @contextlib.contextmanager
    def pause(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start

    def take(self):
        """The seconds paused since the last call."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


class StepCallback(keras.callbacks.Callback):
    """Knows the global step: the optimizer step at the start of fit plus batches done."""

    def __init__(self, every, total_steps):
        super().__init__()
        self.every = every
        self.total_steps = total_steps
        self.start_step = 0

    def on_train_begin(self, logs=None):
        self.start_step = int(self.model.optimizer.iterations.numpy())

    def step_of(self, batch):
        return self.start_step + batch + 1

    def due(self, step):
        return step % self.every == 0 or step == self.total_steps


class Evaluator(StepCallback):
    """Evaluates on a whole split every `every` steps; adds `val_loss`, `val_perplexity`
    and `val_bits_per_token` to the logs (and `eval_seconds`, the time it took). With a
    `target` val_loss, stops training at the first evaluation at or below it.

    With a target and a `margin` other than MARGIN_OFF (-1), an evaluation
    that falls due while the mean training loss since the last log (the model's
    `train_loss` tracker) is above target + margin is skipped: where the validation loss
    trails the training loss by more than -margin, it cannot be at the target yet. Skipping
    only ever delays the reported time to the target. The last step is always evaluated.
    `skipped` counts them.

    With `tasks` (tfllm.harness.tasks.TaskScores), each evaluation also scores lm-eval
    tasks and adds their `task/<task>/<metric>` values to the logs.
    """

    def __init__(self, dataset, every, total_steps, target=0.0, steps=None, margin=MARGIN_OFF,
                 tasks=None):
        super().__init__(every, total_steps)
        self.dataset = dataset
        self.tasks = tasks
        self.steps = steps  # batches per evaluation (a distributed dataset needs it)
        self.target = target
        self.margin = margin
        self.history = []  # (step, val_loss)
        self.skipped = 0

    def far_from_target(self, step):
        if not self.target or self.margin == MARGIN_OFF or step == self.total_steps:
            return False
        return float(self.model.train_loss.result()) > self.target + self.margin

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_of(batch)
        if not self.due(step):
            return
        if self.far_from_target(step):
            self.skipped += 1
            return
        start = time.perf_counter()
        with averaged_weights(self.model):
            self.model.evaluate(self.dataset, steps=self.steps, verbose=0)
            logs.update(self.tasks(self.model.lm) if self.tasks else {})
        # The tracker itself, read after evaluate returns (under DTensor the value a step
        # returns can miss that step's own update).
        val_loss = float(self.model.eval_loss.result())
        logs.update(val_loss=val_loss, val_perplexity=math.exp(min(val_loss, 50.0)),
                    val_bits_per_token=val_loss / math.log(2),
                    eval_seconds=time.perf_counter() - start)
        self.history.append((step, val_loss))
        if self.target and val_loss <= self.target:
            self.model.stop_training = True  # Keras stops after this step's callbacks


class ReduceLROnPlateau(StepCallback):
    """Multiplies a learning-rate scale variable by `factor` after `patience` evaluations
    without a new best val_loss (the evaluation-step analogue of Keras's callback)."""

    def __init__(self, scale, factor, patience, total_steps):
        super().__init__(1, total_steps)
        self.scale, self.factor, self.patience = scale, factor, patience
        self.best, self.wait = math.inf, 0

    def on_train_batch_end(self, batch, logs=None):
        if "val_loss" not in logs:
            return
        if logs["val_loss"] < self.best:
            self.best, self.wait = logs["val_loss"], 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.scale.assign(self.scale * self.factor)
            self.wait = 0


class Diverged(UserError):
    """Training stopped because the loss or the weights are no longer finite (or the loss
    is above train.max_loss); the message names the step and the fix."""


class DivergenceGuard(StepCallback):
    """Stops training, before anything of that step is logged or saved, once the loss is
    not finite or above `max_loss` (0: no bound), or the weights are not finite.

    It checks at every step where a later callback would log, evaluate or save (so no
    non-finite value reaches metrics.jsonl, a checkpoint or best/): the mean training loss
    since the last log, the validation loss of an evaluation, and, before a checkpoint,
    every weight. Put it after the Evaluator and before MetricsLogger and CheckpointSaver.
    `manager` names the last checkpoint, which a rerun resumes from; `lr` is the peak
    learning rate the message suggests lowering.
    """

    def __init__(self, log_every, checkpoint_every, total_steps, manager, lr, max_loss=0.0):
        super().__init__(log_every, total_steps)
        self.checkpoint_every = checkpoint_every
        self.manager, self.lr, self.max_loss = manager, lr, max_loss

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_of(batch)
        saving = step % self.checkpoint_every == 0 or step == self.total_steps
        if not (self.due(step) or saving or "val_loss" in logs or self.model.stop_training):
            return
        loss = float(self.model.train_loss.result())
        if not math.isfinite(loss) or (self.max_loss and loss > self.max_loss):
            self._stop(step, f"the training loss is {loss:.4g}" + (
                f", above train.max_loss={self.max_loss:g}" if math.isfinite(loss) else ""))
        if "val_loss" in logs and not math.isfinite(logs["val_loss"]):
            self._stop(step, f"the validation loss is {logs['val_loss']}")
        if (saving or "val_loss" in logs) and not self._weights_finite():
            self._stop(step, "some weights are not finite")

    def _weights_finite(self):
        # One reduction over every weight: one read back from the device, not one per weight.
        return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                                   for v in self.model.trainable_variables]))

    def _stop(self, step, what):
        latest = self.manager.latest_checkpoint
        kept = (f"the last checkpoint, step {latest.rsplit('-', 1)[1]}, is kept and a rerun "
                "resumes from it" if latest else "no checkpoint was written")
        raise Diverged(f"training diverged at step {step}: {what}; {kept}. Lower "
                       f"--config.train.learning_rate (now {self.lr:g}), or clip gradients "
                       "harder (--config.train.grad_clip), and rerun the same command.")


def _json_number(value):
    """`value`, or None where it is not finite: strict JSON has no NaN or Infinity."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


class MetricsLogger(StepCallback):
    """Every `every` steps (and at evaluations): one JSON record in `metrics.jsonl`,
    TensorBoard scalars and a progress line.

    Records: step, elapsed_s (since `process_start`, plus `elapsed_before`: the elapsed_s
    a resumed run had reached at its checkpoint), tokens (trained on so far,
    `tokens_seen(step)`), loss (mean over the steps since the last record), lr,
    tokens_per_s (over training time: evaluations, saving checkpoints and these records
    (`clock`), and fit's first call, which compiles the step, are left out), mfu (when
    `flops_per_token` and `peak_flops` are given: tokens_per_s * flops_per_token /
    peak_flops, see tfllm/bench/mfu.py), and val_loss, val_perplexity,
    val_bits_per_token (and eval.tasks' task/<task>/<metric>) at evaluation steps.
    """

    def __init__(self, run_dir, every, total_steps, tokens_seen, lr_fn, process_start,
                 print_fn=print, write=True, flops_per_token=None, peak_flops=None,
                 clock=None, elapsed_before=0.0):
        super().__init__(every, total_steps)
        self.elapsed_before = elapsed_before  # elapsed_s of the run this one resumes
        self.clock = clock or PauseClock()
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.tokens_seen = tokens_seen  # step -> tokens in steps 0 .. step - 1
        self.lr_fn = lr_fn
        self.process_start = process_start
        self.print_fn = print_fn
        self.write = write
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard")) if write else None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._start_interval(self.start_step, time.perf_counter())
        self.first_call = True

    def _start_interval(self, step, now):
        """The next record's tokens/s counts the training from `step`, at `now`, on."""
        self.last_step, self.last_time = step, now
        self.clock.take()  # saves so far belong to no interval

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_of(batch)
        due = self.due(step) or "val_loss" in logs
        if self.first_call:  # time left: from this process's pace after the first step
            self.pace_start = (step, time.perf_counter())
        if self.first_call and not due:
            # fit's first call traces and compiles the step (seconds, which elapsed_s
            # shows): the first interval's tokens/s starts after it.
            self._start_interval(step, time.perf_counter())
        self.first_call = False
        if not due:
            return
        now = time.perf_counter()
        # An evaluation runs only at a step that is logged, so its time is this step's.
        paused = logs.get("eval_seconds", 0.0) + self.clock.take()
        train_seconds = max(now - self.last_time - paused, 1e-9)
        tokens = self.tokens_seen(step)
        record = {
            "step": step,
            "elapsed_s": round(self.elapsed_before + time.time() - self.process_start, 3),
            "tokens": tokens,
            "loss": float(self.model.train_loss.result()),  # mean since the last record
            "lr": float(self.lr_fn(step)),
            "tokens_per_s": round((tokens - self.tokens_seen(self.last_step)) / train_seconds, 1),
        }
        if self.flops_per_token and self.peak_flops:
            record["mfu"] = round(record["tokens_per_s"] * self.flops_per_token / self.peak_flops, 6)
        for key in ("val_loss", "val_perplexity", "val_bits_per_token"):
            if key in logs:
                record[key] = float(logs[key])
        record.update({k: float(v) for k, v in logs.items() if k.startswith("task/")})
        if "eval_seconds" in logs:
            record["eval_s"] = round(float(logs["eval_seconds"]), 3)  # what evaluating cost
        self.model.train_loss.reset_state()
        self._start_interval(step, now)
        if self.write:
            with self.clock.pause():
                with open(self.path, "a") as f:
                    f.write(json.dumps({k: _json_number(v) for k, v in record.items()},
                                       allow_nan=False) + "\n")
                with self.writer.as_default(step=step):
                    for key, value in record.items():
                        if key not in ("step", "elapsed_s"):
                            tf.summary.scalar(key, value)
                self.writer.flush()
        line = (f"step {step:>6}/{self.total_steps} ({100 * step / self.total_steps:5.1f}%) | "
                f"loss {record['loss']:.4f} | lr {record['lr']:.2e} | "
                f"{record['tokens_per_s']:,.0f} tok/s | "
                + (f"MFU {100 * record['mfu']:.1f}% | " if "mfu" in record else "")
                + f"{record['elapsed_s']:.0f}s")
        if "val_loss" in record:
            line += f" | val_loss {record['val_loss']:.4f} (ppl {record['val_perplexity']:.2f})"
        line += "".join(f" | {key[5:].replace('/', ' ')} {value:.4g}"
                        for key, value in record.items() if key.startswith("task/"))
        first_step, first_time = getattr(self, "pace_start", (step, now))
        if first_step < step < self.total_steps:
            left = (now - first_time) / (step - first_step) * (self.total_steps - step)
            line += f" | {duration(left)} left"
        self.print_fn(line)


def duration(seconds):
    """'1h05m', '4m10s' or '35s'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class CheckpointSaver(StepCallback):
    """Saves the training state every `every` steps, at the end and when training stops
    early (`manager`), and separately whenever val_loss improves (`best_manager`, with
    `best_val_loss`).

    With weight averaging, the model's weights in the best and the last checkpoint are
    the averaged ones (those evaluated, and those `fit` leaves in the model at its end);
    every other checkpoint holds the training values. Each checkpoint also holds the
    training values in `training_weights` (copied here before each save; the trainer
    restores the model from them), so a run resumes exactly from any checkpoint, the
    last included when a finished run is trained further."""

    def __init__(self, manager, best_manager, best_val_loss, every, total_steps,
                 training_weights=(), clock=None):
        super().__init__(every, total_steps)
        self.manager, self.best_manager, self.best_val_loss = manager, best_manager, best_val_loss
        self.training_weights = training_weights
        self.clock = clock or PauseClock()  # shared with MetricsLogger: saving is not training

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_of(batch)
        best = "val_loss" in logs and logs["val_loss"] < float(self.best_val_loss.numpy())
        last = step == self.total_steps or self.model.stop_training
        if not (best or last or self.due(step)):
            return
        with self.clock.pause():
            self._save(step, best, last, logs)

    def _save(self, step, best, last, logs):
        for copy, variable in zip(self.training_weights, self.model.trainable_variables):
            copy.assign(variable)
        if best:
            self.best_val_loss.assign(logs["val_loss"])
            with averaged_weights(self.model):
                self.best_manager.save(checkpoint_number=step)
        if last:
            with averaged_weights(self.model):
                self.manager.save(checkpoint_number=step)
        elif self.due(step):
            self.manager.save(checkpoint_number=step)
