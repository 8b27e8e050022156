"""LoRA fine-tuning of a GPT: adapters put in place of projections, merged back for export.

`apply_lora` freezes every weight of the model and puts a LoRAAdapter in place of each
target projection (tfllm.models.wrapping keeps the very same base variables): only
the adapters are trainable, so only they get gradients and optimizer slots. A checkpoint
of a LoRA run holds the base weights too (a run resumes from it alone); `save_adapter`
writes the adapters alone, with a fingerprint of the base they belong to, and
`load_adapter` puts them onto that base again. `merge_lora` folds the adapters into plain
kernels: every export format then sees an ordinary GPT.

Example:
    >>> apply_lora(model, rank=8, alpha=16, targets="attention")
    >>> task.fit(...)                 # trains the adapters only
    >>> save_adapter(model, "adapter.safetensors")
    >>> merge_lora(model)             # a plain GPT again, adapters folded in
"""

import hashlib
import json

import numpy as np

from tfllm._keras import keras
from tfllm.adapt import LORA_TARGETS as TARGETS
from tfllm.errors import UserError
from tfllm.files import write_safetensors
from tfllm.layers.lora_adapter import LoRAAdapter, kernel_in_axes
from tfllm.models.wrapping import replace_layers

ADAPTER_FILE = "adapter.safetensors"


def _targets(model, targets):
    if targets not in TARGETS:
        raise UserError(f"--config.train.lora_targets={targets!r} is not allowed: use one of "
                        f"{', '.join(TARGETS)}.")
    if not hasattr(model, "blocks"):
        raise UserError(f"LoRA adapts a GPT's projections; {type(model).__name__} has none of "
                        f"{', '.join(TARGETS[targets])} (set train.lora_rank=0).")
    return TARGETS[targets]


def base_fingerprint(model):
    """sha256 of the model's weights other than adapters (shapes and values, in the
    model's order): equal for the same base whatever process built it. For a model whose
    base was quantized, that of the float base it was made from (recorded then:
    apply_configured_lora(..., record_fingerprint=True))."""
    if getattr(model, "float_base_fingerprint", None):
        return model.float_base_fingerprint
    if any(weight.dtype == "int8" for weight in model.weights):
        raise ValueError("an int8 base's fingerprint is its float base's, recorded when it was "
                         "quantized; this model has none recorded.")
    digest = hashlib.sha256()
    for weight in model.weights:
        if "lora_" in weight.name or weight.dtype.is_integer:  # adapters, dropout RNG states
            continue
        value = np.ascontiguousarray(weight.numpy(), dtype=np.float32)
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def apply_lora(model, rank, alpha=16.0, targets="attention", dropout=0.0):
    """Freezes `model` and puts LoRA adapters on its `targets` projections, in place.
    Returns the adapters. UserError for a model without such layers or a rank larger
    than a layer's width."""
    names = _targets(model, targets)
    for layer in model._flatten_layers(include_self=False):
        # Only layers that own weights: a container set untrainable hides its children's
        # trainable weights, the adapters' among them.
        if layer._trainable_weights:
            layer.trainable = False

    adapters = []

    def adapt(layer):
        if isinstance(layer, LoRAAdapter):
            return layer
        if layer.name not in names or not isinstance(
                layer, (keras.layers.Dense, keras.layers.EinsumDense)):
            return None
        in_axes = kernel_in_axes(layer)
        shape = tuple(layer.kernel.shape)
        width = min(int(np.prod(shape[:in_axes])), int(np.prod(shape[in_axes:])))
        if rank > width:
            raise UserError(f"--config.train.lora_rank={rank} is larger than {layer.name}'s "
                            f"width {width}; use at most {width}.")
        adapter = LoRAAdapter(layer, rank, alpha, in_axes, dropout)
        adapters.append(adapter)
        return adapter

    replace_layers(model, adapt)
    if not adapters:
        raise UserError(f"the model has no {', '.join(names)} layers to adapt; choose other "
                        "--config.train.lora_targets or set train.lora_rank=0.")
    return adapters


