"""Validation loss of an imported model whose frozen base is float32 or int8, before and
after the same LoRA fine-tune (train.base_quantization; docs/finetuning.md):

    python tools/quantized_base_quality.py gguf:SmolLM2-135M-Instruct.Q4_1.gguf OUT [STEPS]

Scores the same held-out windows (the last 5% of the bundled Tiny Shakespeare, which the runs
also hold out) with the float base and the int8 base (adapters at zero), then trains two
LoRA runs that differ only in train.base_quantization (`python -m tfllm.train`, printed) into
OUT/none and OUT/int8, and scores both again. Prints one JSON object.
"""

import json
import os
import subprocess
import sys

import numpy as np

WINDOW, WINDOWS = 256, 24


def held_out_windows(tokenizer):
    from tfllm.data import DEFAULT_CORPUS

    with open(DEFAULT_CORPUS, encoding="utf-8") as f:
        text = f.read()
    ids = np.asarray(tokenizer.encode(text[int(len(text) * 0.95):]), np.int32)
    starts = np.linspace(0, len(ids) - WINDOW - 1, WINDOWS).astype(int)
    return np.stack([ids[s:s + WINDOW + 1] for s in starts])


def loss(model, windows):
    import tensorflow as tf

    total = 0.0
    for row in windows:
        logits = model(row[None, :-1])
        total += float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            row[None, 1:], logits)))
    return total / len(windows)


def start_losses(spec, windows):
    from tfllm.adapt.lora import apply_lora
    from tfllm.adapt.quantized_base import quantize_base
    from tfllm.runs.run_directory import load_run

    _, _, model = load_run(spec)
    result = {"none": loss(model, windows)}
    apply_lora(model, 8, 16.0, "attention")  # B = 0: the base's function
    quantize_base(model)
    result["int8"] = loss(model, windows)
    return result


def train(spec, out, quantization, steps):
    from tfllm.data import DEFAULT_CORPUS

    cmd = [sys.executable, "-m", "tfllm.train", f"--init_from={spec}",
           f"--run_dir={os.path.join(out, quantization)}", f"--config.data.source={DEFAULT_CORPUS}",
           "--config.train.lora_rank=8", "--config.train.learning_rate=1e-3",
           f"--config.train.base_quantization={quantization}", f"--config.train.steps={steps}",
           "--config.train.batch_size=4", f"--config.eval.every={max(steps // 4, 1)}",
           "--config.eval.max_tokens=16384", "--config.checkpoint.every=1000",
           "--config.log_every=10"]
    print(" ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    with open(os.path.join(out, quantization, "metrics.jsonl")) as f:
        return [(r["step"], r["val_loss"]) for r in map(json.loads, f) if "val_loss" in r]


def main(spec, out, steps=40):
    from tfllm.runs.run_directory import load_run

    _, tokenizer, _ = load_run(spec)
    windows = held_out_windows(tokenizer)
    result = {"windows": f"{WINDOWS} x {WINDOW} tokens", "start": start_losses(spec, windows)}
    curves, after = {}, {}
    for quantization in ("none", "int8"):
        curves[quantization] = train(spec, out, quantization, steps)
        after[quantization] = loss(load_run(os.path.join(out, quantization))[2], windows)
    start = result["start"]
    result.update(curves=curves, after=after,
                  start_ratio=start["int8"] / start["none"], after_ratio=after["int8"] / after["none"])
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
