"""A run directory: resolved config, tokenizer, token cache, checkpoints and metrics.

    run_dir/
      config.json        the resolved config (rebuilds the model with the checkpoint alone)
      tokenizer.json     (+ sentencepiece.model)
      data/              the corpus prepared by tfllm.prepare's code (not when data.source
                         is a prepared dataset: that is read where it is)
      checkpoints/       the last `checkpoint.keep` training states
      best/              the state with the best validation loss
      metrics.jsonl      one record per log step
      tensorboard/
      run.json           what the run was started from (--init_from)
      .lock              held by the tfllm.train process training the run
"""

import json
import os
import re

from ml_collections import ConfigDict

from tfllm.data.sources import RUN_DATA_DIR
from tfllm.errors import UserError
from tfllm.files import DirectoryLock, check_writable, write_json  # noqa: F401  (re-exported)
from tfllm.tokenizers import load_tokenizer

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
LOCK_FILE = DirectoryLock.FILE
DATA_DIR = RUN_DATA_DIR


def _read_json(run_dir, name):
    """The JSON file `name` of a run directory, or None if it has none."""
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_config(run_dir):
    """The resolved config saved in `run_dir`, upgraded to this tfllm's keys
    (tfllm.config.upgrade), or None if it holds no run."""
    from tfllm.config import upgrade

    config = _read_json(run_dir, CONFIG_FILE)
    if config is not None and not isinstance(config, dict):
        raise UserError(f"{os.path.join(run_dir, CONFIG_FILE)} is not a tfllm config (not a "
                        "JSON object); pass the --run_dir of a training run.")
    return None if config is None else ConfigDict(upgrade(config))


def load_run_file(run_dir):
    """run.json of a run directory ({} for runs older than it)."""
    return _read_json(run_dir, RUN_FILE) or {}


def _exists(path):
    """os.path.exists, or TensorFlow's file system for a URL (gs://...)."""
    if "://" not in path:
        return os.path.exists(path)
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def latest_checkpoint(path):
    """The newest checkpoint in a run directory (or the path itself if it is a checkpoint
    prefix), or None. Reads the CheckpointManager's `checkpoint` file without TensorFlow
    (a command checks its input before paying for TensorFlow's import)."""
    if "://" in path:
        import tensorflow as tf

        found = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
        return found if found or not tf.io.gfile.exists(path + ".index") else path
    if not os.path.isdir(path):
        return path if os.path.exists(path + ".index") else None
    directory = os.path.join(path, "checkpoints")
    try:
        with open(os.path.join(directory, "checkpoint")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model_checkpoint_path":
            prefix = os.path.join(directory, value.strip().strip('"'))
            return prefix if os.path.exists(prefix + ".index") else None
    return None


def remove_partial_saves(run_dir):
    """Removes what a checkpoint save that failed midway (a full disk) left: TensorFlow
    writes a save into `<prefix>_temp` and renames it when complete."""
    import shutil

    for sub in ("checkpoints", "best"):
        directory = os.path.join(run_dir, sub)
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            if name.endswith("_temp"):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class RunLock(DirectoryLock):
    """An exclusive lock on a run directory for the life of a training process
    (`.lock`, released however the process ends). A second process is refused in one line
    naming the first. Readers (evaluate, generate, export) take no lock."""

    def __init__(self, run_dir):
        super().__init__(run_dir, "tfllm.train", "is being trained by",
                         "wait for it to finish (or stop it), or pass another --run_dir")


def resolve_init_from(path):
    """The checkpoint prefix `--init_from` names: a run directory's newest checkpoint, or
    a checkpoint prefix as it is. Raises UserError, naming the flag, when there is none."""
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, CONFIG_FILE)):
            raise UserError(f"--init_from={path} holds no tfllm run (no {CONFIG_FILE}); pass a "
                            "run directory of tfllm.train or a checkpoint prefix.")
        if _is_hf_checkpoint(path):
            raise UserError(f"--init_from={path} is a Hugging Face checkpoint, not a tfllm run; "
                            f"pass --init_from=hf:{path}.")
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise UserError(f"--init_from={path} has no checkpoint yet; pass a trained run "
                            "directory or a checkpoint prefix.")
        return checkpoint
    return checkpoint_prefix(path, "--init_from")


def _is_hf_checkpoint(path):
    """Whether a directory's config.json is a Hugging Face model config (model_type), not a
    tfllm run's."""
    config = _read_json(path, CONFIG_FILE)
    return isinstance(config, dict) and "model_type" in config and "train" not in config


