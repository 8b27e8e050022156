"""Choosing where training runs: tf.distribute strategies and DTensor meshes by name.

    auto          TPU if one is configured (TPU_NAME), else every GPU (mirrored) or the
                  logical CPUs (mirrored when --cpu_devices > 1), else one device
    one_device    the first GPU, else the CPU
    mirrored      synchronous data parallelism over the local GPUs (or logical CPUs)
    multi_worker  synchronous data parallelism over the workers of TF_CONFIG
    tpu           TPUStrategy over TPUClusterResolver (TPU_NAME, or a TPU VM's own TPU)
    dtensor       a DTensor mesh (--mesh=batch:2,model:2): data parallel over `batch`,
                  the Transformer's heads and MLP units split over `model`

Every strategy keeps the same global batch (train.batch_size, split across replicas) and
the same loss (the mean over the global batch's tokens), so a config trains the same
model under any of them.
"""

import os

import tensorflow as tf

from tfllm.errors import UserError
from tfllm.distribute.placement import (MESH_AXES, STRATEGIES, check_strategy,  # noqa: F401
                                      mesh_sizes)


def split_cpu(num_devices):
    """Splits the host CPU into `num_devices` logical devices (before TensorFlow starts
    its runtime), so mirrored and DTensor runs can be tried on one machine."""
    if num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != num_devices:
            raise UserError(f"the CPU is already split into {existing} devices in this process; "
                            f"cannot make {num_devices}.") from None


def make_strategy(name, cpu_devices=0, mesh=None):
    """The strategy called `name`, on `cpu_devices` logical CPUs if > 1."""
    check_strategy(name, mesh)
    split_cpu(cpu_devices)
    if name == "auto":
        if os.environ.get("TPU_NAME"):
            name = "tpu"
        elif os.environ.get("TF_CONFIG"):
            name = "multi_worker"
    # Multi-worker and TPU strategies configure the runtime: nothing may start it before.
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME", "local"))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if name == "auto":
        if len(gpus) > 1 or len(cpus) > 1:
            name = "mirrored"
        else:
            return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else cpus[0])
    if name == "mirrored":
        devices = [d.name for d in gpus] or cpus
        return tf.distribute.MirroredStrategy(devices)
    raise UserError("--strategy=dtensor makes a mesh, not a strategy: use parse_mesh.")


def check_batch(strategy, batch_size, grad_accum_steps=1, key="train.batch_size", replicas=None):
    """Raises UserError unless the global batch splits evenly across replicas (the
    strategy's, or `replicas`) and micro-batches."""
    replicas = replicas or strategy.num_replicas_in_sync
    if batch_size % (replicas * grad_accum_steps):
        parts = f"{replicas} replicas" + (f" x {grad_accum_steps} micro-batches"
                                          if grad_accum_steps > 1 else "")
        raise UserError(f"{key}={batch_size} does not split across {parts}; use a multiple of "
                        f"{replicas * grad_accum_steps} (--config.{key}=...).")


def distribute_dataset(dataset_fn, batch_size, strategy=None, mesh=None):
    """`dataset_fn(input_context)` as the step consumes it: the plain dataset on one
    device; under a strategy its per-replica split (each replica its slice of every
    global batch, through the input context: tfllm.data.train_dataset); on a mesh a
    DTensorDataset of the same global batches split over the `batch` axis."""
    if mesh is not None:
        from tensorflow.experimental import dtensor

        dataset = dataset_fn(None).unbatch()
        rank1 = dtensor.Layout.batch_sharded(mesh, "batch", rank=2)
        layouts = tuple(rank1 for _ in dataset.element_spec)
        return dtensor.DTensorDataset(dataset, mesh=mesh, layouts=layouts,
                                      global_batch_size=batch_size, batch_dim="batch")
    strategy = strategy or tf.distribute.get_strategy()
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return dataset_fn(None)
    return strategy.distribute_datasets_from_function(dataset_fn)


def is_chief(strategy):
    """Whether this process writes the run's checkpoints and metrics (TensorFlow's rule:
    the chief, or worker 0 when the cluster has no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not in_multi_worker_mode(strategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (
        task_type == "worker" and task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def in_multi_worker_mode(strategy):
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def barrier(strategy):
    """Returns once every worker of a multi-worker job has reached it (a one-number
    all-reduce); at once elsewhere. At the end of a run, so that no worker exits while
    the chief still writes its output: the coordination service reads an early exit as
    a crashed task and logs an abort."""
    if in_multi_worker_mode(strategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)),
                        axis=None)


def worker_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{resolver.task_type}_{resolver.task_id}" if resolver is not None else "local"


def parse_mesh(spec, cpu_devices=0):
    """A DTensor mesh from `batch:2,model:2` over this machine's GPUs (or logical CPUs).

    Axes are `batch` (data parallel) and `model` (tensor parallel); a missing axis has
    size 1. The mesh must use every device."""
    from tensorflow.experimental import dtensor

    sizes = mesh_sizes(spec)
    split_cpu(cpu_devices)
    device_type = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    devices = tf.config.list_logical_devices(device_type)
    total = sizes.get("batch", 1) * sizes.get("model", 1)
    if total != len(devices):
        raise UserError(f"--mesh={spec} has {total} devices but this process has {len(devices)} "
                        f"{device_type} devices; make the axes multiply to {len(devices)}"
                        + (" or pass --cpu_devices=" + str(total) if device_type == "CPU" else "") + ".")
    dims = [(axis, sizes.get(axis, 1)) for axis in MESH_AXES]
    return dtensor.create_mesh(dims, device_type=device_type)


def shard_model(model, mesh):
    """A copy of `model` whose variables are DTensors laid out by `model.layout_map(mesh)`,
    holding `model`'s weights (so a sharded run starts where a single-device one does)."""
    from tensorflow.experimental import dtensor

    from tfllm._keras import map_layouts

    if not hasattr(model, "layout_map"):
        raise UserError(f"a {type(model).__name__} has no DTensor layouts; --strategy=dtensor "
                        "splits the GPT (use mirrored or multi_worker for recurrent models).")
    try:
        layouts = model.layout_map(mesh)
    except ValueError as e:
        raise UserError(str(e)) from None
    with layouts.scope():
        sharded = type(model).from_config(model.get_config())
    map_layouts(sharded, layouts)
    for target, source in zip(sharded.variables, model.variables):
        value = dtensor.copy_to_mesh(source, dtensor.Layout.replicated(mesh, len(source.shape)))
        target.assign(dtensor.relayout(value, dtensor.fetch_layout(target)))
    return sharded


def replicated_variable(mesh, value, name):
    """A scalar or small tf.Variable replicated on every device of the mesh."""
    from tensorflow.experimental import dtensor

    value = tf.constant(value)
    return dtensor.DVariable(dtensor.copy_to_mesh(
        value, dtensor.Layout.replicated(mesh, len(value.shape))), name=name, trainable=False)


def gather_model(sharded, mesh):
    """A one-device copy of a sharded model, holding its whole weights (for sampling)."""
    from tensorflow.experimental import dtensor

    def whole(variable):
        value = tf.convert_to_tensor(variable)
        return dtensor.unpack(dtensor.relayout(
            value, dtensor.Layout.replicated(mesh, len(value.shape))))[0].numpy()

    model = type(sharded).from_config(sharded.get_config())
    model.set_weights([whole(v) for v in sharded.variables])
    return model
