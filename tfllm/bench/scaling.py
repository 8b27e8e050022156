"""Bytes a strategy exchanges per training step, and what they mean on real interconnects.

Counted per device and per step, for the collectives each strategy runs (ring algorithms,
which NCCL, TPU ICI and TensorFlow's CPU collectives use or match in bytes):

- data parallel over n replicas (mirrored, multi_worker, tpu, DTensor `batch` axis): one
  all-reduce of the float32 gradients, 2(n-1)/n x 4 bytes x parameters sent per device;
- tensor parallel over m devices (DTensor `model` axis, heads and MLP units split as in
  Megatron-LM): per block two all-reduces of the (b, T, D) activations forward and two
  backward, plus gathering the width-split embedding output (forward) and its gradient
  (backward), each 2(m-1)/m (all-reduce) or (m-1)/m (gather) x its bytes; the batch
  axis then all-reduces only each device's 1/m of the gradients.

The projection (`project`) is a model, not a measurement: step compute from the FLOPs
count (the MFU convention of tfllm.bench.mfu) at an assumed MFU of the target's
datasheet peak, and communication at its datasheet link bandwidth plus a per-hop latency.
"""

import math

ACTIVATION_BYTES = {"float32": 4, "mixed_bfloat16": 2, "mixed_float16": 2}

# Datasheet figures (bf16 dense peak per device; link bandwidth one way per device).
TARGETS = {
    "8x A100 SXM, NVLink": dict(
        devices=8, peak_flops=312e12, link_bytes_per_s=300e9, hop_latency_s=5e-6,
        source="NVIDIA A100 datasheet: 312 TFLOP/s bf16 dense, NVLink 600 GB/s bidirectional"),
    "TPU v5e-16 slice (4x4)": dict(
        devices=16, peak_flops=197e12, link_bytes_per_s=200e9, hop_latency_s=5e-6,
        source="cloud.google.com/tpu/docs/v5e: 197 TFLOP/s bf16, ICI 400 GB/s bidirectional "
               "per chip"),
}


def exchanged_bytes(params, batch_size, seq_len, width, num_layers, replicas=1,
                    model_devices=1, precision="float32"):
    """Bytes each device sends per step: {"gradients": ..., "activations": ..., "total": ...}.

    Args:
        params: trainable parameters of the model.
        batch_size, seq_len: the global batch.
        width, num_layers: the Transformer's D and L (for the tensor-parallel activations).
        replicas: data-parallel replicas (the mesh's batch axis).
        model_devices: tensor-parallel devices (the mesh's model axis).
        precision: train.precision (activations travel in the compute dtype).
    """
    n, m = replicas, model_devices
    gradients = 2 * (n - 1) / n * 4 * params / m
    activations = 0.0
    if m > 1:
        block = (batch_size // n) * seq_len * width * ACTIVATION_BYTES[precision]
        activations = num_layers * 4 * 2 * (m - 1) / m * block + 2 * (m - 1) / m * block
    return {"gradients": gradients, "activations": activations,
            "total": gradients + activations}


def collective_steps(replicas, model_devices, num_layers):
    """Ring hops per step (each pays the link latency): 2(n-1) per all-reduce."""
    hops = 2 * (replicas - 1) if replicas > 1 else 0
    if model_devices > 1:
        hops += (4 * num_layers * 2 + 2) * (model_devices - 1)
    return hops


def project(flops_per_step, bytes_per_device, hops, devices, peak_flops, link_bytes_per_s,
            hop_latency_s, mfu=0.4, **unused):
    """Step time and scaling efficiency of one device's share of the work on a target.

    Returns {"compute_s", "comm_s", "efficiency_no_overlap", "efficiency_overlap"}: the
    share of ideal (compute-only) speed with communication after the backward pass
    (no overlap) and fully hidden behind it (overlap, as gradient all-reduce bucketing
    achieves at best)."""
    compute = flops_per_step / devices / (peak_flops * mfu)
    comm = bytes_per_device / link_bytes_per_s + hops * hop_latency_s
    return {"compute_s": compute, "comm_s": comm,
            "efficiency_no_overlap": compute / (compute + comm),
            "efficiency_overlap": compute / max(compute, comm)}


def projection_table(model_cfg, params, flops_per_token, batch_per_device, precision,
                     mfu=0.4):
    """Rows of the scaling projection of a model for every TARGETS entry: weak scaling
    (each data-parallel replica keeps `batch_per_device` sequences), pure data parallel
    and, for the GPT, tensor parallel over 2 devices x data parallel over the rest."""
    rows = []
    for name, target in TARGETS.items():
        devices = target["devices"]
        layouts = [(devices, 1)]
        if model_cfg.name == "gpt" and devices > 2:
            layouts.append((devices // 2, 2))
        for replicas, model_devices in layouts:
            batch = batch_per_device * replicas
            seq_len = model_cfg.max_length
            sent = exchanged_bytes(params, batch, seq_len, model_cfg.hidden_dim,
                                   model_cfg.num_layers, replicas, model_devices, precision)
            hops = collective_steps(replicas, model_devices, model_cfg.num_layers)
            p = project(flops_per_token * batch * seq_len, sent["total"], hops, mfu=mfu,
                        **target)
            rows.append({"target": name, "replicas": replicas, "model_devices": model_devices,
                         "global_batch": batch, "bytes_per_device": sent["total"],
                         "hops": hops, **p})
    return rows


def format_bytes(count):
    if count <= 0:
        return "0 B"
    unit = min(int(math.log(count, 1024)), 3)
    return f"{count / 1024 ** unit:.1f} {['B', 'KiB', 'MiB', 'GiB'][unit]}"


def format_projection(rows, mfu=0.4):
    """Report lines of `projection_table` rows."""
    lines = [f"projection (weak scaling, assumed {100 * mfu:.0f}% MFU; tfllm.bench.scaling):",
             f"{'target':<24} {'layout':>16} {'compute':>10} {'comm':>10} {'sent/device':>12} "
             f"{'efficiency':>13}"]
    for row in rows:
        layout = f"{row['replicas']}x data" + (f", {row['model_devices']}x model"
                                                if row["model_devices"] > 1 else "")
        lines.append(f"{row['target']:<24} {layout:>16} {1e6 * row['compute_s']:8.1f}us "
                     f"{1e6 * row['comm_s']:8.1f}us {format_bytes(row['bytes_per_device']):>12} "
                     f"{100 * row['efficiency_no_overlap']:5.1f}-{100 * row['efficiency_overlap']:.1f}%")
    lines += [f"  {name}: {target['source']}" for name, target in TARGETS.items()]
    return lines
