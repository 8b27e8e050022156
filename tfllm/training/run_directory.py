"""A run directory: resolved config, tokenizer, token cache, checkpoints and metrics.

    run_dir/
      config.json        the resolved config (rebuilds the model with the checkpoint alone)
      tokenizer.json     (+ sentencepiece.model)
      tokens.npy         the tokenized corpus (+ tokens.npy.json: what it was made from)
      checkpoints/       the last `checkpoint.keep` training states
      best/              the state with the best validation loss
      metrics.jsonl      one record per log step
      tensorboard/
"""

import json
import os
import tempfile

import tensorflow as tf
from ml_collections import ConfigDict

from tfllm.errors import UserError
from tfllm.tokenizers import load_tokenizer

CONFIG_FILE = "config.json"


def check_writable(path, flag="--run_dir", what="run directory"):
    """Raises UserError (naming `what` and the `flag` that set it) unless the directory
    `path` exists or can be created. Tried, not read from permission bits: root passes
    those on /proc or a read-only disk, where making a directory still fails."""
    path_abs = os.path.abspath(path)
    if os.path.exists(path_abs) and not os.path.isdir(path_abs):
        raise UserError(f"{what} {path} is a file; pass a directory as {flag}.")
    parent = path_abs
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    reason = "it is a file"
    if os.path.isdir(parent):
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".tmp-check-", dir=parent))
            return
        except OSError as e:
            reason = e.strerror
    raise UserError(f"{what} {path} cannot be created ({parent} is not a writable directory: "
                    f"{reason}); pass a writable {flag}.")


def write_json(path, data):
    """Writes JSON atomically (a reader never sees half a file)."""
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    os.replace(path + ".tmp", path)


def load_config(run_dir):
    """The resolved config saved in `run_dir`, or None if it holds no run."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return ConfigDict(json.load(f))


def latest_checkpoint(path):
    """The newest checkpoint in a run directory (or the path itself if it is a checkpoint
    prefix), or None."""
    if os.path.isdir(path):
        return tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
    return path if tf.io.gfile.exists(path + ".index") else None


def load_run(run_dir, checkpoint=None):
    """(config, tokenizer, model) of a trained run, weights restored from its newest
    checkpoint (or `checkpoint`). For evaluation and generation."""
    from tfllm.training.model_factory import build_model

    config = load_config(run_dir)
    if config is None:
        raise UserError(f"{run_dir} holds no tfllm run (no {CONFIG_FILE}); pass the --run_dir "
                        "of a training run.")
    path = checkpoint or latest_checkpoint(run_dir)
    if path is None:
        raise UserError(f"{run_dir} has no checkpoint yet; train it longer with tfllm.train "
                        "(checkpoints are saved every checkpoint.every steps).")
    tokenizer = load_tokenizer(run_dir)
    model = build_model(config.model, tokenizer.vocab_size)
    restore_weights(model, path)
    return config, tokenizer, model


def match_checkpoint(model, path):
    """Makes `model` quantization-aware, or wraps it for pruning, when the checkpoint at
    `path` was saved so, so that restoring finds every variable (tensorflow-model-
    optimization's wrappers load only into wrappers). Its quantize wrappers keep an
    `optimizer_step` variable, its pruning wrappers a `pruning_step`."""
    names = [name for name, _ in tf.train.list_variables(path)]
    if any("/optimizer_step/" in name for name in names):
        from tfllm.compression.qat import quantize_built

        quantize_built(model)
    if any("/pruning_step/" in name for name in names):
        from tfllm.compression.pruning import prune_built

        prune_built(model)


def restore_weights(model, path):
    """Restores a checkpoint's model weights for inference or as a starting point: a
    quantization-aware model stays so; a pruned one comes back plain, its kernels
    multiplied by their masks."""
    match_checkpoint(model, path)
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    from tfllm.compression.pruning import strip_pruning

    strip_pruning(model)
