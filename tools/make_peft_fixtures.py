"""Writes tests/fixtures/peft/<name>/: a LoRA adapter made and saved by PEFT itself on one
of the tiny Hugging Face checkpoints of tests/fixtures/hf, and PEFT's logits of the adapted
model for fixed ids:

    /tmp/side/bin/python tools/make_peft_fixtures.py   # torch, transformers, peft

Each adapter's A and B are random (seeded) so that B is not zero and the adapter changes
the logits. tests/adapt/test_peft_format.py puts these adapters on tfllm's import of the same
checkpoint and checks tfllm's logits against PEFT's (reference.npz), and that
`tfllm.export --format=peft` writes back the same tensors and settings.
"""

import os

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.join("tests", "fixtures")  # relative: the adapter's config names its base so
# name: (checkpoint under fixtures/hf, rank, alpha, target modules)
ADAPTERS = {
    "llama_attention_mlp": ("llama", 4, 8.0, ["q_proj", "k_proj", "v_proj", "o_proj",
                                               "gate_proj", "up_proj", "down_proj"]),
    "qwen3_query_value": ("qwen3", 2, 16.0, ["q_proj", "v_proj"]),
}
IDS = np.array([[5, 17, 200, 3, 99, 42, 7, 311, 64, 128, 1, 250]], np.int64)


def make(name, checkpoint, rank, alpha, targets):
    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "hf", checkpoint),
                                                 dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                        bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param_name, param in sorted(model.named_parameters()):
            if "lora_" in param_name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    model.eval()
    out = os.path.join(ROOT, "peft", name)
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model-card template
    with torch.no_grad():
        logits = model(torch.from_numpy(IDS)).logits.numpy()
    np.savez(os.path.join(out, "reference.npz"), ids=IDS, logits=logits)
    print(name, "->", out, sorted(os.listdir(out)))


if __name__ == "__main__":
    os.chdir(REPO)
    for name, spec in ADAPTERS.items():
        make(name, *spec)
