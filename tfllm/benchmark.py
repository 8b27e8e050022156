"""Benchmark the training step: `python -m tfllm.benchmark --config=bench_tiny [--json]`.

In one run: measures this machine's matmul peak (float32 and bfloat16), then times the
training step of the config exactly as `tfllm.train` runs it, and reports tokens/s,
step time (median, p10, p90), model FLOPs per token, MFU against the measured peak of
the dtype in use, the share of step time spent waiting for input, and peak memory.
Then it times generation from the same model: --generate_tokens new tokens of one
sample with the KV cache / carried state, and (GPT) with the naive loop that recomputes
the whole context every step.
"""

import datetime
import json

from absl import flags
from ml_collections import config_flags

from tfllm import cli

config_flags.DEFINE_config_file(
    "config", cli.default_config_path("bench_tiny"),
    "Config to time (a packaged name such as bench_tiny, bench_small, bench_lstm, or a file); "
    "override keys with --config.<section>.<key>=<value>.", lock_config=True)
flags.DEFINE_integer("steps", 50, "Measured training steps.", lower_bound=3)
flags.DEFINE_integer("warmup", 5, "Steps run before measuring (compilation, caches).",
                     lower_bound=1)
flags.DEFINE_list("peak_sizes", ["1024", "2048", "3072"], "Square matmul sizes for the peak.")
flags.DEFINE_integer("generate_tokens", 256, "New tokens to time generation over; 0 = skip.",
                     lower_bound=0)
flags.DEFINE_bool("json", False, "Print one JSON object instead of a report.")
FLAGS = flags.FLAGS


def report(result):
    c, s = result["config"], result["step_ms"]
    lines = [
        f"machine      {result['machine']}",
        f"date         {result['date']}",
    ]
    for dtype, peak in result["peaks"].items():
        lines.append(f"peak {dtype:<8} {peak['flops_per_s'] / 1e9:7.1f} GFLOP/s  (matmul {peak['size']}^2"
                     f"{', XLA' if peak['xla'] else ''})")
    lines += [
        f"model        {c['model']}, {result['params']:,} parameters, {c['precision']}, "
        f"XLA {'on' if c['xla'] else 'off'}, batch {c['batch_size']} x {c['seq_len']}, {c['optimizer']}",
        f"step         {s['median']:.1f} ms median (p10 {s['p10']:.1f}, p90 {s['p90']:.1f}) "
        f"over {result['steps']} steps",
        f"throughput   {result['tokens_per_s']:,.0f} tokens/s",
        f"FLOPs/token  {result['flops_per_token'] / 1e6:.2f} M (6N + 12LTD; 6N for recurrent)",
    ]
    if "mfu" in result:
        lines.append(f"MFU          {100 * result['mfu']:.1f}% of the measured {result['peak_dtype']} peak")
    lines += [
        f"input wait   <= {100 * result['input_wait']:.2f}% of step time "
        f"(the pipeline makes a batch in {result['input_ms']:.2f} ms)",
        f"peak memory  {result['peak_rss_mb']:,.0f} MB resident",
    ]
    g = result.get("generation")
    if g:
        line = (f"generation   {g['new_tokens']} new tokens, 1 sample: cached "
                f"{g['cached_tokens_per_s']:,.0f} tokens/s")
        if g["naive_tokens_per_s"]:
            line += (f", naive recompute {g['naive_tokens_per_s']:,.0f} tokens/s "
                     f"({g['speedup']:.1f}x faster per token cached)")
        lines.append(line)
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    from tfllm.config import validate

    config = validate(FLAGS.config)
    try:
        sizes = tuple(int(size) for size in FLAGS.peak_sizes)
    except ValueError:
        raise cli.UserError(f"--peak_sizes={','.join(FLAGS.peak_sizes)} must be whole numbers, "
                            "e.g. --peak_sizes=1024,2048.") from None
    from tfllm.training import mfu, throughput  # TensorFlow loads once the flags are valid
    from tfllm.training.training_setup import apply_thread_settings

    apply_thread_settings(config)  # before the peak measurement runs the first op
    dtypes = ["float32", "bfloat16"]
    policy_dtype = mfu.POLICY_DTYPES[config.train.precision]
    if policy_dtype not in dtypes:
        dtypes.append(policy_dtype)
    peaks = {}
    for dtype in dtypes:
        peaks[dtype] = mfu.measure_matmul_peak(dtype, sizes)
        if set(mfu.PEAK_SIZES) <= set(sizes):  # never cache a peak of smaller sizes than train's
            mfu.remember_peak(peaks[dtype])
    result = throughput.benchmark_training(config, FLAGS.steps, FLAGS.warmup, peaks,
                                           FLAGS.generate_tokens)
    result.update(machine=mfu.machine_id(), peaks=peaks,
                  date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print(json.dumps(result) if FLAGS.json else report(result))


if __name__ == "__main__":
    cli.run(main)
