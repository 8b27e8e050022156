"""Variants of a config timed side by side: each in a fresh `tfllm.benchmark` process (so
each peak memory is its own), alternately, for rounds; medians and per-round ratios to the
first variant. `tfllm.benchmark --variant/--optimizers/--finetune` runs these."""

import json
import statistics
import subprocess
import sys
import tempfile

from tfllm.errors import UserError


def time_in_process(config_args, flags_, workers, steps, warmup):
    """Runs `tfllm.benchmark` (the step only, `steps` after `warmup`) in a fresh process (or
    `workers` local workers); its result, or {"error": its last line}."""
    command = ["-m", "tfllm.benchmark", *config_args, *flags_, "--json", "--peak_sizes=",
               "--generate_tokens=0", f"--steps={steps}", f"--warmup={warmup}"]
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


def _last_json(text):
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def compare_variants(config_args, variants, rounds, steps, warmup, vocab_size=0, what="step"):
    """Times each variant ({name: extra config flags}) of the config `config_args` name in
    fresh processes, alternately, `rounds` times. Returns (config timed, {name: medians of
    tokens_per_s, step_ms, peak_rss_mb, step_rss_mb, the per-round ratios to the first
    variant, and each round's figures})."""
    runs = {name: [] for name in variants}
    for _ in range(rounds):
        for name, extra in variants.items():
            result = time_in_process([*config_args, *extra], [f"--vocab_size={vocab_size}"], 1,
                                     steps, warmup)
            if "error" in result:
                raise UserError(f"the {name} {what} failed: {result['error']}")
            runs[name].append(_per_step(result))
    first = next(iter(runs.values()))
    return first[0]["config"], {name: _summary(rows, first) for name, rows in runs.items()}


def _per_step(result):
    result["step_rss_mb"] = result["peak_rss_mb"] - result["setup_rss_mb"]
    result["step_ms"] = result["step_ms"]["median"]
    tokens_per_step = result["config"]["batch_size"] * result["config"]["seq_len"]
    result["mean_step_ms"] = 1e3 * tokens_per_step / result["mean_tokens_per_s"]
    return result


KEYS = ("tokens_per_s", "step_ms", "mean_step_ms", "peak_rss_mb", "step_rss_mb")


def _summary(rows, first):
    def ratio(key):  # the median of the per-round ratios to the first variant
        return statistics.median(b[key] / a[key] for a, b in zip(first, rows))

    summary = {key: statistics.median(r[key] for r in rows) for key in KEYS}
    summary.update({f"{key}_runs": [r[key] for r in rows] for key in KEYS},
                   params=rows[0]["params"], trainable=rows[0]["trainable_params"],
                   memory_ratio=ratio("peak_rss_mb"), step_memory_ratio=ratio("step_rss_mb"),
                   speed_ratio=ratio("tokens_per_s"))
    return summary


def parse_variant(text, config):
    """'model.remat=block train.batch_size=2' -> config flags; UserError if malformed (a
    key `config` does not have)."""
    overrides = text.split()
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not value or section not in config or name not in config[section]:
            raise UserError(f"--variant={text!r}: {item!r} is not a config override; write "
                            "section.key=value items separated by spaces, e.g. "
                            "--variant='model.remat=block train.batch_size=2'.")
    return [f"--config.{item}" for item in overrides]


def named_variants(texts, optimizers, config):
    """{name: config flags} of --variant texts and --optimizers names; UserError for an
    optimizer tfllm does not have."""
    from tfllm.optim import OPTIMIZERS

    for name in optimizers:
        if name not in OPTIMIZERS:
            raise UserError(f"--optimizers: {name!r} is not an optimizer; use some of "
                            f"{', '.join(OPTIMIZERS)}.")
    texts = [*texts, *(f"train.optimizer={name}" for name in optimizers)]
    return {text or "(the config)": parse_variant(text, config) for text in texts}


def finetuning_variants(rank, targets, quantizations=()):
    """Full fine-tuning and LoRA (rank `rank` on `targets`) of a config's model, and LoRA on
    a base quantized each way of `quantizations` (train.base_quantization)."""
    lora = [f"--config.train.lora_rank={rank}", f"--config.train.lora_targets={targets}"]
    return {"full": [], "lora": lora,
            **{f"lora_{q}": [*lora, f"--config.train.base_quantization={q}"]
               for q in quantizations}}
