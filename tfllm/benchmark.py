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
(docs/finetuning.md; configs/bench_gpt2.py is GPT-2-124M's size).

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

from absl import flags

from tfllm import cli

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
        f"strategy     {result['strategy']}: {result['replicas']} replica(s) x "
        f"{result['model_devices']} model device(s), each sending "
        f"{result['exchanged_bytes'] / 1e6:.2f} MB per step",
        f"step         {s['median']:.1f} ms median (p10 {s['p10']:.1f}, p90 {s['p90']:.1f}) "
        f"over {result['steps']} steps",
        f"throughput   {result['tokens_per_s']:,.0f} tokens/s (median step); "
        f"{result['mean_tokens_per_s']:,.0f} over all measured steps, as tfllm.train logs",
        f"FLOPs/token  {result['flops_per_token'] / 1e6:.2f} M (6N + 12LTD; 6N for recurrent)",
    ]
    if "mfu" in result:
        lines.append(f"MFU          {100 * result['mfu']:.1f}% of the measured {result['peak_dtype']} peak")
    lines += [
        f"input wait   <= {100 * result['input_wait']:.2f}% of step time "
        f"(the pipeline makes a batch in {result['input_ms']:.2f} ms)",
        f"peak memory  {result['peak_rss_mb']:,.0f} MB resident ({result['setup_rss_mb']:,.0f} "
        f"before the first step), "
        f"{result['page_faults_per_step']:,.0f} page faults per step",
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


OVERHEAD_STRATEGIES = ("mirrored", "multi_worker", "dtensor")


def overhead_runs(strategies, counts):
    """(label, devices, benchmark flags, worker processes) of every step to time."""
    runs = [("one device (no strategy)", 1, ["--strategy=auto"], 1),
            ("one_device strategy", 1, ["--strategy=one_device"], 1)]
    for name in strategies:
        for n in counts:
            if name == "mirrored":
                runs.append((f"mirrored x{n}", n, ["--strategy=mirrored", f"--cpu_devices={n}"], 1))
            elif name == "multi_worker":
                runs.append((f"multi_worker x{n} processes", n, ["--strategy=multi_worker"], n))
            else:
                meshes = [f"batch:{n}"] + ([f"batch:{n // 2},model:2"] if n % 2 == 0 else [])
                runs += [(f"dtensor {mesh}", n, ["--strategy=dtensor", f"--mesh={mesh}",
                                                 f"--cpu_devices={n}"], 1) for mesh in meshes]
    return runs


def _last_json(text):
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def time_in_process(config_args, flags_, workers):
    """Runs this benchmark (step only) in a fresh process (or `workers` local workers);
    returns its result, or {"error": its last line}."""
    import subprocess
    import sys
    import tempfile

    command = ["-m", "tfllm.benchmark", *config_args, *flags_, "--json", "--peak_sizes=",
               "--generate_tokens=0", f"--steps={FLAGS.steps}", f"--warmup={FLAGS.warmup}"]
    if workers > 1 or "--strategy=multi_worker" in flags_:
        from tfllm.distribute.local_workers import launch

        with tempfile.TemporaryDirectory() as log_dir:
            code, _ = launch(workers, command, log_dir)
            with open(f"{log_dir}/worker_0.log") as f:
                output = f.read()
        stdout = stderr = output
    else:
        proc = subprocess.run([sys.executable, *command], capture_output=True, text=True)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    result = _last_json(stdout) if code == 0 else None
    if result is None:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit code {code}"}
    return result


def measure_overhead(config):
    import sys

    unknown = set(FLAGS.overhead) - set(OVERHEAD_STRATEGIES)
    if unknown:
        raise cli.UserError(f"--overhead={','.join(FLAGS.overhead)}: {', '.join(sorted(unknown))} "
                            f"unknown; use some of {','.join(OVERHEAD_STRATEGIES)}.")
    try:
        counts = [int(n) for n in FLAGS.overhead_devices]
    except ValueError:
        counts = [0]
    if min(counts) < 1:
        raise cli.UserError(f"--overhead_devices={','.join(FLAGS.overhead_devices)} must be "
                            "counts of at least 1, e.g. --overhead_devices=1,2,4.")
    from tfllm.bench import scaling

    config_args = [arg for arg in sys.argv[1:] if arg.startswith("--config")]
    rows = []
    for label, devices, flags_, workers in overhead_runs(FLAGS.overhead, counts):
        result = time_in_process(config_args, flags_, workers)
        rows.append({"run": label, "devices": devices, **result})
    base = rows[0]
    if "error" in base:
        raise cli.UserError(f"the one-device step failed: {base['error']}")
    for row in rows:
        if "error" not in row:
            row["overhead_ms"] = row["step_ms"]["median"] - base["step_ms"]["median"]
    t = config.train
    projection = scaling.projection_table(config.model, base["params"], base["flops_per_token"],
                                          t.batch_size, t.precision)
    return {"overhead": rows, "projection": projection, "config": base["config"],
            "params": base["params"], "flops_per_token": base["flops_per_token"]}


def overhead_report(result):
    from tfllm.bench.scaling import format_bytes, format_projection

    c = result["config"]
    lines = [f"machine      {result['machine']}", f"date         {result['date']}",
             f"model        {c['model']}, {result['params']:,} parameters, {c['precision']}, "
             f"batch {c['batch_size']} x {c['seq_len']}",
             "",
             f"{'run':<30} {'step ms':>8} {'p10-p90':>13} {'overhead':>16} {'sent/device':>12}"]
    base = result["overhead"][0]["step_ms"]["median"]
    for row in result["overhead"]:
        if "error" in row:
            lines.append(f"{row['run']:<30} failed: {row['error']}")
            continue
        s = row["step_ms"]
        lines.append(f"{row['run']:<30} {s['median']:8.1f} {s['p10']:6.1f}-{s['p90']:<6.1f} "
                     f"{row['overhead_ms']:+8.1f} ({100 * row['overhead_ms'] / base:+4.0f}%) "
                     f"{format_bytes(row['exchanged_bytes']):>12}"
                     f"{'' if row['config']['xla'] else '  (no XLA)'}")
    lines += ["", *format_projection(result["projection"])]
    return "\n".join(lines)


def compare_variants(variants, rounds, what="step"):
    """Times each variant ({name: extra config flags}) of the command line's config in
    fresh processes, alternately, `rounds` times. Returns (config timed, {name: medians
    of tokens_per_s, step_ms, peak_rss_mb, step_rss_mb, the per-round ratios to the first
    variant, and each round's figures})."""
    import statistics
    import sys

    config_args = [arg for arg in sys.argv[1:] if arg.startswith("--config")]
    runs = {name: [] for name in variants}
    for _ in range(rounds):
        for name, extra in variants.items():
            result = time_in_process([*config_args, *extra],
                                     [f"--vocab_size={FLAGS.vocab_size}"], 1)
            if "error" in result:
                raise cli.UserError(f"the {name} {what} failed: {result['error']}")
            result["step_rss_mb"] = result["peak_rss_mb"] - result["setup_rss_mb"]
            result["step_ms"] = result["step_ms"]["median"]
            tokens_per_step = result["config"]["batch_size"] * result["config"]["seq_len"]
            result["mean_step_ms"] = 1e3 * tokens_per_step / result["mean_tokens_per_s"]
            runs[name].append(result)
    first = next(iter(runs.values()))
    keys = ("tokens_per_s", "step_ms", "mean_step_ms", "peak_rss_mb", "step_rss_mb")
    summary = {}
    for name, rows in runs.items():

        def ratio(key):  # the median of the per-round ratios to the first variant
            return statistics.median(b[key] / a[key] for a, b in zip(first, rows))

        summary[name] = {key: statistics.median(r[key] for r in rows) for key in keys}
        summary[name].update(
            {f"{key}_runs": [r[key] for r in rows] for key in keys},
            params=rows[0]["params"], trainable=rows[0]["trainable_params"],
            memory_ratio=ratio("peak_rss_mb"), step_memory_ratio=ratio("step_rss_mb"),
            speed_ratio=ratio("tokens_per_s"))
    return first[0]["config"], summary


def parse_variant(text):
    """'model.remat=block train.batch_size=2' -> config flags; UserError if malformed."""
    overrides = text.split()
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not value or section not in FLAGS.config or name not in FLAGS.config[section]:
            raise cli.UserError(f"--variant={text!r}: {item!r} is not a config override; write "
                                "section.key=value items separated by spaces, e.g. "
                                "--variant='model.remat=block train.batch_size=2'.")
    return [f"--config.{item}" for item in overrides]


def measure_variants():
    from tfllm.config import CHOICES

    for name in FLAGS.optimizers:
        if name not in CHOICES["train.optimizer"]:
            raise cli.UserError(f"--optimizers: {name!r} is not an optimizer; use some of "
                                f"{', '.join(CHOICES['train.optimizer'])}.")
    texts = [*FLAGS.variant, *(f"train.optimizer={name}" for name in FLAGS.optimizers)]
    variants = {text or "(the config)": parse_variant(text) for text in texts}
    config, summary = compare_variants(variants, FLAGS.rounds)
    return {"config": config, "variants": summary}


def variants_report(result):
    c = result["config"]
    lines = [f"date         {result['date']}",
             f"model        {c['model']}, {c['precision']}, XLA {'on' if c['xla'] else 'off'}, "
             f"{c['optimizer']} (as the first variant)",
             f"{'variant':<36} {'tokens/s':>9} {'step ms':>8} {'mean ms':>8} {'peak MB':>8} "
             f"{'step MB':>8} {'x tok/s':>8} {'x peak':>7} {'x step':>7}"]
    for name, row in result["variants"].items():
        lines.append(f"{name:<36} {row['tokens_per_s']:>9,.0f} {row['step_ms']:>8,.0f} "
                     f"{row['mean_step_ms']:>8,.0f} "
                     f"{row['peak_rss_mb']:>8,.0f} {row['step_rss_mb']:>8,.0f} "
                     f"{row['speed_ratio']:>8.2f} {row['memory_ratio']:>7.2f} "
                     f"{row['step_memory_ratio']:>7.2f}")
    lines.append("medians over the rounds; step ms = the median step, mean ms = all measured "
                 "steps' mean; step MB = peak minus the peak before the first step "
                 "(activations, gradients, temporaries); x = median per-round ratio to the first")
    return "\n".join(lines)


def measure_finetuning():
    """Full fine-tuning and LoRA of the config's model, alternating fresh processes."""
    variants = {"full": [], "lora": [f"--config.train.lora_rank={FLAGS.lora_rank}",
                                     f"--config.train.lora_targets={FLAGS.lora_targets}"]}
    config, summary = compare_variants(variants, FLAGS.finetune_rounds, "fine-tuning step")
    return {"config": config, "lora": f"rank {FLAGS.lora_rank} on {FLAGS.lora_targets}",
            "variants": summary, "memory_ratio": summary["lora"]["memory_ratio"],
            "speed_ratio": summary["lora"]["speed_ratio"]}


def finetuning_report(result):
    c = result["config"]
    lines = [f"date         {result['date']}",
             f"model        {result['variants']['full']['params']:,} parameters, {c['precision']}, "
             f"XLA {'on' if c['xla'] else 'off'}, batch {c['batch_size']} x {c['seq_len']}, "
             f"{c['optimizer']}",
             f"{'variant':<24} {'trainable':>12} {'tokens/s':>9} {'peak MB':>8}   runs"]
    for name, row in result["variants"].items():
        label = "full fine-tuning" if name == "full" else f"LoRA {result['lora']}"
        runs = ", ".join(f"{t:,.0f} tok/s {m:,.0f} MB" for t, m in
                         zip(row["tokens_per_s_runs"], row["peak_rss_mb_runs"]))
        lines.append(f"{label:<24} {row['trainable']:>12,} {row['tokens_per_s']:>9,.0f} "
                     f"{row['peak_rss_mb']:>8,.0f}   {runs}")
    lines.append(f"LoRA / full  peak memory {result['memory_ratio']:.2f}, tokens/s "
                 f"{result['speed_ratio']:.2f} (medians of the per-round ratios)")
    return "\n".join(lines)


def measure_preparation():
    """Encoding speed of --prepare's corpus with one worker and with several (no TensorFlow)."""
    import os
    import statistics

    from tfllm.data.preparation import measure_encoding
    from tfllm.tokenizers import CharTokenizer, load_tokenizer

    sample = FLAGS.prepare_mb * 1_000_000
    if FLAGS.prepare_tokenizer:
        tokenizer = load_tokenizer(FLAGS.prepare_tokenizer)
    else:
        from tfllm.data.corpus import iter_pieces

        chars = set()
        for _, text in iter_pieces(FLAGS.prepare, flags={"source": "--prepare"}):
            chars.update(text)
        tokenizer = CharTokenizer(sorted(chars))
    workers = FLAGS.prepare_workers or os.cpu_count()
    runs = measure_encoding(FLAGS.prepare, tokenizer, workers, sample, FLAGS.prepare_rounds)
    summary = {str(count): {key: statistics.median(r[key] for r in rows)
                            for key in ("mb_per_s", "tokens_per_s")} | {"runs": rows}
               for count, rows in runs.items()}
    ratios = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(runs[1], runs[workers])]
    return {"corpus": FLAGS.prepare, "sample_mb": FLAGS.prepare_mb,
            "tokenizer": f"{tokenizer.name} ({tokenizer.vocab_size} ids)", "cpus": os.cpu_count(),
            "workers": summary, "speedup": statistics.median(ratios), "speedups": ratios}


