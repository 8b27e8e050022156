"""The bytes each strategy exchanges per step (tfllm.bench.scaling)."""

import pytest

from tfllm.bench import scaling


def test_data_parallel_sends_a_ring_all_reduce_of_the_gradients():
    params = 1000
    assert scaling.exchanged_bytes(params, 8, 16, 32, 2, replicas=1)["total"] == 0
    for n in (2, 4, 8):
        sent = scaling.exchanged_bytes(params, 8, 16, 32, 2, replicas=n)
        assert sent["activations"] == 0
        assert sent["gradients"] == pytest.approx(2 * (n - 1) / n * 4 * params)


def test_tensor_parallel_trades_gradient_bytes_for_activations():
    params, batch, seq, width, layers = 10_000, 8, 16, 32, 2
    dp = scaling.exchanged_bytes(params, batch, seq, width, layers, replicas=2)
    tp = scaling.exchanged_bytes(params, batch, seq, width, layers, replicas=2, model_devices=2)
    assert tp["gradients"] == pytest.approx(dp["gradients"] / 2)  # each holds half the weights
    block = batch // 2 * seq * width * 4
    # Per block 2 all-reduces forward and 2 backward, plus the embedding's gather both ways.
    assert tp["activations"] == pytest.approx(layers * 4 * block + block)
    half = scaling.exchanged_bytes(params, batch, seq, width, layers, 2, 2, "mixed_bfloat16")
    assert half["activations"] == pytest.approx(tp["activations"] / 2)


def test_projection_efficiency_falls_as_communication_grows():
    kwargs = dict(devices=8, peak_flops=1e12, link_bytes_per_s=1e9, hop_latency_s=0.0, mfu=0.5)
    fast = scaling.project(8e12, 1e6, 14, **kwargs)
    slow = scaling.project(8e12, 1e9, 14, **kwargs)
    assert fast["compute_s"] == pytest.approx(2.0)  # 1e12 FLOPs per device at 0.5e12 FLOP/s
    assert slow["comm_s"] == pytest.approx(1.0)
    assert slow["efficiency_no_overlap"] == pytest.approx(2 / 3)
    assert slow["efficiency_overlap"] == 1.0
    assert fast["efficiency_no_overlap"] > slow["efficiency_no_overlap"]
