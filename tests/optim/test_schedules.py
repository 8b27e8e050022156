import math

import numpy as np
import pytest
from ml_collections import ConfigDict

from tfllm._keras import keras
from tfllm.optim import (Constant, Exponential, OneCycle, StepDecay, WarmupCosine,
                            WarmupStableDecay, build_schedule)


def test_warmup_cosine_matches_formula():
    s = WarmupCosine(peak_lr=1.0, warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert float(s(0)) == pytest.approx(0.1)        # (0 + 1) / 10
    assert float(s(9)) == pytest.approx(1.0)
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(60)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert float(s(110)) == pytest.approx(0.1)
    assert float(s(500)) == pytest.approx(0.1)


def test_step_exponential_constant_match_formulas():
    assert float(StepDecay(1.0, step_size=100, gamma=0.5)(250)) == pytest.approx(0.25)
    assert float(Exponential(2.0, decay_steps=100, decay_rate=0.5)(50)) == pytest.approx(2 * 0.5 ** 0.5)
    assert float(Constant(0.3, warmup_steps=4)(1)) == pytest.approx(0.15)
    assert float(Constant(0.3)(1000)) == pytest.approx(0.3)


def test_schedules_serialize_like_keras_schedules():
    s = WarmupCosine(1e-3, 5, 50)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    np.testing.assert_allclose([float(again(i)) for i in range(0, 60, 7)],
                               [float(s(i)) for i in range(0, 60, 7)])


def test_build_schedule_by_name():
    cfg = ConfigDict(dict(learning_rate=1.0, warmup_steps=0, min_lr_ratio=0.1, decay_steps=10,
                          decay_rate=0.5, schedule="step"))
    assert float(build_schedule(cfg, 100)(25)) == pytest.approx(0.25)
    cfg.schedule = "linear"
    with pytest.raises(ValueError, match="warmup_cosine"):
        build_schedule(cfg, 100)


def test_warmup_stable_decay_matches_formula():
    s = WarmupStableDecay(peak_lr=2.0, warmup_steps=10, total_steps=100, decay_fraction=0.2,
                          min_ratio=0.1)
    assert float(s(4)) == pytest.approx(2.0 * 5 / 10)
    assert float(s(10)) == pytest.approx(2.0)
    assert float(s(79)) == pytest.approx(2.0)        # stable until the last 20 steps
    assert float(s(80)) == pytest.approx(2.0)
    assert float(s(90)) == pytest.approx(2.0 * (1 - 0.9 * 0.5))
    assert float(s(100)) == pytest.approx(0.2)
    assert float(s(150)) == pytest.approx(0.2)


def test_one_cycle_matches_formula():
    s = OneCycle(peak_lr=1.0, total_steps=100, pct_start=0.3, div_factor=25.0, min_ratio=0.01)
    assert float(s(0)) == pytest.approx(1.0 / 25)
    assert float(s(15)) == pytest.approx(1.0 + (0.04 - 1.0) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert float(s(30)) == pytest.approx(1.0)
    assert float(s(65)) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert float(s(100)) == pytest.approx(0.01)


@pytest.mark.parametrize("schedule", [WarmupStableDecay(1e-3, 5, 50, 0.3),
                                      OneCycle(1e-3, 50, 0.2, 10.0)])
def test_new_schedules_serialize(schedule):
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    np.testing.assert_allclose([float(again(i)) for i in range(0, 60, 7)],
                               [float(schedule(i)) for i in range(0, 60, 7)])


def test_build_wsd_and_one_cycle_by_name():
    cfg = ConfigDict(dict(learning_rate=1.0, warmup_steps=0, min_lr_ratio=0.0, decay_fraction=0.5,
                          pct_start=0.5, div_factor=10.0, schedule="wsd"))
    assert float(build_schedule(cfg, 100)(75)) == pytest.approx(0.5)
    cfg.schedule = "one_cycle"
    assert float(build_schedule(cfg, 100)(0)) == pytest.approx(0.1)
