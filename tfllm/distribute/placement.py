"""Where a run trains, checked before TensorFlow loads: the strategy's name, --mesh,
TF_CONFIG for multi_worker, and whether the model splits over the mesh. tfllm.train
and tfllm.benchmark answer a bad flag in a second; tfllm.distribute.distribution (which
needs TensorFlow) then makes the strategy or mesh and checks what needs the devices."""

import os

from tfllm.errors import UserError
from tfllm.optim import DTENSOR_OPTIMIZERS

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu", "dtensor")
MESH_AXES = ("batch", "model")


def mesh_sizes(spec):
    """{axis: size} of a --mesh such as `batch:2,model:2`; UserError if it is not one."""
    if not spec:
        raise UserError("--strategy=dtensor needs --mesh, e.g. --mesh=batch:2,model:2.")
    sizes = {}
    for part in spec.split(","):
        name, _, size = part.partition(":")
        if name not in MESH_AXES or not size.isdigit() or int(size) < 1 or name in sizes:
            raise UserError(f"--mesh={spec} is not a mesh; write axis:size pairs of the axes "
                            f"{' and '.join(MESH_AXES)}, e.g. --mesh=batch:2,model:2.")
        sizes[name] = int(size)
    return sizes


def check_strategy(name, mesh_spec):
    """UserError for an unknown strategy, a --mesh without dtensor, or multi_worker
    without TF_CONFIG."""
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}.")
    if mesh_spec and name != "dtensor":
        raise UserError(f"--mesh is for --strategy=dtensor, not {name}; drop it or use dtensor.")
    if name == "multi_worker" and not os.environ.get("TF_CONFIG"):
        raise UserError("--strategy=multi_worker needs TF_CONFIG (the cluster and this "
                        "worker's task); tools/launch_workers.py sets it for local workers.")


def check_mesh_fits(model_cfg, model_parts):
    """UserError unless the config's model splits over a mesh whose model axis has
    `model_parts` devices."""
    from tfllm.models.sizes import check_model_axis

    if model_cfg.name != "gpt":
        raise UserError("--strategy=dtensor splits the GPT; for a recurrent model use "
                        "--strategy=mirrored or multi_worker.")
    if model_cfg.position != "rope":
        raise UserError("on a DTensor mesh the GPT needs --config.model.position=rope (TF 2.21's "
                        "DTensor crashes on the learned position table's lookup).")
    try:
        check_model_axis(model_cfg.to_dict(), model_parts)
    except ValueError as e:
        raise UserError(str(e)) from None


def check_config_on_mesh(config):
    """UserError for what tfllm does not train on a DTensor mesh: every refusal of a mesh
    is here, so each is answered before TensorFlow loads."""
    t = config.train
    if t.optimizer not in DTENSOR_OPTIMIZERS:
        raise UserError(f"train.optimizer={t.optimizer} has no DTensor version; on a mesh use "
                        f"one of {', '.join(DTENSOR_OPTIMIZERS)}, or --strategy=one_device/mirrored.")
    refused = (("quantization-aware training", "qat_start_step=-1", t.qat_start_step >= 0),
               ("pruning", "prune_sparsity=0", t.prune_sparsity > 0),
               ("distillation", "teacher=''", bool(t.teacher)),
               ("activation recomputation", "model.remat=none", config.model.remat != "none"),
               ("LoRA", "lora_rank=0", t.lora_rank > 0),
               ("weight averaging", "ema_decay=0", t.ema_decay > 0),
               ("mixed precision", "precision=float32", t.precision != "float32"),
               ("gradient accumulation", "grad_accum_steps=1", t.grad_accum_steps > 1),
               ("dropout", "model.dropout=0", config.model.dropout > 0))
    for what, off, on in refused:
        if on:
            key = off if off.startswith("model.") else "train." + off
            raise UserError(f"{what} does not run on a DTensor mesh; set {key}, or use "
                            "--strategy=one_device/mirrored.")


def check_placement(name, mesh_spec, config):
    """What the flags --strategy and --mesh ask of `config`, checked without TensorFlow."""
    check_strategy(name, mesh_spec)
    if name == "dtensor":
        check_mesh_fits(config.model, mesh_sizes(mesh_spec).get("model", 1))
        check_config_on_mesh(config)