def run_of_checkpoint(prefix):
    """The run directory a checkpoint prefix (run/checkpoints/ckpt-N, run/best/ckpt-N)
    belongs to."""
    return os.path.dirname(os.path.dirname(os.path.abspath(prefix)))


def checkpoint_prefix(path, flag):
    """`path` if it is a checkpoint prefix (path.index exists); else UserError naming
    `flag`, with the prefixes that do exist beside it."""
    if _exists(path + ".index"):
        return path
    if os.path.isdir(path):
        raise UserError(f"{flag}={path} is a directory; pass a checkpoint prefix such as "
                        f"{os.path.join(path, 'ckpt-200')} (the files ckpt-200.index and "
                        "ckpt-200.data-*), or a run directory where one is expected.")
    directory = os.path.dirname(path) or "."
    if not os.path.exists(directory):
        raise UserError(f"{flag}={path} does not exist; pass a run directory of tfllm.train or "
                        "a checkpoint prefix such as RUN/checkpoints/ckpt-200.")
    found = sorted(name[:-len(".index")] for name in os.listdir(directory)
                   if name.endswith(".index"))
    there = f"; {directory} holds {', '.join(found)}" if found else ""
    raise UserError(f"{flag}={path}: no checkpoint there (no {os.path.basename(path)}.index"
                    f"{there}); pass a run directory of tfllm.train or a checkpoint prefix such "
                    "as RUN/checkpoints/ckpt-200.")


def describe_model(model_cfg, vocab_size=None):
    """A few words for the model a config's `model` section builds, for error messages."""
    m = model_cfg
    if m.name == "recurrent":
        what = f"a {m.num_layers}-layer {m.cell.upper()} of {m.units} units"
    else:
        what = f"a {m.num_layers}-layer GPT of width {m.hidden_dim}"
    return what + (f" over {vocab_size} tokens" if vocab_size else "")


def _checkpoint_side(path):
    """" (what the checkpoint's run trained)" if its config.json is found, else ""."""
    run_dir = run_of_checkpoint(path)
    config = load_config(run_dir)
    if config is None:
        return ""
    try:
        vocab = load_tokenizer(run_dir).vocab_size
    except (OSError, ValueError, KeyError):
        vocab = None
    return f" ({describe_model(config.model, vocab)})"


def _mismatch(error):
    """What a failed restore reported, in a few words."""
    text = " ".join(str(error).split())
    shapes = re.search(r"incompatible tensor with shape (\([^)]*\)) when attempting to restore "
                       r"variable with shape (\([^)]*\)) and name ([^ ]+?)\.? ", text + " ")
    if shapes:
        saved, wanted, name = shapes.groups()
        return f"its {name.split(':')[0]} has shape {saved}, this model's {wanted}"
    unbound = re.search(r"\[<tf\.Variable '([^']+)'", text)
    if unbound:
        return f"it holds no value for this model's {unbound.group(1).split(':')[0]}"
    return text[:200]


def restore_model(model, path, flag, model_cfg=None, vocab_size=None):
    """Restores the weights of `model` from the checkpoint at `path`, strictly: every
    weight of the model must be in the checkpoint, in its shape. Anything else is a
    UserError naming `flag`, both models and the first weight that does not fit.
    Quantization-aware and pruning wrappers are matched first (match_checkpoint)."""
    match_checkpoint(model, path)
    try:
        # read, not restore: restore would also ask for the Checkpoint's own save counter,
        # which a checkpoint written with `write` does not hold.
        import tensorflow as tf

        status = tf.train.Checkpoint(model=model).read(path)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        named = f"{flag}={path}" if flag.startswith("--") else f"{flag} {path}"
        here = f" ({describe_model(model_cfg, vocab_size)})" if model_cfg else ""
        raise UserError(f"{named}{_checkpoint_side(path)} does not fit the run's model{here}: "
                        f"{_mismatch(e)}; pass a checkpoint of the same model and "
                        "tokenizer.") from None
    status.expect_partial()  # the optimizer's and the run's state are not the model's


