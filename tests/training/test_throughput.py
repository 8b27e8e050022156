import pytest

from tfllm.configs import tiny_test
from tfllm.training.mfu import flops_per_token
from tfllm.training.throughput import benchmark_training


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
