"""The text reports of `tfllm.benchmark`: one per kind of measurement, each from the result
dict that `--json` prints."""

from tfllm.bench.scaling import format_bytes, format_projection


def report(result):
    c, s = result["config"], result["step_ms"]
    lines = [
        f"machine      {result['machine']}",
        *([f"cpu          {result['cpu']}"] if "cpu" in result else []),
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


def overhead_report(result):
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


def finetuning_report(result):
    c = result["config"]
    lines = [f"date         {result['date']}",
             f"model        {result['variants']['full']['params']:,} parameters, {c['precision']}, "
             f"XLA {'on' if c['xla'] else 'off'}, batch {c['batch_size']} x {c['seq_len']}, "
             f"{c['optimizer']}",
             f"{'variant':<24} {'trainable':>12} {'tokens/s':>9} {'peak MB':>8}   runs"]
    for name, row in result["variants"].items():
        label = "full fine-tuning" if name == "full" else f"LoRA {result['lora']}"
        if name.startswith("lora_"):
            label = f"LoRA, {name[5:]} base"
        runs = ", ".join(f"{t:,.0f} tok/s {m:,.0f} MB" for t, m in
                         zip(row["tokens_per_s_runs"], row["peak_rss_mb_runs"]))
        lines.append(f"{label:<24} {row['trainable']:>12,} {row['tokens_per_s']:>9,.0f} "
                     f"{row['peak_rss_mb']:>8,.0f}   {runs}")
    lines.append(f"LoRA / full  peak memory {result['memory_ratio']:.2f}, tokens/s "
                 f"{result['speed_ratio']:.2f} (medians of the per-round ratios)")
    lora = result["variants"]["lora"]
    for name, row in result["variants"].items():
        if name.startswith("lora_"):
            lines.append(f"LoRA, {name[5:]} base / full  peak memory {row['memory_ratio']:.2f}, "
                         f"step memory {row['step_memory_ratio']:.2f}, tokens/s "
                         f"{row['speed_ratio']:.2f}; / LoRA tokens/s "
                         f"{row['tokens_per_s'] / lora['tokens_per_s']:.2f}")
    return "\n".join(lines)


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
