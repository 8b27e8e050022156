"""The per-step overhead of each distribution strategy against one device, each timed in a
fresh process (`tfllm.benchmark --overhead`), and the scaling projection it feeds."""

from tfllm.bench import scaling
from tfllm.bench.variants import time_in_process
from tfllm.errors import UserError

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


def check_overhead_flags(strategies, devices):
    """The device counts of --overhead_devices; UserError for an unknown strategy or a
    count below 1."""
    unknown = set(strategies) - set(OVERHEAD_STRATEGIES)
    if unknown:
        raise UserError(f"--overhead={','.join(strategies)}: {', '.join(sorted(unknown))} "
                        f"unknown; use some of {','.join(OVERHEAD_STRATEGIES)}.")
    try:
        counts = [int(n) for n in devices]
    except ValueError:
        counts = [0]
    if min(counts) < 1:
        raise UserError(f"--overhead_devices={','.join(devices)} must be counts of at least 1, "
                        "e.g. --overhead_devices=1,2,4.")
    return counts


def measure_overhead(config, config_args, strategies, devices, steps, warmup):
    """Each strategy's step against one device's, and the projection from the model's
    size (tfllm.bench.scaling)."""
    counts = check_overhead_flags(strategies, devices)
    rows = []
    for label, count, flags_, workers in overhead_runs(strategies, counts):
        result = time_in_process(config_args, flags_, workers, steps, warmup)
        rows.append({"run": label, "devices": count, **result})
    base = rows[0]
    if "error" in base:
        raise UserError(f"the one-device step failed: {base['error']}")
    for row in rows:
        if "error" not in row:
            row["overhead_ms"] = row["step_ms"]["median"] - base["step_ms"]["median"]
    t = config.train
    projection = scaling.projection_table(config.model, base["params"], base["flops_per_token"],
                                          t.batch_size, t.precision)
    return {"overhead": rows, "projection": projection, "config": base["config"],
            "params": base["params"], "flops_per_token": base["flops_per_token"]}