def apply_configured_lora(model, train, record_fingerprint=False):
    """The adapters a config's train section asks for (train.lora_rank > 0), put on
    `model`, and its frozen base quantized as train.base_quantization says; nothing for
    rank 0. Training and loading a run both build them so. With `record_fingerprint`
    (training: `model` holds its starting weights), a quantized model keeps the fingerprint
    of the float base it was made from (`base_fingerprint`), so the run's adapter file
    loads onto that base."""
    if train.lora_rank:
        apply_lora(model, train.lora_rank, train.lora_alpha, train.lora_targets,
                   train.lora_dropout)
    if train.lora_rank and train.base_quantization != "none":
        from tfllm.adapt.quantized_base import quantize_base

        if record_fingerprint:
            model.float_base_fingerprint = base_fingerprint(model)
        quantize_base(model)


def adapters_of(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, LoRAAdapter)]


def merge_lora(model):
    """Folds every adapter into its base kernel and puts the base back in its place, in
    place: a plain model computing the same function. Returns how many were merged."""

    from tfllm.adapt.quantized_base import dequantize_base

    dequantize_base(model)  # an int8 base (train.base_quantization) as float layers

    def merge(layer):
        if not isinstance(layer, LoRAAdapter):
            return None
        layer.base.kernel.assign(layer.merged_kernel())
        layer.base.trainable = True
        return layer.base

    count = replace_layers(model, merge)
    for layer in model._flatten_layers(include_self=False):
        layer.trainable = True
    return count


def _adapter_paths(model):
    """Each adapter's position in the model ("block_3/attention/query"), for the file."""
    paths = {}

    def walk(layer, prefix):
        for child in layer._flatten_layers(include_self=False, recursive=False):
            path = f"{prefix}{child.name}"
            if isinstance(child, LoRAAdapter):
                paths[path] = child
            else:
                walk(child, path + "/")

    walk(model, "")
    return paths


def save_adapter(model, path, fingerprint, targets):
    """Writes the adapters alone (safetensors, float32) with their settings (`targets`
    as apply_lora took it) and the fingerprint of their base (`base_fingerprint`)."""
    adapters = _adapter_paths(model)
    first = next(iter(adapters.values()))
    tensors = {}
    for name, adapter in adapters.items():
        tensors[f"{name}/lora_a"] = adapter.lora_a.numpy()
        tensors[f"{name}/lora_b"] = adapter.lora_b.numpy()
    metadata = {"format": "tfllm-lora-1", "base_fingerprint": fingerprint,
                "rank": str(first.rank), "alpha": str(first.alpha),
                "dropout": str(first.dropout), "targets": targets,
                "layers": json.dumps(sorted(adapters))}
    write_safetensors(path, tensors, metadata)


def load_adapter(model, path):
    """Puts the adapters of `path` (written by save_adapter) onto `model`, a plain model
    of the base they were trained on; returns the adapters. UserError for another base."""
    from safetensors import safe_open

    with safe_open(path, "numpy") as f:
        metadata = f.metadata() or {}
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    if metadata.get("format") != "tfllm-lora-1":
        raise UserError(f"{path} is not a tfllm LoRA adapter file (written at the end of a run "
                        "with train.lora_rank > 0).")
    if base_fingerprint(model) != metadata["base_fingerprint"]:
        raise UserError(f"{path} adapts another base model (fingerprint "
                        f"{metadata['base_fingerprint'][:12]}, this model's is "
                        f"{base_fingerprint(model)[:12]}); load it onto the model it was "
                        "trained from.")
    layers = set(json.loads(metadata["layers"]))
    apply_lora(model, int(metadata["rank"]), float(metadata["alpha"]), metadata["targets"],
               float(metadata["dropout"]))
    adapters = _adapter_paths(model)
    if set(adapters) != layers:
        raise UserError(f"{path} adapts {len(layers)} layers, this model has "
                        f"{len(adapters)} of them; load it onto the model it was trained from.")
    for name, adapter in adapters.items():
        adapter.lora_a.assign(tensors[f"{name}/lora_a"])
        adapter.lora_b.assign(tensors[f"{name}/lora_b"])
    return list(adapters.values())
