"""Measurement: training and generation throughput, model FLOPs utilization (mfu) and
the scaling projection behind `tfllm.benchmark`."""
