"""Prepare a corpus once for training: `python -m tfllm.prepare --data=SRC --output=DIR`.

Reads a text file, folder, glob or TFDS dataset as a stream, trains the tokenizer (char or
byte in one pass, sentencepiece on a bounded sample), tokenizes in parallel worker
processes and writes token shards, the tokenizer and a manifest into DIR. Train on it with
`python -m tfllm.train --config.data.source=DIR`; every command and worker then reads it
through memory maps. Rerunning the same command finishes a stopped run, keeping the
shards already written. docs/data.md.
"""

from absl import flags

from tfllm import cli
from tfllm.data.preparation import SAMPLE_CHARS, SHARD_CHARS

cli.define_path("data", None, "The corpus: a text file, a folder (every file under it), a glob, "
                "or tfds:<name>[/<config>].", required=True)
cli.define_path("output", None, "The directory to write the prepared dataset into.",
                required=True)
flags.DEFINE_enum("tokenizer", "char", ["char", "byte", "sentencepiece"], "The tokenizer.")
cli.define_path("tokenizer_from", None, "Encode with the tokenizer of this prepared dataset, "
                "run directory or Hugging Face checkpoint (hf:PATH) instead of training one "
                "(--tokenizer is then ignored): a new corpus for an existing model, e.g. for "
                "tfllm.evaluate --data or fine-tuning with --init_from=hf:PATH.")
flags.DEFINE_integer("vocab_size", 1000, "sentencepiece vocabulary size.", lower_bound=1)
flags.DEFINE_enum("sp_model_type", "bpe", ["bpe", "unigram"], "sentencepiece model.")
flags.DEFINE_float("val_fraction", 0.1, "The last fraction of the tokens is the validation split.")
flags.DEFINE_integer("workers", None, "Tokenizing processes; default one per core.")
cli.define_path("data_dir", None, "Where the tfds:<name> dataset is prepared; default TFDS's.")
flags.DEFINE_string("split", "train", "The TFDS split to read.")
flags.DEFINE_string("text_key", None, "The TFDS text feature; default the only one.")
flags.DEFINE_bool("skip_non_utf8", False, "Leave out files that are not UTF-8 text instead of "
                  "stopping at the first (they are listed in the manifest).")
flags.DEFINE_integer("shard_chars", SHARD_CHARS, "Characters of text per shard (one worker's task).",
                     lower_bound=1)
flags.DEFINE_integer("sample_chars", SAMPLE_CHARS, "sentencepiece trains on a sample of this many "
                     "characters spread over a larger corpus.", lower_bound=1)
flags.DEFINE_bool("progress", True, "Show a progress line on stderr.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    from tfllm.data.prepared_dataset import is_prepared
    from tfllm.data.preparation import prepare

    tokenizer = FLAGS.tokenizer
    from tfllm.pretrained.checkpoint import check_checkpoint, pretrained_path

    if pretrained_path(FLAGS.tokenizer_from):
        tokenizer = check_checkpoint(pretrained_path(FLAGS.tokenizer_from)).tokenizer()
    elif FLAGS.tokenizer_from:
        from tfllm.tokenizers import load_tokenizer

        try:
            tokenizer = load_tokenizer(FLAGS.tokenizer_from)
        except FileNotFoundError:
            raise cli.UserError(f"--tokenizer_from={FLAGS.tokenizer_from} holds no tokenizer; pass "
                                "a prepared dataset or a run directory.") from None
    was_prepared = is_prepared(FLAGS.output)
    try:
        dataset = prepare(FLAGS.data, FLAGS.output, tokenizer, FLAGS.vocab_size,
                          FLAGS.sp_model_type, FLAGS.val_fraction, FLAGS.workers, FLAGS.data_dir,
                          FLAGS.split, FLAGS.text_key, FLAGS.skip_non_utf8, FLAGS.shard_chars,
                          FLAGS.sample_chars, progress=FLAGS.progress)
    except KeyboardInterrupt:
        raise cli.Interrupted("interrupted; rerun the same command to finish: the shards "
                              "already written are kept.") from None
    if was_prepared:
        print(f"already prepared: {dataset.describe()}")


if __name__ == "__main__":
    cli.run(main)
