"""The processor's bfloat16 units, read from /proc/cpuinfo without TensorFlow: what
`train.precision=auto` decides by, and what `tfllm.benchmark` prints.

Why only AMX counts (docs/benchmarks.md, "Precision"): on a Xeon with AMX, TensorFlow's
bfloat16 matmul without XLA ran at 975-1,241 GFLOP/s against float32's 299-305, and the
training step of `bench_small` (width 384) at 3,014 tokens/s in bfloat16 without XLA
against 2,676 in float32 with XLA (a LoRA step of a 135M model: 477 against 320-340). On
a Xeon whose VM shows avx512_bf16 but no AMX, bfloat16 matmuls ran slower than float32's
in TensorFlow and PyTorch alike (158-209 against 263 GFLOP/s). XLA:CPU does not use the
bfloat16 units (254-264 GFLOP/s on the AMX machine), so bfloat16 runs without it. On
`bench_tiny`'s width 128 PyTorch's bfloat16 was slower than its float32 even with AMX:
below AUTO_BF16_MIN_WIDTH the automatic choice stays float32.
"""

import os

# The flags docs and `tfllm.benchmark` report: float32 vector units, bfloat16 dot products
# (AVX512_BF16), matrix tiles (AMX).
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile",
                     "amx_bf16", "amx_int8")
AUTO_BF16_MIN_WIDTH = 256


def cpu_info(path="/proc/cpuinfo"):
    """{"name", "family", "model", "flags"} of the first processor (empty values where the
    file is missing, as on macOS)."""
    info = {"name": "", "family": "", "model": "", "flags": frozenset()}
    keys = {"model name": "name", "cpu family": "family", "model": "model"}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "flags":
                    info["flags"] = frozenset(value.split())
                    break  # the first processor's block is complete
                if key in keys and not info[keys[key]]:
                    info[keys[key]] = value.strip()
    except OSError:
        pass
    return info


def cpu_line(info=None):
    """One line naming the processor and its relevant flags, for reports."""
    info = info or cpu_info()
    flags = " ".join(f for f in FLAGS_OF_INTEREST if f in info["flags"]) or "none of interest"
    return (f"{info['name'] or 'unknown CPU'} (family {info['family'] or '?'} model "
            f"{info['model'] or '?'}), {os.cpu_count()} cores; flags: {flags}")


def automatic_precision(model_name, width, flags=None):
    """(precision, xla, why) that `train.precision=auto` resolves to on this CPU for a model
    of `model_name` and width `width`."""
    flags = cpu_info()["flags"] if flags is None else flags
    if "amx_bf16" not in flags:
        units = ("AVX512_BF16 but no AMX: bfloat16 matmuls are slower than float32's here"
                 if "avx512_bf16" in flags else "no bfloat16 units")
        return "float32", True, f"this CPU has {units}"
    if model_name != "gpt" or width < AUTO_BF16_MIN_WIDTH:
        return "float32", True, (f"AMX, but a {model_name} of width {width} is below the "
                                 f"width ({AUTO_BF16_MIN_WIDTH}) where bfloat16 pays")
    return "mixed_bfloat16", False, "this CPU has AMX bfloat16 units (XLA:CPU does not use them)"
