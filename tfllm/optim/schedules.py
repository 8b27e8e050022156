"""Learning-rate schedules by name, as ordinary Keras LearningRateSchedules.

Each maps the optimizer step to a learning rate; use them in user code as
`keras.optimizers.AdamW(learning_rate=WarmupCosine(1e-3, 100, 5000))`.
"""

import math

import tensorflow as tf

from tfllm._keras import keras, register
from tfllm.optim import SCHEDULES


def _warmup_factor(step, warmup_steps):
    """Linear warm-up from 1/warmup_steps to 1 over the first `warmup_steps` steps."""
    if warmup_steps <= 0:
        return 1.0
    return tf.minimum(1.0, (step + 1.0) / float(warmup_steps))


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Stores its constructor arguments and returns them from get_config."""

    def __init__(self, **config):
        self._config = config
        for k, v in config.items():
            setattr(self, k, v)

    def get_config(self):
        return dict(self._config)


@register("tfllm")
class Constant(_Schedule):
    """lr(step) = peak * warm-up factor."""

    def __init__(self, peak_lr, warmup_steps=0):
        super().__init__(peak_lr=peak_lr, warmup_steps=warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        return self.peak_lr * _warmup_factor(step, self.warmup_steps)


@register("tfllm")
class WarmupCosine(_Schedule):
    """Linear warm-up, then cosine decay from peak to peak * min_ratio at `total_steps`.

    lr(s) = min + (peak - min) * (1 + cos(pi * p)) / 2, p = (s - warmup) / (total - warmup).
    """

    def __init__(self, peak_lr, warmup_steps, total_steps, min_ratio=0.1):
        super().__init__(peak_lr=peak_lr, warmup_steps=warmup_steps, total_steps=total_steps,
                         min_ratio=min_ratio)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        low = self.peak_lr * self.min_ratio
        cosine = low + (self.peak_lr - low) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps,
                        self.peak_lr * _warmup_factor(step, self.warmup_steps), cosine)


@register("tfllm")
class StepDecay(_Schedule):
    """Warm-up, then lr = peak * gamma ** floor(step / step_size)."""

    def __init__(self, peak_lr, step_size, gamma=0.1, warmup_steps=0):
        super().__init__(peak_lr=peak_lr, step_size=step_size, gamma=gamma,
                         warmup_steps=warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decay = tf.pow(float(self.gamma), tf.floor(step / self.step_size))
        return self.peak_lr * decay * _warmup_factor(step, self.warmup_steps)


@register("tfllm")
class Exponential(_Schedule):
    """Warm-up, then lr = peak * decay_rate ** (step / decay_steps)."""

    def __init__(self, peak_lr, decay_steps, decay_rate=0.5, warmup_steps=0):
        super().__init__(peak_lr=peak_lr, decay_steps=decay_steps, decay_rate=decay_rate,
                         warmup_steps=warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decay = tf.pow(float(self.decay_rate), step / self.decay_steps)
        return self.peak_lr * decay * _warmup_factor(step, self.warmup_steps)


@register("tfllm")
class WarmupStableDecay(_Schedule):
    """Warm-up, a constant peak, then a linear decay to peak * min_ratio over the last
    `decay_fraction` of `total_steps` (the WSD schedule of MiniCPM, Hu et al. 2024).

    lr(s) = peak for warmup <= s < D, D = total - round(decay_fraction * total);
    lr(s) = peak * (1 - (1 - min_ratio) * (s - D) / (total - D)) for s >= D.
    """

    def __init__(self, peak_lr, warmup_steps, total_steps, decay_fraction=0.2, min_ratio=0.0):
        super().__init__(peak_lr=peak_lr, warmup_steps=warmup_steps, total_steps=total_steps,
                         decay_fraction=decay_fraction, min_ratio=min_ratio)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decay_start = self.total_steps - round(self.decay_fraction * self.total_steps)
        progress = tf.clip_by_value(
            (step - decay_start) / max(1, self.total_steps - decay_start), 0.0, 1.0)
        return (self.peak_lr * _warmup_factor(step, self.warmup_steps)
                * (1.0 - (1.0 - self.min_ratio) * progress))


@register("tfllm")
class OneCycle(_Schedule):
    """One cycle (Smith & Topin 2017): a cosine rise from peak / div_factor to peak over the
    first `pct_start` of `total_steps`, then a cosine fall to peak * min_ratio.

    With u = round(pct_start * total): lr(s) = peak + (peak / div - peak) (1 + cos(pi s / u)) / 2
    for s < u, and lr(s) = low + (peak - low) (1 + cos(pi p)) / 2, p = (s - u) / (total - u),
    low = peak * min_ratio, after.
    """

    def __init__(self, peak_lr, total_steps, pct_start=0.3, div_factor=25.0, min_ratio=1e-3):
        super().__init__(peak_lr=peak_lr, total_steps=total_steps, pct_start=pct_start,
                         div_factor=div_factor, min_ratio=min_ratio)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        up = max(1, round(self.pct_start * self.total_steps))
        start, low = self.peak_lr / self.div_factor, self.peak_lr * self.min_ratio
        rise = self.peak_lr + (start - self.peak_lr) * 0.5 * (1.0 + tf.cos(math.pi * step / up))
        progress = tf.clip_by_value((step - up) / max(1, self.total_steps - up), 0.0, 1.0)
        fall = low + (self.peak_lr - low) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < up, rise, fall)


@register("tfllm")
class Geometric(_Schedule):
    """lr(step) = start * (end / start)^(step / (steps - 1)): a learning-rate range test's
    rise (tfllm.lr_find), by the same factor every step."""

    def __init__(self, start_lr, end_lr, steps):
        super().__init__(start_lr=start_lr, end_lr=end_lr, steps=steps)

    def __call__(self, step):
        fraction = tf.cast(step, tf.float32) / max(self.steps - 1, 1)
        return self.start_lr * tf.pow(self.end_lr / self.start_lr, fraction)


def build_schedule(cfg, total_steps):
    """The schedule `cfg.schedule` names, from a train config section."""
    peak, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.schedule == "constant":
        return Constant(peak, warmup)
    if cfg.schedule == "warmup_cosine":
        return WarmupCosine(peak, warmup, total_steps, cfg.min_lr_ratio)
    if cfg.schedule == "wsd":
        return WarmupStableDecay(peak, warmup, total_steps, cfg.decay_fraction, cfg.min_lr_ratio)
    if cfg.schedule == "one_cycle":
        return OneCycle(peak, total_steps, cfg.pct_start, cfg.div_factor, cfg.min_lr_ratio)
    if cfg.schedule == "step":
        return StepDecay(peak, cfg.decay_steps, cfg.decay_rate, warmup)
    if cfg.schedule == "exponential":
        return Exponential(peak, cfg.decay_steps, cfg.decay_rate, warmup)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; use one of {SCHEDULES}.")


class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule(step) * scale`, where `scale` is a variable a callback may lower
    (reduce-on-plateau). The variable is checkpointed with the run."""

    def __init__(self, schedule, scale):
        self.schedule, self.scale = schedule, scale

    def __call__(self, step):
        return self.schedule(step) * self.scale

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule)}
