#!/bin/bash
# tfllm's and PyTorch's training step side by side, each in its precisions, fresh processes
# alternating (docs/benchmarks.md, "Precision"): tfllm float32 + XLA, PyTorch float32,
# PyTorch autocast bfloat16, tfllm mixed_bfloat16 without XLA; one line per process.
#
#   tools/precision_benchmark.sh CONFIG STEPS ROUNDS [TORCH_PYTHON]
#   tools/precision_benchmark.sh bench_small 15 3 /tmp/side/bin/python
#
# CONFIG is bench_tiny or bench_small; TORCH_PYTHON an interpreter with torch (default python3).
set -euo pipefail
cfg=$1; steps=$2; rounds=$3; torch_python=${4:-python3}
here=$(cd "$(dirname "$0")" && pwd)
rate() { python3 -c "import json,sys; print('$1', round(json.loads(sys.stdin.read().strip().splitlines()[-1])['tokens_per_s']))"; }
for _ in $(seq "$rounds"); do
  python -m tfllm.benchmark --config="$cfg" --steps="$steps" --warmup=10 --peak_sizes= \
    --generate_tokens=0 --json --config.train.precision=float32 2>/dev/null | rate "tfllm float32 XLA"
  "$torch_python" "$here/torch_gpt_benchmark.py" --config="$cfg" --steps="$steps" \
    --precision=float32 | rate "PyTorch float32"
  "$torch_python" "$here/torch_gpt_benchmark.py" --config="$cfg" --steps="$steps" \
    --precision=bfloat16 | rate "PyTorch bfloat16 (autocast)"
  python -m tfllm.benchmark --config="$cfg" --steps="$steps" --warmup=10 --peak_sizes= \
    --generate_tokens=0 --json --config.train.precision=mixed_bfloat16 \
    --config.train.xla=False 2>/dev/null | rate "tfllm mixed_bfloat16, no XLA"
done