def load_run(run_dir, checkpoint=None):
    """(config, tokenizer, model) of a trained run, weights restored from its newest
    checkpoint (or `checkpoint`, a prefix the --checkpoint flag gave). For evaluation and
    generation; a LoRA run's model carries its adapters (tfllm.adapt.lora.merge_lora
    folds them in). `run_dir` may also be a pretrained model, `hf:DIR` or `gguf:FILE`,
    used as it is (a config of the default run's with its architecture and context).

    Example:
        >>> config, tokenizer, model = load_run("gguf:SmolLM2-135M-Instruct.Q4_1.gguf")
    """
    config, tokenizer, path = find_run(run_dir, checkpoint)  # a bad run fails before TF
    from tfllm.models import build_model

    if is_pretrained_spec(run_dir):
        from tfllm.pretrained.conversion import from_pretrained

        model, _ = from_pretrained(path, max_length=config.model.max_length)
        return config, tokenizer, model
    model = build_model(config.model, tokenizer.vocab_size)
    from tfllm.adapt.lora import apply_configured_lora

    apply_configured_lora(model, config.train)  # a LoRA run's checkpoints hold its adapters
    restore_weights(model, path, "--checkpoint" if checkpoint else "the checkpoint",
                    config.model, tokenizer.vocab_size)
    return config, tokenizer, model


def is_pretrained_spec(run_dir):
    from tfllm.pretrained.checkpoint import pretrained_path

    return pretrained_path(run_dir) is not None


def find_pretrained(spec, checkpoint=None):
    """(config, tokenizer, checkpoint path) of a pretrained model (`hf:DIR`, `gguf:FILE`)
    used without a run: the default config with the checkpoint's architecture, tokenizer
    and context. No TensorFlow."""
    from tfllm.configs import default
    from tfllm.pretrained.checkpoint import adopt_pretrained, check_checkpoint, pretrained_path

    if checkpoint:
        raise UserError(f"--checkpoint names a checkpoint of a run; {spec} is a pretrained "
                        "model: drop --checkpoint.")
    path = pretrained_path(spec)
    pretrained = check_checkpoint(path)
    config, _ = adopt_pretrained(default.get_config(), pretrained)
    with config.unlocked():
        config.model.max_length = pretrained.context
        # Evaluated in windows of at most EVAL_WINDOW tokens (the checkpoint's context,
        # 8,192 for SmolLM2, would hold a gigabyte of logits per window).
        config.eval.seq_len = min(pretrained.context, EVAL_WINDOW)
        config.train.update(lora_rank=0, teacher="")
    return config, pretrained.tokenizer(), path


EVAL_WINDOW = 1024


def find_run(run_dir, checkpoint=None):
    """(config, tokenizer, checkpoint prefix) of a trained run, without TensorFlow: what
    `load_run` restores. Raises UserError when there is no run or no checkpoint. A
    pretrained spec (`hf:DIR`, `gguf:FILE`) gives find_pretrained's."""
    if is_pretrained_spec(run_dir):
        return find_pretrained(run_dir, checkpoint)
    config = load_config(run_dir)
    if config is None:
        raise UserError(f"{run_dir} holds no tfllm run (no {CONFIG_FILE}); pass the --run_dir "
                        "of a training run.")
    path = checkpoint_prefix(checkpoint, "--checkpoint") if checkpoint else latest_checkpoint(run_dir)
    if path is None:
        raise UserError(f"{run_dir} has no checkpoint yet; train it longer with tfllm.train "
                        "(checkpoints are saved every checkpoint.every steps).")
    return config, load_tokenizer(run_dir), path


def match_checkpoint(model, path):
    """Makes `model` quantization-aware, or wraps it for pruning, when the checkpoint at
    `path` was saved so, so that restoring finds every variable (tensorflow-model-
    optimization's wrappers load only into wrappers). Its quantize wrappers keep an
    `optimizer_step` variable, its pruning wrappers a `pruning_step`."""
    import tensorflow as tf

    names = [name for name, _ in tf.train.list_variables(path)]
    if any("/optimizer_step/" in name for name in names):
        from tfllm.compression.qat import quantize_built

        quantize_built(model)
    if any("/pruning_step/" in name for name in names):
        from tfllm.compression.pruning import prune_built

        prune_built(model)


def restore_weights(model, path, flag="the checkpoint", model_cfg=None, vocab_size=None):
    """Restores a checkpoint's model weights (strictly, see restore_model) for inference
    or as a starting point: a quantization-aware model stays so; a pruned one comes back
    plain, its kernels multiplied by their masks."""
    restore_model(model, path, flag, model_cfg, vocab_size)
    import sys

    pruning = sys.modules.get("tfllm.compression.pruning")
    if pruning is not None:  # else nothing can be wrapped for pruning (its module makes them)
        pruning.strip_pruning(model)
