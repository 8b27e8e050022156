"""Evaluate a trained run: `python -m tfllm.evaluate --run_dir=DIR [--data=SOURCE] [--split=val]`.

Prints the loss, perplexity and bits per token over every token of the split (by default
the run's own validation split; with --data, the last data.val_fraction of that corpus,
or all of it with --split=all). With --tflite=FILE it evaluates an exported TFLite model
(its own window) on the same tokens.
"""

import json
import math
import os

from absl import flags

from tfllm import cli

cli.define_path("run_dir", None, "Run directory of a training run.", required=True)
cli.define_path("checkpoint", None, "A checkpoint prefix; default the run's newest.")
cli.define_path("data", None, "Corpus to evaluate on (file, folder, glob, tfds:<name>); "
                "default the run's own corpus.")
cli.define_path("tfds_data_dir", None, "Where the --data=tfds:<name> dataset is prepared; "
                "default the run's data.data_dir.")
flags.DEFINE_string("tfds_split", None, "The TFDS split --data=tfds:<name> reads (before "
                    "--split); default the run's data.split.")
flags.DEFINE_string("tfds_text_key", None, "The text feature of --data=tfds:<name>; default the "
                    "run's data.text_key.")
flags.DEFINE_enum("split", "val", ["val", "train", "all"], "Which part of the corpus.")
flags.DEFINE_integer("batch_size", 64, "Windows per batch.", lower_bound=1)
flags.DEFINE_integer("seq_len", 0, "Evaluation window (each starts from an empty context); "
                     "0 = the run's eval.seq_len, else its training context.", lower_bound=0)
cli.define_path("tflite", None, "Evaluate this exported .tflite model (tfllm.export) "
                "in place of the run's checkpoint; the run gives tokenizer and corpus.")
flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
FLAGS = flags.FLAGS


# The flags of this command that set each corpus setting, for error messages.
CORPUS_FLAGS = {"source": "--data", "data_dir": "--tfds_data_dir", "split": "--tfds_split",
                "text_key": "--tfds_text_key"}


def evaluate_run(run_dir, checkpoint=None, data=None, split="val", batch_size=64, seq_len=0,
                 tflite=None, tfds_data_dir=None, tfds_split=None, tfds_text_key=None):
    """{"loss", "perplexity", "bits_per_token", "tokens"} of a run on a split, read in
    windows of `seq_len` tokens (0: the run's own evaluation window, or the TFLite
    model's). With `tflite`, that exported model is evaluated instead of the checkpoint;
    without, "kernel_sparsity" is the fraction of zeros in the kernels pruning prunes.
    A TFDS corpus is read with the run's data settings unless `tfds_*` are given."""
    import numpy as np

    from tfllm.data import TokenStore, eval_dataset, read_configured_corpus
    from tfllm.errors import UserError
    from tfllm.training.run_directory import load_run
    from tfllm.training.training_model import TrainingModel
    from tfllm.training.training_setup import checked_window

    config, tokenizer, model = load_run(run_dir, checkpoint)
    if tflite is not None:
        chunk = _tflite_window(tflite, tokenizer.vocab_size)
        # A recurrent model's file carries its state: it reads the run's own windows.
        if config.model.name != "recurrent":
            seq_len = seq_len or chunk
    window = checked_window(config, seq_len)
    d = config.data
    text = read_configured_corpus(d, data, tfds_data_dir, tfds_split, tfds_text_key, CORPUS_FLAGS)
    try:
        store = TokenStore(tokenizer.encode_to_array(text, np.int32), d.val_fraction)
    except ValueError as e:
        raise UserError(f"the corpus does not fit the run's tokenizer: {e}") from None
    tokens = {"val": store.val, "train": store.train, "all": store.tokens}[split]
    if tflite is not None:
        from tfllm.data.pipeline import eval_windows
        from tfllm.inference.exporting import tflite_loss

        loss = tflite_loss(tflite, *eval_windows(tokens, window, batch_size), batch_size=batch_size)
        return _result(loss, tokens)
    from tfllm.compression.pruning import sparsity

    task = TrainingModel(model)
    task.compile(weighted_metrics=[])
    loss = task.evaluate(eval_dataset(tokens, window, batch_size), verbose=0,
                         return_dict=True)["loss"]
    return {**_result(loss, tokens), "kernel_sparsity": sparsity(model)["pruned_fraction"]}


def _tflite_window(path, vocab_size):
    """The window the TFLite model at `path` reads; UserError unless it is a TFLite model
    whose logits cover exactly the run's `vocab_size` tokens."""
    from tfllm.errors import UserError
    from tfllm.inference.exporting import tflite_interpreter

    if not os.path.isfile(path):
        raise UserError(f"--tflite={path} is not a file; pass a .tflite file written by tfllm.export.")
    try:
        interpreter = tflite_interpreter(path)
    except ValueError as e:
        reason = " ".join(str(e).split()).rstrip(".")
        raise UserError(f"--tflite={path} is not a TFLite model ({reason}); pass a file written by "
                        "tfllm.export --format=tflite.") from None
    scored = int(interpreter.get_signature_runner().get_output_details()["logits"]["shape"][-1])
    if scored != vocab_size:
        raise UserError(f"--tflite={path} scores {scored} tokens, the run's tokenizer has "
                        f"{vocab_size}; pass a model exported from this run "
                        "(tfllm.export --run_dir=RUN --format=tflite).")
    return int(interpreter.get_input_details()[0]["shape_signature"][1])


def _result(loss, tokens):
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
            "bits_per_token": loss / math.log(2), "tokens": int(len(tokens) - 1)}


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    result = evaluate_run(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.data, FLAGS.split,
                          FLAGS.batch_size, FLAGS.seq_len, FLAGS.tflite, FLAGS.tfds_data_dir,
                          FLAGS.tfds_split, FLAGS.tfds_text_key)
    if FLAGS.json:
        print(json.dumps(result))
    else:
        print(f"loss {result['loss']:.4f} | perplexity {result['perplexity']:.3f} | "
              f"bits/token {result['bits_per_token']:.4f} | {result['tokens']:,} tokens"
              + (f" | kernels {result['kernel_sparsity']:.1%} zero" if "kernel_sparsity" in result
                 else ""))


if __name__ == "__main__":
    cli.run(main)
