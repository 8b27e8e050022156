#!/usr/bin/env bash
# Fine-tuning a pretrained model against training the same model from scratch, on a corpus
# it was not pretrained on (docs/finetuning.md):
#   1. pretrain the default GPT (byte-level) on the bundled Tiny Shakespeare,
#   2. export it with --format=hf and import it again with --init_from=hf:,
#   3. adapt it to CORPUS (full fine-tuning, and LoRA rank 8 on attention+MLP),
#   4. train the same model from scratch on CORPUS for the same steps.
# Each run's validation curve is in its metrics.jsonl; the script prints them side by side.
#   tools/finetune_vs_scratch.sh CORPUS OUT [STEPS]
set -euo pipefail
corpus=$1 out=$2 steps=${3:-300}
common=(--config=default --config.data.tokenizer=byte --config.eval.every=50
        --config.log_every=50 --config.checkpoint.every=50 --config.sample.length=0)
python -m tfllm.train "${common[@]}" --run_dir="$out/pretrained"
python -m tfllm.export --run_dir="$out/pretrained" --format=hf --output="$out/pretrained_hf"
adapt=("${common[@]}" --config.data.source="$corpus" --config.train.steps="$steps"
       --config.train.warmup_steps=30)
python -m tfllm.train "${adapt[@]}" --init_from="hf:$out/pretrained_hf" \
    --config.train.learning_rate=1e-3 --run_dir="$out/finetuned"
python -m tfllm.train "${adapt[@]}" --init_from="hf:$out/pretrained_hf" \
    --config.train.lora_rank=8 --config.train.lora_targets=attention_mlp \
    --config.train.learning_rate=3e-3 --run_dir="$out/lora"
python -m tfllm.train "${adapt[@]}" --run_dir="$out/scratch"
python - "$out" <<'PY'
import json, sys
runs = ("scratch", "finetuned", "lora")
curves = {}
for name in runs:
    with open(f"{sys.argv[1]}/{name}/metrics.jsonl") as f:
        curves[name] = {r["step"]: r["val_loss"] for r in map(json.loads, f) if "val_loss" in r}
print("step  " + "  ".join(f"{name:>9}" for name in runs))
for step in sorted(curves["scratch"]):
    print(f"{step:>4}  " + "  ".join(f"{curves[n].get(step, float('nan')):9.4f}" for n in runs))
PY
