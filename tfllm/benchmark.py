"""Benchmark the training step: `python -m tfllm.benchmark --config=bench_tiny [--json]`.

In one run: measures this machine's matmul peak (float32 and bfloat16), then times the
training step of the config exactly as `tfllm.train` runs it, and reports tokens/s,
step time (median, p10, p90), model FLOPs per token, MFU against the measured peak of
the dtype in use, the share of step time spent waiting for input, peak memory and page
faults per step.
Then it times generation from the same model: --generate_tokens new tokens of one
sample with the KV cache / carried state, and (GPT) with the naive loop that recomputes
the whole context every step.

--strategy/--mesh/--cpu_devices time the step where `tfllm.train` would run it with the
same flags. --overhead=mirrored,multi_worker,dtensor instead times each strategy's step
at --overhead_devices (default 1, 2 and 4 logical CPU devices, or worker processes for
multi_worker), each in a fresh process, against one device: on one machine the devices
share the same cores, so the difference is the strategy's overhead, not a speed-up. It
ends with the projection of docs/distributed.md (tfllm.bench.scaling).

--finetune instead times full fine-tuning against LoRA (rank --lora_rank on
--lora_targets) of the config's model, each in a fresh process (so each peak memory is
its own), alternately, --finetune_rounds times: tokens/s and peak memory side by side
(docs/finetuning.md; configs/bench_gpt2.py is GPT-2-124M's size); --base_quantization=int8
adds LoRA on an int8 base.

--variant (repeated) instead times variants of the config, each a space-separated list
of config overrides (--variant="model.remat=none" --variant="model.remat=block"), each
in a fresh process, alternately, --rounds times: tokens/s, step time, peak memory and
the memory the steps add to what the process held before them, side by side, with
ratios to the first variant (docs/benchmarks.md).

--optimizers=adamw,muon,soap,sophia is --variant=train.optimizer=adamw ... : each
optimizer's step on the same model. Its "mean ms" column is the mean over every measured
step, which counts the steps that refresh SOAP's eigenbases or take Sophia's Hessian
estimate (every 10 by default; measure 30 steps or more); "step ms" is the median step.

--prepare=CORPUS instead times tokenizing (tfllm.prepare's encoding) with one worker and
with --prepare_workers, alternately, on the corpus's first --prepare_mb MB (docs/data.md).
"""

import datetime
import json
import sys

from absl import flags

from tfllm import cli, hardware

cli.define_config_flag(
    "bench_tiny", "Config to time (a packaged name such as bench_tiny, bench_small, bench_lstm, "
    "or a file); override keys with --config.<section>.<key>=<value>.")
flags.DEFINE_integer("steps", 50, "Measured training steps.", lower_bound=3)
flags.DEFINE_integer("warmup", 5, "Steps run before measuring (compilation, caches).",
                     lower_bound=1)
flags.DEFINE_list("peak_sizes", ["1024", "2048", "3072"], "Square matmul sizes for the peak.")
flags.DEFINE_integer("generate_tokens", 256, "New tokens to time generation over; 0 = skip.",
                     lower_bound=0)
flags.DEFINE_string("strategy", "auto", "Where the step runs, as tfllm.train --strategy.")
flags.DEFINE_string("mesh", None, "DTensor mesh for --strategy=dtensor, e.g. batch:2,model:2.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices.",
                     lower_bound=0)
flags.DEFINE_list("overhead", [], "Strategies whose per-step overhead to measure against one "
                  "device: mirrored, multi_worker, dtensor.")
flags.DEFINE_list("overhead_devices", ["1", "2", "4"], "Device (or worker) counts for --overhead.")
cli.define_path("prepare", None, "Instead of the training step, time tokenizing this corpus "
                "(tfllm.prepare's encoding) with one worker and with --prepare_workers, "
                "alternately, on its first --prepare_mb MB.")
cli.define_path("prepare_tokenizer", None, "With --prepare: a prepared dataset or run directory "
                "whose tokenizer to encode with; default a char tokenizer of the sample.")
flags.DEFINE_integer("prepare_mb", 128, "With --prepare: MB of the corpus to encode.", lower_bound=1)
flags.DEFINE_integer("prepare_workers", None, "With --prepare: workers to compare with one; "
                     "default one per core.", lower_bound=2)
flags.DEFINE_integer("prepare_rounds", 2, "With --prepare: runs of each, alternating.",
                     lower_bound=1)
flags.DEFINE_integer("vocab_size", 0, "The model's vocabulary if larger than the tokenizer's "
                     "(e.g. 50257, GPT-2's); 0 = the tokenizer's.", lower_bound=0)
flags.DEFINE_bool("finetune", False, "Time full fine-tuning against LoRA, alternately, each in "
                  "a fresh process.")
flags.DEFINE_integer("lora_rank", 8, "With --finetune: the LoRA rank.", lower_bound=1)
flags.DEFINE_string("lora_targets", "attention", "With --finetune: the LoRA targets.")
flags.DEFINE_multi_enum("base_quantization", [], ["int8"], "With --finetune: LoRA on a base "
                        "quantized so too (train.base_quantization), each its own variant.")
flags.DEFINE_integer("finetune_rounds", 2, "With --finetune: runs of each, alternating.",
                     lower_bound=1)
flags.DEFINE_multi_string("variant", [], "Time this variant of the config (config overrides "
                          "separated by spaces, e.g. 'model.remat=block train.batch_size=2'); "
                          "repeat for each variant, each timed in a fresh process.")
