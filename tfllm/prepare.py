"""Prepare a corpus once for training: `python -m tfllm.prepare --data=SRC --output=DIR`.

Reads a text file, folder, glob or TFDS dataset as a stream, trains the tokenizer (char or
byte in one pass, sentencepiece on a bounded sample), tokenizes in parallel worker
processes and writes token shards, the tokenizer and a manifest into DIR. Train on it with
`python -m tfllm.train --config.data.source=DIR`; every command and worker then reads it
through memory maps. Rerunning the same command finishes a stopped run, keeping the
shards already written. docs/data.md.

Chat and instruction data (.jsonl files) is rendered with a chat template and encoded with
its loss mask and example boundaries, with the tokenizer of the model it is for:
`python -m tfllm.prepare --data=chats/ --tokenizer_from=gguf:FILE --output=DIR`; train
with `--init_from=` that model and `--config.data.source=DIR`. docs/chat.md.
"""

from absl import flags

from tfllm import cli
from tfllm.data.chat_preparation import SPLIT_SEED
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
cli.define_path("chat_template", None, "Chat data: the Jinja chat template file; default the "
                "--tokenizer_from checkpoint's or run's own, else ChatML.")
flags.DEFINE_enum("train_on", "assistant", ["assistant", "all"], "Chat data: the loss on the "
                  "answers only, or on every token.")
flags.DEFINE_string("chat_fields", "", "Chat data: other field names, e.g. "
                    "messages=dialog,role=speaker,content=text.")
flags.DEFINE_integer("seed", SPLIT_SEED, "Chat data: the seed of the shuffle choosing the "
                     "validation examples (--val_fraction of them); the default is tfllm.train's, "
                     "so a run on the prepared data validates on the examples a run on the "
                     ".jsonl would.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    from tfllm.data.chat_data import is_chat_source
    from tfllm.data.prepared_dataset import is_prepared

    was_prepared = is_prepared(FLAGS.output)
    chat = is_chat_source(FLAGS.data) and not is_prepared(FLAGS.data)
    try:
        dataset = _prepare_chat() if chat else _prepare_text()
    except KeyboardInterrupt:
        raise cli.Interrupted("interrupted; rerun the same command to finish: the shards "
                              "already written are kept.") from None
    if was_prepared:
        print(f"already prepared: {dataset.describe()}")


def _prepare_text():
    from tfllm.data.preparation import prepare

    tokenizer = _tokenizer_from()[0] if FLAGS.tokenizer_from else FLAGS.tokenizer
    return prepare(FLAGS.data, FLAGS.output, tokenizer, FLAGS.vocab_size, FLAGS.sp_model_type,
                   FLAGS.val_fraction, FLAGS.workers, FLAGS.data_dir, FLAGS.split,
                   FLAGS.text_key, FLAGS.skip_non_utf8, FLAGS.shard_chars, FLAGS.sample_chars,
                   progress=FLAGS.progress)


def _prepare_chat():
    from tfllm.data.chat_data import read_template
    from tfllm.data.chat_preparation import prepare_chat

    if not FLAGS.tokenizer_from:
        raise cli.UserError(f"--data={FLAGS.data} is chat data (.jsonl), encoded with the "
                            "tokenizer of the model it is for: pass --tokenizer_from=hf:DIR, "
                            "gguf:FILE or a run directory.")
    tokenizer, template = _tokenizer_from()
    if FLAGS.chat_template:
        template = read_template(FLAGS.chat_template, "--chat_template")
    if template is None:
        from tfllm.chat.template import CHATML

        template = CHATML
    return prepare_chat(FLAGS.data, FLAGS.output, tokenizer, template, FLAGS.train_on,
                        FLAGS.chat_fields, FLAGS.val_fraction, FLAGS.seed, FLAGS.workers,
                        FLAGS.shard_chars, {"chat_template": "--chat_template"},
                        progress=FLAGS.progress)


def _tokenizer_from():
    """(the --tokenizer_from tokenizer, its chat template or None)."""
    from tfllm.pretrained.checkpoint import check_checkpoint, pretrained_path

    path = pretrained_path(FLAGS.tokenizer_from)
    if path:
        checkpoint = check_checkpoint(path)
        return checkpoint.tokenizer(), checkpoint.chat_template
    from tfllm.data.chat_data import saved_template
    from tfllm.tokenizers import load_tokenizer

    try:
        tokenizer = load_tokenizer(FLAGS.tokenizer_from)
    except FileNotFoundError:
        raise cli.UserError(f"--tokenizer_from={FLAGS.tokenizer_from} holds no tokenizer; pass "
                            "a prepared dataset or a run directory.") from None
    return tokenizer, saved_template(FLAGS.tokenizer_from)


if __name__ == "__main__":
    cli.run(main)
