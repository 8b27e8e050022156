"""The analysis of a learning-rate range test (tfllm.lr_find): TensorFlow-free, no flags."""

import math

# The run stops once the smoothed loss is this many times its lowest.
DIVERGED = 4.0


def smooth(losses, half_window):
    """Centered moving average (shorter windows at the ends): no lag, so the minimum is
    not moved towards larger learning rates as a trailing average would move it."""
    out = []
    for i in range(len(losses)):
        window = losses[max(0, i - half_window):i + half_window + 1]
        out.append(sum(window) / len(window))
    return out


def analyse(lrs, losses, divisor):
    """The suggestion from (learning rate, loss) per step: dict of the curve, the lowest
    smoothed loss and its learning rate, and the suggested peak."""
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss)]
    if not finite:
        from tfllm.errors import UserError

        raise UserError(f"the loss was not finite from the first step (learning rate {lrs[0]:.3g}); "
                        "lower --min_lr.")
    lrs, losses = [lrs[i] for i in finite], [losses[i] for i in finite]
    smoothed = smooth(losses, max(1, len(losses) // 25))
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    return {"lr": lrs, "loss": losses, "smoothed": smoothed, "min_loss": smoothed[best],
            "min_loss_lr": lrs[best], "suggested_lr": lrs[best] / divisor,
            # Rose after its lowest point by a tenth of the fall before it, or still falling
            # in the last tenth of the rise (then the range was too narrow).
            "rose_after": max(smoothed[best:]) - smoothed[best] > 0.1 * (smoothed[0] - smoothed[best]),
            "still_falling": best >= 0.9 * (len(smoothed) - 1)}
