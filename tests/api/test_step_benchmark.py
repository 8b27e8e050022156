import pytest

from tfllm.configs import tiny_test
from tfllm.api.step_benchmark import StepTimer, benchmark_training


def test_benchmark_reports_consistent_figures():
    cfg = tiny_test.get_config()
    cfg.train.xla = False
    peak = {"flops_per_s": 1e11, "size": 256, "xla": False, "dtype": "float32"}
    result = benchmark_training(cfg, steps=4, warmup=1, peaks={"float32": peak})
    tokens_per_step = cfg.train.batch_size * cfg.model.max_length
    step = result["step_ms"]
    assert 0 < step["p10"] <= step["median"] <= step["p90"]
    assert result["tokens_per_s"] == pytest.approx(tokens_per_step / (step["median"] / 1e3))
    assert result["mfu"] == pytest.approx(result["flops_per_token"] * result["tokens_per_s"] / 1e11)
    assert result["input_wait"] == pytest.approx(result["input_ms"] / step["median"])
    assert result["peak_rss_mb"] > 0 and result["params"] > 0
    assert result["page_faults_per_step"] >= 0


def test_benchmark_times_steps_not_calls_with_steps_per_execution():
    cfg = tiny_test.get_config()
    cfg.train.xla = False
    cfg.train.steps_per_execution = 2
    result = benchmark_training(cfg, steps=3, warmup=1)
    # warm-up and measured steps round up to whole calls of 2 steps: 4 timed steps
    assert result["steps"] == 4
    tokens_per_step = cfg.train.batch_size * cfg.model.max_length
    assert result["tokens_per_s"] == pytest.approx(
        tokens_per_step / (result["step_ms"]["median"] / 1e3))


def test_step_timer_splits_a_call_into_its_steps():
    timer = StepTimer()
    # three calls of two steps: (end time, steps done, page faults so far)
    timer.ends = [(0.0, 0, 100), (5.0, 2, 900), (7.0, 4, 910), (8.0, 6, 930)]
    assert list(timer.step_times(2)) == [1.0, 1.0, 0.5, 0.5]
    assert list(timer.step_times(0)) == [2.5, 2.5, 1.0, 1.0, 0.5, 0.5]
    assert timer.faults_per_step(2) == 30 / 4
