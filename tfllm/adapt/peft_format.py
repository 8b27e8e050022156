"""LoRA adapters in PEFT's format: `adapter_config.json` + `adapter_model.safetensors`,
which `peft.PeftModel.from_pretrained` puts onto the transformers model of the same base.

Llama, Mistral and Qwen layouts (the architectures `--format=hf` writes for RoPE, RMSNorm
and SwiGLU). PEFT's `lora_A.weight` is (r, in) and `lora_B.weight` (out, r): tfllm's A
(in, r) and B (r, out) transposed, the inputs and outputs flattened in the order the
Hugging Face projections use (heads, then positions within a head), so no reordering is
needed. The scale is the same, alpha / r. GPT-2's fused c_attn has no such one-to-one
counterpart and is refused.

Example:
    >>> save_peft_adapter(model, "export/peft", targets="attention", base="HuggingFaceTB/...")
    >>> load_peft_adapter(other_model, "export/peft")   # the same adapters on another copy
"""

import json
import os

import numpy as np

from tfllm.adapt import LORA_TARGETS
from tfllm.errors import UserError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# tfllm's projection (its role name) -> the module PEFT names under a decoder layer.
MODULES = {"query": "self_attn.q_proj", "key": "self_attn.k_proj", "value": "self_attn.v_proj",
           "attention_output": "self_attn.o_proj", "mlp_in": "mlp.up_proj",
           "mlp_gate": "mlp.gate_proj", "mlp_out": "mlp.down_proj", "lm_head": "lm_head"}
PREFIX = "base_model.model."


def _peft_paths(model):
    """{PEFT module path: the LoRAAdapter there} of a LoRA GPT."""
    from tfllm.layers.lora_adapter import LoRAAdapter

    paths = {}
    for i, block in enumerate(model.blocks):
        for layer in block._flatten_layers(include_self=False):
            if isinstance(layer, LoRAAdapter):
                paths[f"{PREFIX}model.layers.{i}.{MODULES[layer.name]}"] = layer
    if isinstance(getattr(model, "lm_head", None), LoRAAdapter):
        paths[f"{PREFIX}lm_head"] = model.lm_head
    return paths


def _module_names(roles):
    """PEFT's target_modules names ("q_proj", ...) of tfllm projections (role names)."""
    return {MODULES[role].split(".")[-1] for role in roles}


def _target_key(modules):
    """The train.lora_targets whose projections are PEFT's target_modules `modules`."""
    for key, roles in LORA_TARGETS.items():
        if _module_names(roles) == set(modules):
            return key
    raise UserError(f"PEFT target_modules {sorted(modules)} are not one of tfllm's LoRA target "
                    f"sets ({', '.join(LORA_TARGETS)}); tfllm adapts those sets only.")


def peft_tensors(model):
    """{PEFT tensor name: float32 array} of the adapters of a LoRA GPT."""
    tensors = {}
    for path, adapter in _peft_paths(model).items():
        tensors[f"{path}.lora_A.weight"] = np.ascontiguousarray(adapter.lora_a.numpy().T)
        tensors[f"{path}.lora_B.weight"] = np.ascontiguousarray(adapter.lora_b.numpy().T)
    return tensors


def peft_config(model, targets, base):
    """adapter_config.json's settings for the adapters of `model` (`targets` as
    apply_lora took it), on the base model named `base`."""
    adapter = next(iter(_peft_paths(model).values()))
    modules = sorted(_module_names(LORA_TARGETS[targets])
                     - ({"lm_head"} if getattr(model, "lm_head", None) is None else set()))
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base,
            "r": adapter.rank, "lora_alpha": adapter.alpha, "lora_dropout": adapter.dropout,
            "target_modules": modules, "bias": "none", "fan_in_fan_out": False,
            "use_rslora": False, "use_dora": False, "inference_mode": True,
            "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None}


def save_peft_adapter(model, directory, targets, base):
    """Writes the adapters of a LoRA GPT (Llama / Mistral / Qwen layout) into `directory`
    in PEFT's format; returns {file name: bytes}."""
    from tfllm.files import write_json, write_safetensors

    os.makedirs(directory, exist_ok=True)
    write_safetensors(os.path.join(directory, WEIGHTS_FILE), peft_tensors(model),
                      {"format": "pt"})
    write_json(os.path.join(directory, CONFIG_FILE), peft_config(model, targets, base))
    return {name: os.path.getsize(os.path.join(directory, name))
            for name in (CONFIG_FILE, WEIGHTS_FILE)}


def read_peft_config(directory):
    """adapter_config.json of a PEFT LoRA adapter; UserError for what tfllm cannot load."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{directory} holds no {CONFIG_FILE}; pass the directory PEFT's "
                        "save_pretrained wrote.")
    with open(path) as f:
        config = json.load(f)
    unsupported = [key for key in ("use_dora", "use_rslora", "fan_in_fan_out", "rank_pattern",
                                   "alpha_pattern", "modules_to_save") if config.get(key)]
    if config.get("peft_type") != "LORA":
        unsupported.insert(0, f"peft_type {config.get('peft_type')!r}")
    if unsupported:
        raise UserError(f"{path}: tfllm loads plain LoRA adapters (one rank and alpha, no "
                        f"DoRA, rsLoRA, patterns or saved modules); this one has "
                        f"{', '.join(unsupported)}.")
    return config


def load_peft_adapter(model, directory):
    """Puts the LoRA adapters PEFT saved in `directory` onto `model` (the GPT of their base,
    imported from it); returns the adapters."""
    from safetensors import safe_open

    from tfllm.adapt.lora import apply_lora

    config = read_peft_config(directory)
    apply_lora(model, int(config["r"]), float(config["lora_alpha"]),
               _target_key(config["target_modules"]), float(config.get("lora_dropout") or 0.0))
    paths = _peft_paths(model)
    with safe_open(os.path.join(directory, WEIGHTS_FILE), "numpy") as f:
        names = set(f.keys())
        expected = {f"{p}.lora_{x}.weight" for p in paths for x in "AB"}
        if names != expected:
            raise UserError(f"{directory}: its tensors do not match this model's adapters (e.g. "
                            f"{sorted(names ^ expected)[0]}); load it onto its base model.")
        for path, adapter in paths.items():
            adapter.lora_a.assign(f.get_tensor(f"{path}.lora_A.weight").T)
            adapter.lora_b.assign(f.get_tensor(f"{path}.lora_B.weight").T)
    return list(paths.values())