def preparation_report(result):
    lines = [f"date         {result['date']}",
             f"corpus       {result['corpus']} (first {result['sample_mb']} MB), "
             f"{result['tokenizer']}, {result['cpus']} CPUs",
             f"{'workers':<8} {'MB/s':>8} {'M tokens/s':>11}   runs (MB/s)"]
    for count, row in result["workers"].items():
        runs = ", ".join(f"{r['mb_per_s']:.2f}" for r in row["runs"])
        lines.append(f"{count:<8} {row['mb_per_s']:8.2f} {row['tokens_per_s'] / 1e6:11.3f}   {runs}")
    lines.append(f"speed-up     {result['speedup']:.2f}x (median of "
                 f"{', '.join(f'{r:.2f}' for r in result['speedups'])}, each against the "
                 "one-worker run before it)")
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
    stamp = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if FLAGS.prepare:
        result = {**measure_preparation(), **stamp}
        print(json.dumps(result) if FLAGS.json else preparation_report(result))
        return
    if FLAGS.variant or FLAGS.optimizers:
        result = {**measure_variants(), **stamp}
        print(json.dumps(result) if FLAGS.json else variants_report(result))
        return
    if FLAGS.finetune:
        result = {**measure_finetuning(), **stamp}
        print(json.dumps(result) if FLAGS.json else finetuning_report(result))
        return
    if FLAGS.overhead:
        result = measure_overhead(config)
        from tfllm.bench import mfu

        result.update(machine=mfu.machine_id(), **stamp)
        print(json.dumps(result) if FLAGS.json else overhead_report(result))
        return
    from tfllm.distribute.placement import check_placement

    check_placement(FLAGS.strategy, FLAGS.mesh, config)  # before TensorFlow loads
    from tfllm.distribute import distribution

    strategy = mesh = None  # before anything lists devices (multi_worker needs that)
    if FLAGS.strategy == "dtensor":
        mesh = distribution.parse_mesh(FLAGS.mesh, FLAGS.cpu_devices)  # fits: check_placement
    else:
        strategy = distribution.make_strategy(FLAGS.strategy, FLAGS.cpu_devices, FLAGS.mesh)
    from tfllm.api import step_benchmark as throughput  # TensorFlow loads once the flags are valid
    from tfllm.bench import mfu
    from tfllm.training.training_setup import apply_thread_settings

    apply_thread_settings(config)  # before the peak measurement runs the first op
    dtypes = ["float32", "bfloat16"]
    policy_dtype = mfu.POLICY_DTYPES[config.train.precision]
    if policy_dtype not in dtypes:
        dtypes.append(policy_dtype)
    peaks = {}
    for dtype in dtypes if sizes else []:  # --peak_sizes= (empty) skips the peak
        peaks[dtype] = mfu.measure_matmul_peak(dtype, sizes)
        if set(mfu.PEAK_SIZES) <= set(sizes):  # never cache a peak of smaller sizes than train's
            mfu.remember_peak(peaks[dtype])
    single = mesh is None and strategy.num_replicas_in_sync == 1
    result = throughput.benchmark_training(config, FLAGS.steps, FLAGS.warmup, peaks,
                                           FLAGS.generate_tokens if single else 0, strategy, mesh,
                                           FLAGS.vocab_size or None)
    result.update(machine=mfu.machine_id(), peaks=peaks, **stamp)
    if mesh is not None or distribution.is_chief(strategy):
        print(json.dumps(result) if FLAGS.json else report(result))


if __name__ == "__main__":
    cli.run(main)