flags.DEFINE_list("optimizers", [], "Time the config's step with each of these optimizers "
                  "(train.optimizer), as variants: e.g. adamw,muon,soap,sophia.")
flags.DEFINE_integer("rounds", 2, "With --variant/--optimizers: runs of each, alternating.",
                     lower_bound=1)
flags.DEFINE_bool("json", False, "Print one JSON object instead of a report.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    from tfllm.config import settle_precision_for_strategy, validate

    settle_precision_for_strategy(FLAGS.config, FLAGS.strategy)
    config = validate(FLAGS.config)
    try:
        sizes = tuple(int(size) for size in FLAGS.peak_sizes)
    except ValueError:
        raise cli.UserError(f"--peak_sizes={','.join(FLAGS.peak_sizes)} must be whole numbers, "
                            "e.g. --peak_sizes=1024,2048.") from None
    result, render = measure(config, sizes)
    if result is None:  # a worker of a multi-worker job other than the chief
        return
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(json.dumps(result) if FLAGS.json else render(result))


def measure(config, sizes):
    """(result, its report function) of the measurement the flags ask for."""
    from tfllm.bench import reports

    config_args = [arg for arg in sys.argv[1:] if arg.startswith("--config")]
    if FLAGS.prepare:
        from tfllm.bench.encoding import measure_preparation

        return measure_preparation(FLAGS.prepare, FLAGS.prepare_tokenizer, FLAGS.prepare_mb,
                                   FLAGS.prepare_workers, FLAGS.prepare_rounds), \
            reports.preparation_report
    if FLAGS.variant or FLAGS.optimizers or FLAGS.finetune:
        return _variants(config_args), (reports.finetuning_report if FLAGS.finetune and not (
            FLAGS.variant or FLAGS.optimizers) else reports.variants_report)
    if FLAGS.overhead:
        from tfllm.bench import mfu, overhead

        result = overhead.measure_overhead(config, config_args, FLAGS.overhead,
                                           FLAGS.overhead_devices, FLAGS.steps, FLAGS.warmup)
        return {**result, "machine": hardware.machine_id()}, reports.overhead_report
    return _step(config, sizes), reports.report


def _variants(config_args):
    from tfllm.bench import variants

    if FLAGS.variant or FLAGS.optimizers:
        named = variants.named_variants(FLAGS.variant, FLAGS.optimizers, FLAGS.config)
        timed, summary = variants.compare_variants(config_args, named, FLAGS.rounds, FLAGS.steps,
                                                   FLAGS.warmup, FLAGS.vocab_size)
        return {"config": timed, "variants": summary}
    named = variants.finetuning_variants(FLAGS.lora_rank, FLAGS.lora_targets,
                                         FLAGS.base_quantization)
    timed, summary = variants.compare_variants(config_args, named, FLAGS.finetune_rounds,
                                               FLAGS.steps, FLAGS.warmup, FLAGS.vocab_size,
                                               "fine-tuning step")
    return {"config": timed, "lora": f"rank {FLAGS.lora_rank} on {FLAGS.lora_targets}",
            "variants": summary, "memory_ratio": summary["lora"]["memory_ratio"],
            "speed_ratio": summary["lora"]["speed_ratio"]}


def _step(config, sizes):
    """The training step where tfllm.train would run it, the machine's peaks, generation."""
    from tfllm.distribute.placement import check_placement

    check_placement(FLAGS.strategy, FLAGS.mesh, config)  # before TensorFlow loads
    from tfllm.distribute import distribution

    strategy = mesh = None  # before anything lists devices (multi_worker needs that)
    if FLAGS.strategy == "dtensor":
        mesh = distribution.parse_mesh(FLAGS.mesh, FLAGS.cpu_devices)  # fits: check_placement
    else:
        strategy = distribution.make_strategy(FLAGS.strategy, FLAGS.cpu_devices, FLAGS.mesh)
    from tfllm.api import step_benchmark  # TensorFlow loads once the flags are valid
    from tfllm.bench import mfu
    from tfllm.training.training_setup import apply_thread_settings

    apply_thread_settings(config)  # before the peak measurement runs the first op
    peaks = _peaks(config, sizes)
    single = mesh is None and strategy.num_replicas_in_sync == 1
    result = step_benchmark.benchmark_training(config, FLAGS.steps, FLAGS.warmup, peaks,
                                               FLAGS.generate_tokens if single else 0, strategy,
                                               mesh, FLAGS.vocab_size or None)
    result.update(machine=hardware.machine_id(), cpu=hardware.cpu_line(), peaks=peaks)
    return result if mesh is not None or distribution.is_chief(strategy) else None


def _peaks(config, sizes):
    """The matmul peak of float32, bfloat16 and the config's precision (none for
    --peak_sizes= empty); the cache keeps one measured at training's sizes."""
    from tfllm.bench import mfu

    dtypes = ["float32", "bfloat16"]
    policy_dtype = mfu.POLICY_DTYPES[config.train.precision]
    if policy_dtype not in dtypes:
        dtypes.append(policy_dtype)
    peaks = {}
    for dtype in dtypes if sizes else []:
        peaks[dtype] = hardware.measure_matmul_peak(dtype, sizes)
        if set(hardware.PEAK_SIZES) <= set(sizes):  # never cache a peak of smaller sizes than train's
            hardware.remember_peak(peaks[dtype])
    return peaks


if __name__ == "__main__":
    cli.run(main)
