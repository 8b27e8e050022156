"""Matmul rates of this machine by dtype and compiler: float32 / bfloat16, tf.function
without XLA (oneDNN's kernels) / with XLA, and PyTorch's beside them when run with a
side environment's torch (`--torch`). The first table of docs/benchmarks.md's precision
section; prints the CPU's bfloat16-relevant flags first.

    python tools/matmul_rates.py --size=2048 --rounds=5
    /tmp/side/bin/python tools/matmul_rates.py --size=2048 --rounds=5 --torch

Each round times every variant once (best of 10 calls after a warm-up), alternating;
the table gives the median of the rounds and their range.
"""

import argparse
import os
import statistics
import sys
import time

# tfllm.hardware reads /proc/cpuinfo with the standard library only: importable from the
# checkout in a side environment without tfllm's dependencies.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfllm.hardware import cpu_line  # noqa: E402


def tf_variants(size):
    import tensorflow as tf

    a = tf.random.normal((size, size))
    variants = {}
    for dtype in ("float32", "bfloat16"):
        x, y = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
        for xla in (False, True):
            fn = tf.function(tf.linalg.matmul, jit_compile=xla)
            variants[f"TensorFlow {dtype}{', XLA' if xla else ''}"] = (
                lambda fn=fn, x=x, y=y: fn(x, y).numpy())
    return variants


def torch_variants(size):
    import torch

    a = torch.randn(size, size)
    return {f"PyTorch {name}": (lambda x=a.to(dtype): torch.mm(x, x.T))
            for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))}


def best_seconds(call, repeats=10):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--torch", action="store_true", help="PyTorch's rates only")
    args = parser.parse_args()
    print(cpu_line())
    variants = torch_variants(args.size) if args.torch else tf_variants(args.size)
    rates = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():
            rates[name].append(2 * args.size ** 3 / best_seconds(call) / 1e9)
    for name, values in rates.items():
        print(f"{name:<30} {statistics.median(values):8.1f} GFLOP/s  "
              f"({min(values):.1f}-{max(values):.1f}, {args.rounds} rounds, {args.size}^2)")


if __name__ == "__main__":
    main()
