"""`python -m tfllm.benchmark` as a user runs it."""

import json

import pytest

from tests.cli_helpers import assert_one_line_error, run

pytestmark = pytest.mark.slow  # trains in subprocesses


def test_benchmark_json_report():
    proc = run("tfllm.benchmark", "--config=tiny_test", "--steps=3", "--warmup=1",
               "--peak_sizes=256", "--generate_tokens=40", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["peaks"]) == {"float32", "bfloat16"}
    assert result["peaks"]["float32"]["size"] == 256
    for key in ("tokens_per_s", "step_ms", "flops_per_token", "mfu", "input_wait",
                "peak_rss_mb", "page_faults_per_step", "machine", "date"):
        assert key in result, key
    assert 0 < result["mfu"] < 1.5
    # Tokens over the measured steps' total time (what tfllm.train logs): the same units as
    # the median step's throughput, apart from the steps' spread.
    assert 0.1 < result["mean_tokens_per_s"] / result["tokens_per_s"] < 10
    g = result["generation"]
    assert g["new_tokens"] == 15  # tiny_test's 16 learned positions, after a 1-token prompt
    assert g["cached_tokens_per_s"] > 0 and g["naive_tokens_per_s"] > 0
    assert abs(g["speedup"] - g["cached_tokens_per_s"] / g["naive_tokens_per_s"]) < 1e-9


def test_benchmark_bad_peak_sizes_is_one_line():
    proc = run("tfllm.benchmark", "--config=tiny_test", "--peak_sizes=big")
    assert_one_line_error(proc, "--peak_sizes=big must be whole numbers")


def test_benchmark_unknown_config_key_is_one_line():
    proc = run("tfllm.benchmark", "--config.train.stpes=3")  # on its default config
    assert_one_line_error(proc, "--config.train.stpes: the config has no key 'stpes'",
                          'did you mean "steps"')


def test_benchmark_strategy_overhead_against_one_device():
    proc = run("tfllm.benchmark", "--config=tiny_test", "--steps=3", "--warmup=1",
               "--overhead=mirrored", "--overhead_devices=2", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    one, one_device, mirrored = result["overhead"]
    assert one["run"] == "one device (no strategy)"
    assert (one["replicas"], one["exchanged_bytes"]) == (1, 0)
    assert (one_device["strategy"], one_device["replicas"]) == ("OneDeviceStrategy", 1)
    assert (mirrored["run"], mirrored["replicas"]) == ("mirrored x2", 2)
    assert mirrored["strategy"] == "MirroredStrategy"
    # A ring all-reduce of the float32 gradients over 2 replicas: each sends 4 bytes/parameter.
    assert mirrored["exchanged_bytes"] == 4 * result["params"]
    assert mirrored["overhead_ms"] == mirrored["step_ms"]["median"] - one["step_ms"]["median"]
    targets = {row["target"] for row in result["projection"]}
    assert len(targets) == 2 and all(0 < row["efficiency_no_overlap"] <= row["efficiency_overlap"]
                                     <= 1 for row in result["projection"])


def test_benchmark_unknown_overhead_strategy_is_one_line():
    proc = run("tfllm.benchmark", "--config=tiny_test", "--overhead=mirrored,ring")
    assert_one_line_error(proc, "ring unknown; use some of mirrored,multi_worker,dtensor")


def test_benchmark_variants_side_by_side():
    """Each variant in its own process: remat keeps the same model and reports its memory;
    --optimizers adds a variant per optimizer."""
    proc = run("tfllm.benchmark", "--config=tiny_test", "--steps=3", "--warmup=1", "--rounds=1",
               "--variant=model.remat=none", "--variant=model.remat=block model.dropout=0.1",
               "--optimizers=sophia", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    plain, remat, sophia = result["variants"].values()
    assert list(result["variants"]) == ["model.remat=none", "model.remat=block model.dropout=0.1",
                                        "train.optimizer=sophia"]
    assert plain["params"] == remat["params"] == sophia["params"]
    assert (plain["speed_ratio"], plain["memory_ratio"]) == (1.0, 1.0)
    for row in (plain, remat, sophia):
        assert row["tokens_per_s"] > 0 and 0 < row["step_rss_mb"] < row["peak_rss_mb"]
        assert row["mean_step_ms"] > 0
        assert len(row["peak_rss_mb_runs"]) == 1
    assert remat["memory_ratio"] == remat["peak_rss_mb"] / plain["peak_rss_mb"]


def test_benchmark_bad_variant_is_one_line():
    proc = run("tfllm.benchmark", "--config=tiny_test", "--variant=model.remat")
    assert_one_line_error(proc, "'model.remat' is not a config override")
