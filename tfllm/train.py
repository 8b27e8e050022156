"""Train a language model: `python -m tfllm.train [--config=NAME|FILE] [--config.x.y=V] [--run_dir=DIR]`.

With no flags it trains the default char-level GPT on the bundled Tiny Shakespeare corpus
into runs/default. Rerunning the same command on the same run directory resumes it.
"""

from absl import flags

from tfllm import cli

cli.define_config_flag(
    "default", "Config file (or the name of a packaged config: default, lstm, ...). Override "
    "keys with --config.<section>.<key>=<value>; configs/base.py lists every key.")
cli.define_path("run_dir", None, "Run directory; default runs/<config name>. An existing run "
                "directory is resumed.")
cli.define_path("init_from", None, "Start from the weights of this run directory or "
                "checkpoint (fine-tuning), with its tokenizer; hf:PATH imports a Hugging Face "
                "checkpoint directory (gpt2, llama, mistral, qwen2, qwen3; docs/finetuning.md).")
flags.DEFINE_string("strategy", "auto", "Where to train: auto, one_device, mirrored, "
                    "multi_worker (TF_CONFIG), tpu or dtensor (docs/distributed.md).")
flags.DEFINE_string("mesh", None, "DTensor mesh for --strategy=dtensor, e.g. batch:2,model:2.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to try "
                     "mirrored or DTensor on one machine); 0 = leave it whole.", lower_bound=0)
flags.DEFINE_integer("qat_start_step", None, "Switch to int8 quantization-aware training at "
                     "this step (sets --config.train.qat_start_step; docs/quantization.md).")
flags.DEFINE_float("prune_sparsity", None, "Magnitude-prune each kernel to this fraction of zeros "
                   "(sets --config.train.prune_sparsity; schedule: --config.train.prune_start_step, "
                   "prune_end_step, prune_every; docs/quantization.md).")
cli.define_path("compilation_cache", "", "Directory to keep XLA-compiled steps in, so a rerun "
                "of the same config skips compiling (docs/speedrun.md); empty = off.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    import os

    from tfllm.config import settle_precision_for_strategy, validate

    settle_precision_for_strategy(FLAGS.config, FLAGS.strategy)
    if FLAGS.qat_start_step is not None:
        FLAGS.config.train.qat_start_step = FLAGS.qat_start_step
    if FLAGS.prune_sparsity is not None:
        FLAGS.config.train.prune_sparsity = FLAGS.prune_sparsity
    config = validate(FLAGS.config)
    config_name = cli.config_name()
    run_dir = FLAGS.run_dir or os.path.join("runs", config_name)
    cli.use_compilation_cache(FLAGS.compilation_cache)
    from tfllm.data.sources import check_source
    from tfllm.runs.run_directory import check_writable, resolve_init_from

    # What a user can get wrong is checked before TensorFlow loads (seconds).
    check_writable(run_dir)
    from tfllm.pretrained.checkpoint import pretrained_path

    if FLAGS.init_from and not pretrained_path(FLAGS.init_from):
        resolve_init_from(FLAGS.init_from)  # a checkpoint's: check_before_training below
    elif FLAGS.init_from:
        _check_no_architecture_flags(FLAGS.init_from)
    check_source(config.data)
    from tfllm.training.preflight import check_before_training

    check_before_training(config, run_dir, FLAGS.init_from, FLAGS.strategy, FLAGS.mesh)
    from tfllm.distribute import distribution  # TensorFlow
    from tfllm.training import Trainer  # TensorFlow loads once the input is valid

    strategy = mesh = None
    if FLAGS.strategy == "dtensor":
        mesh = distribution.parse_mesh(FLAGS.mesh, FLAGS.cpu_devices)  # fits: preflight
    else:
        strategy = distribution.make_strategy(FLAGS.strategy, FLAGS.cpu_devices, FLAGS.mesh)
    # The flags' config (validated again, to the same values): the Trainer's start-up line
    # says why train.precision=auto chose what it did.
    summary = Trainer(FLAGS.config, run_dir, init_from=FLAGS.init_from, strategy=strategy,
                      mesh=mesh).train()
    if summary["final_val_loss"] is not None:
        print(f"done: step {summary['step']}, val_loss {summary['final_val_loss']:.4f}, "
              f"best {summary['best_val_loss']:.4f}; run directory {run_dir}")


def _check_no_architecture_flags(init_from):
    """UserError for a --config.model.<key> flag that a Hugging Face checkpoint's
    architecture would replace (only its RUN_MODEL_KEYS are the run's to set)."""
    import sys

    from tfllm.pretrained.checkpoint import RUN_MODEL_KEYS

    for arg in sys.argv[1:]:
        key = arg.split("=", 1)[0][len("--config.model."):]
        if arg.startswith("--config.model.") and key not in RUN_MODEL_KEYS:
            raise cli.UserError(f"--config.model.{key} would be replaced by the architecture of "
                                f"--init_from={init_from}; drop it (a run from a checkpoint sets "
                                f"only model.{', model.'.join(RUN_MODEL_KEYS)}).")


if __name__ == "__main__":
    cli.run(main)
