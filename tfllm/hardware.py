"""What this machine's processor can do: its flags, read from /proc/cpuinfo without
TensorFlow, and its matmul rates in float32 and bfloat16, measured once and cached. They
decide what `train.precision=auto` chooses; `tfllm.benchmark` prints them and MFU is
reckoned against them (tfllm.bench.mfu).

Why the rates are measured rather than read off the flags (docs/benchmarks.md,
"Precision"): the same flag, AVX512_BF16 without AMX, came with bfloat16 matmuls at
0.6x float32's on one VM (an Intel Xeon, family 6 model 207: 158-209 against 263-309
GFLOP/s) and at 1.85x on another (an AMD EPYC, family 26 model 2: 868 against 470); with
AMX they ran at 3-4x (975-1,241 against 299-305). Where bfloat16's matmuls measured at
BF16_MIN_SPEEDUP of float32's or more, its training step won too: `bench_small` (width
384) 5,317 against 4,644 tokens/s on the AMD EPYC, 3,014 against 2,676 on the AMX Xeon.
XLA:CPU does not use the bfloat16 units (433 and 254-264 GFLOP/s there), so bfloat16 runs
without it. At `bench_tiny`'s width 128 bfloat16's step was slower on both (27,436
against 39,399 tokens/s on the AMD EPYC): below AUTO_BF16_MIN_WIDTH the automatic choice
stays float32 without measuring.
"""

import json
import os
import subprocess
import sys
import time

from tfllm.errors import UserError

# The flags docs and `tfllm.benchmark` report: float32 vector units, bfloat16 dot products
# (AVX512_BF16), matrix tiles (AMX).
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile",
                     "amx_bf16", "amx_int8")
AUTO_BF16_MIN_WIDTH = 256
# bfloat16's matmul rate (without XLA) over float32's best from which the automatic choice
# is bfloat16: measured 1.85x and 3-4x where bfloat16's step won, 0.6x where it lost.
BF16_MIN_SPEEDUP = 1.3
# The square sizes of a machine's matmul peak (the cached one: tfllm.train's MFU and the
# automatic precision read it).
PEAK_SIZES = (1024, 2048)
_measured = {}  # bfloat16_speedup's child's peaks, in this process


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


def automatic_precision(model_name, width, flags=None, speedup=None):
    """(precision, xla, why) that `train.precision=auto` resolves to on this CPU for a model
    of `model_name` and width `width`. `speedup()` gives bfloat16's matmul rate over
    float32's on this machine (default `bfloat16_speedup`: cached, else measured once); it
    is called only where it decides: a GPT of width >= AUTO_BF16_MIN_WIDTH on a CPU with
    bfloat16 units."""
    flags = cpu_info()["flags"] if flags is None else flags
    if not flags & {"avx512_bf16", "amx_bf16"}:
        return "float32", True, "this CPU has no bfloat16 units"
    if model_name != "gpt" or width < AUTO_BF16_MIN_WIDTH:
        return "float32", True, (f"a {model_name} of width {width} is below the width "
                                 f"({AUTO_BF16_MIN_WIDTH}) where bfloat16 pays")
    ratio = (speedup or bfloat16_speedup)()
    measured = f"bfloat16 matmuls measured at {ratio:.2f}x float32's on this CPU"
    if ratio < BF16_MIN_SPEEDUP:
        return "float32", True, measured
    return "mixed_bfloat16", False, measured + "; without XLA, which does not use them"


def bfloat16_speedup():
    """bfloat16's matmul peak without XLA over float32's best (tfllm.benchmark's peaks),
    from the cache; where it holds none for this machine, measured once in a child process
    (about 10 s) so that validating a config keeps TensorFlow unloaded."""
    peaks = {dtype: cached_peak(dtype) for dtype in ("float32", "bfloat16")}
    if not all(peaks.values()):
        if not _measured:  # kept for this process, where the cache is not writable
            print("train.precision=auto: measuring this CPU's float32 and bfloat16 matmul "
                  f"rates (once; cached in {_cache_path()})", file=sys.stderr, flush=True)
            _measured.update(_measure_in_child())
        peaks = _measured
    if peaks["bfloat16"].get("xla"):
        return 0.0  # bfloat16 was fastest under XLA, which does not use its units: no gain
    return peaks["bfloat16"]["flops_per_s"] / peaks["float32"]["flops_per_s"]


def _measure_in_child():
    """{"float32": peak, "bfloat16": peak} measured by `python -m tfllm.hardware` (and
    cached by it where the cache is writable)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "tfllm.hardware"], capture_output=True,
                          text=True, env=env)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"measuring the matmul rates for train.precision=auto failed ({last}); "
                        "set train.precision=float32 or mixed_bfloat16.")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_matmul_peak(dtype="float32", sizes=PEAK_SIZES, repeats=10):
    """The best matmul rate in FLOP/s for `dtype`, over square sizes, with and without XLA.

    Returns {"flops_per_s", "size", "xla", "dtype"} of the fastest variant. Each variant
    is timed by its fastest of `repeats` calls after a warm-up call: a peak is the best
    the machine does, and on a shared machine a median reading swings by 25% from run to
    run, which an MFU would inherit.
    """
    import tensorflow as tf  # here only: the rest of this module runs before TensorFlow loads

    best = None
    for size in sizes:
        a = tf.random.normal((size, size), dtype=tf.float32)
        a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
        for xla in (False, True):
            matmul = tf.function(tf.linalg.matmul, jit_compile=xla)
            matmul(a, b).numpy()  # compile and warm caches
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                matmul(a, b).numpy()  # numpy() waits for the result (a copy: < 1% here)
                times.append(time.perf_counter() - start)
            rate = 2 * size ** 3 / min(times)
            if best is None or rate > best["flops_per_s"]:
                best = {"flops_per_s": rate, "size": size, "xla": xla, "dtype": dtype}
    return best


def machine_id():
    """What a peak depends on: processor, cores, TensorFlow version (read without
    importing TensorFlow)."""
    from importlib import metadata

    version = "unknown"
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    cpu = cpu_info()["name"] or os.uname().machine
    return f"{cpu} | {os.cpu_count()} cores | TensorFlow {version}"


def _cache_path():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "tfllm", "matmul_peak.json")


def _read_cache():
    try:
        with open(_cache_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def cached_peak(dtype):
    """The cached peak of `dtype` on this machine, or None."""
    return _read_cache().get(f"{machine_id()} | {dtype}")


def remember_peak(peak):
    """Stores a measured peak for this machine unless a higher one is stored: a peak is the
    best the machine does, and a reading in a slow stretch of a shared VM would inflate
    every MFU `tfllm.train` logs after it (best effort: a read-only home is fine)."""
    cache = _read_cache()
    key = f"{machine_id()} | {peak['dtype']}"
    if cache.get(key, {}).get("flops_per_s", 0.0) >= peak["flops_per_s"]:
        return
    cache[key] = peak
    path = _cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + f".{os.getpid()}.tmp", "w") as f:
            json.dump(cache, f, indent=1)
        os.replace(path + f".{os.getpid()}.tmp", path)
    except OSError:
        pass


def matmul_peak(dtype="float32"):
    """This machine's peak for `dtype`: the cached measurement, else measured now (a few
    seconds) and cached."""
    cached = cached_peak(dtype)
    if cached:
        return cached
    peak = measure_matmul_peak(dtype)
    remember_peak(peak)
    return peak


if __name__ == "__main__":
    # `python -m tfllm.hardware`: measure (or read) float32's and bfloat16's peaks, print them
    # as one JSON line (bfloat16_speedup's child).
    print(json.dumps({dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}))
