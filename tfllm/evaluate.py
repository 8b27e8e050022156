"""Evaluate a trained run: `python -m tfllm.evaluate --run_dir=DIR [--data=SOURCE] [--split=val]`.

Prints the loss, perplexity and bits per token over the split (by default the run's own
validation split; with --data, the last data.val_fraction of that corpus, or all of it with
--split=all): every token of it, or at most --max_tokens (default the run's
eval.max_tokens) in windows spread evenly over it. With --tflite=FILE it evaluates an exported TFLite model
(its own window) on the same tokens.
"""

import json

from absl import flags

from tfllm import cli

cli.define_model_flags()
cli.define_path("checkpoint", None, "A checkpoint prefix; default the run's newest.")
cli.define_path("data", None, "Corpus to evaluate on (file, folder, glob, tfds:<name>, or a "
                "dataset tfllm.prepare wrote with the run's tokenizer); default the run's own.")
cli.define_path("tfds_data_dir", None, "Where the --data=tfds:<name> dataset is prepared; "
                "default the run's data.data_dir.")
flags.DEFINE_string("tfds_split", None, "The TFDS split --data=tfds:<name> reads (before "
                    "--split); default the run's data.split.")
flags.DEFINE_string("tfds_text_key", None, "The text feature of --data=tfds:<name>; default the "
                    "run's data.text_key.")
flags.DEFINE_enum("split", "val", ["val", "train", "all"], "Which part of the corpus.")
flags.DEFINE_integer("batch_size", None, "Windows per batch; default the run's "
                     "eval.batch_size, lowered for a large vocabulary as training does.",
                     lower_bound=1)
flags.DEFINE_integer("max_tokens", None, "Score at most this many tokens, in windows spread "
                     "evenly over the split (0 = all); default the run's eval.max_tokens, so "
                     "the loss is the one training logged.", lower_bound=0)
flags.DEFINE_integer("seq_len", 0, "Evaluation window (each starts from an empty context); "
                     "0 = the run's eval.seq_len, else its training context.", lower_bound=0)
cli.define_path("tflite", None, "Evaluate this exported .tflite model (tfllm.export) "
                "in place of the run's checkpoint; the run gives tokenizer and corpus.")
flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    from tfllm.api.evaluation import evaluate_run

    result = evaluate_run(cli.model_spec(), FLAGS.checkpoint, FLAGS.data, FLAGS.split,
                          FLAGS.batch_size, FLAGS.seq_len, FLAGS.tflite, FLAGS.tfds_data_dir,
                          FLAGS.tfds_split, FLAGS.tfds_text_key, FLAGS.max_tokens)
    if FLAGS.json:
        print(json.dumps(result))
    else:
        print(f"loss {result['loss']:.4f} | perplexity {result['perplexity']:.3f} | "
              f"bits/token {result['bits_per_token']:.4f} | {result['tokens']:,} tokens"
              + (f" | kernels {result['kernel_sparsity']:.1%} zero" if "kernel_sparsity" in result
                 else ""))


if __name__ == "__main__":
    cli.run(main)
