"""The learning-rate range test: its analysis on known curves, and the command end to end."""

import json
import math
import os

from tests.cli_helpers import run
from tfllm.optim.lr_range import analyse, smooth


def geometric(start, end, steps):
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def test_lowest_point_and_suggestion_of_a_known_curve():
    """A noisy bowl in log(lr) with its bottom at 10^-2.5: found there (within the noise),
    suggested at a third of it; the rise after it is seen."""
    lrs = geometric(1e-5, 1.0, 101)
    noise = [0.02 * math.sin(7.0 * i) for i in range(101)]
    losses = [(math.log10(lr) + 2.5) ** 2 + 1.0 + n for lr, n in zip(lrs, noise)]
    result = analyse(lrs, losses, divisor=3.0)
    assert abs(math.log10(result["min_loss_lr"]) + 2.5) <= 0.15
    assert result["suggested_lr"] == result["min_loss_lr"] / 3.0
    assert result["rose_after"] and not result["still_falling"]


def test_a_loss_still_falling_at_the_end_says_so_and_nan_steps_are_dropped():
    lrs = geometric(1e-4, 1e-1, 50)
    losses = [5.0 - 0.05 * i for i in range(49)] + [float("nan")]
    result = analyse(lrs, losses, divisor=3.0)
    assert result["still_falling"] and len(result["lr"]) == 49


def test_smoothing_is_centered():
    assert smooth([0, 0, 3, 0, 0], 1) == [0, 1, 1, 1, 0]


def test_lr_find_writes_the_plot_and_suggests(tmp_path):
    plot = str(tmp_path / "plots" / "curve.png")  # a directory not made yet
    proc = run("tfllm.lr_find", "--config=tiny_test", "--config.train.optimizer=sophia",
               "--steps=12", "--min_lr=1e-4", "--max_lr=1.0", f"--plot={plot}", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["optimizer"] == "sophia" and len(result["loss"]) == 12
    assert result["lr"][0] == 1e-4 and abs(result["lr"][-1] - 1.0) < 1e-9
    assert result["suggested_lr"] == result["min_loss_lr"] / 3.0
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [name for name in os.listdir(tmp_path / "plots") if name.endswith(".tmp.png")]
