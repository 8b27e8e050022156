"""The prepared dataset a config's `data` section trains on.

A prepared dataset (`tfllm.prepare`'s output) is read where it is; a raw corpus (a file,
folder, glob or TFDS dataset) is prepared on the fly into a directory the caller owns (a
run's `data/`), which later calls reuse while the corpus is unchanged.
"""

import os

from tfllm.data.corpus import (CONFIG_FLAGS, DEFAULT_CORPUS, TFDS_PREFIX, check_not_empty,
                               corpus_files, iter_pieces)
from tfllm.data.prepared_dataset import PROGRESS_FILE, PreparedDataset, is_prepared
from tfllm.configs import editable
from tfllm.errors import UserError

RUN_DATA_DIR = "data"  # where a run keeps its raw corpus prepared


def _names_dataset(source):
    """Whether `source` is a prepared dataset, finished or not (an unfinished one is
    opened only to raise its error)."""
    return is_prepared(source) or os.path.isfile(os.path.join(source, PROGRESS_FILE))


def configured_dataset(data, prepare_dir, tokenizer=None, flags=None, print_fn=print,
                       progress=True):
    """The PreparedDataset of a `data` config section.

    Args:
        data: the config's data section (source, tokenizer, vocab_size, ...).
        prepare_dir: where a raw corpus is prepared (remade when the corpus or the
            tokenizer changed).
        tokenizer: the Tokenizer the tokens must be of (a resumed or fine-tuned run's);
            None trains the config's on a raw corpus, or takes a prepared dataset's.
        flags: the flags that set each data setting, for errors (default tfllm.train's).
    """
    flags = {**CONFIG_FLAGS, "output": "--run_dir", **(flags or {})}
    source = os.path.expanduser(data.source or DEFAULT_CORPUS)
    if _names_dataset(source):
        dataset = PreparedDataset(source, flags["source"])
        if tokenizer is not None and tokenizer.fingerprint() != dataset.tokenizer.fingerprint():
            raise UserError(f"{flags['source']}={source} is prepared with another tokenizer "
                            f"({dataset.manifest['tokenizer']['name']}, "
                            f"{dataset.manifest['tokenizer']['vocab_size']} ids) than the run's "
                            f"({tokenizer.name}, {tokenizer.vocab_size} ids); prepare the corpus "
                            "with the run's tokenizer, or pass the dataset the run was made with.")
        return dataset
    from tfllm.data.preparation import SHARD_CHARS, prepare

    if _size(source, flags) <= SHARD_CHARS:
        print_fn = None  # prepared in a moment: no lines about it
    return prepare(source, prepare_dir, tokenizer or data.tokenizer, data.vocab_size,
                   data.sp_model_type, data.val_fraction, None, data.data_dir or None,
                   data.split, data.text_key or None, flags=flags, progress=progress,
                   print_fn=print_fn, replace=True)


def _size(source, flags):
    """Bytes of a file corpus (infinite for TFDS, whose size is not known up front)."""
    if source.startswith(TFDS_PREFIX):
        return float("inf")
    return sum(os.path.getsize(p) for p in corpus_files(source, flags["source"]))


def open_prepared(source, flag="--config.data.source"):
    """The PreparedDataset, or PreparedChatDataset, in the directory `source`."""
    from tfllm.data.prepared_chat import PreparedChatDataset, is_prepared_chat

    return (PreparedChatDataset if is_prepared_chat(source) else PreparedDataset)(source, flag)


def adopt_prepared(config, dataset):
    """`config` with its data section's settings set to those the prepared `dataset` was
    made with (the run then records what it trains on): a text dataset's tokenizer,
    vocab_size and val_fraction, a chat dataset's val_fraction, train_on and chat_fields.
    Returns (config, the keys that changed)."""
    m = dataset.manifest
    if m.get("kind") == "chat":
        values = {"val_fraction": m["val_fraction"], "train_on": m["chat"]["train_on"],
                  "chat_fields": m["chat"]["chat_fields"]}
    else:
        values = {"tokenizer": m["tokenizer"]["name"], "val_fraction": m["val_fraction"]}
    if m["tokenizer"]["name"] == "sentencepiece" and m.get("kind") != "chat":
        values["vocab_size"] = m["tokenizer"]["vocab_size"]
        values["sp_model_type"] = m["request"]["tokenizer"].get("model_type",
                                                               config.data.sp_model_type)
    changed = [f"data.{k}" for k, v in values.items() if config.data[k] != v]
    if changed:
        config = editable(config)
        for key, value in values.items():
            config.data[key] = value
    return config, changed


def run_dataset(run_dir, config, tokenizer, data=None, flags=None, progress=False):
    """The dataset a run's tokens come from, read without writing into the run: `data` (a
    corpus or prepared dataset the caller names; default the run's own data.source), where
    a prepared one is read in place, the run's data/ copy of its own corpus is reused, and
    any other corpus is prepared with the run's tokenizer into a temporary directory that
    lives as long as the returned dataset."""
    import tempfile

    section = config.data if data is None else data
    source = os.path.expanduser(section.source or DEFAULT_CORPUS)
    own = os.path.join(run_dir, RUN_DATA_DIR)
    if data is None and not is_prepared(source) and is_prepared(own):
        dataset = PreparedDataset(own)
        if dataset.tokenizer.fingerprint() == tokenizer.fingerprint():
            return dataset
    scratch = tempfile.TemporaryDirectory(prefix="tfllm-data-")
    dataset = configured_dataset(section, os.path.join(scratch.name, "data"), tokenizer, flags,
                                 print_fn=None, progress=progress)
    dataset.scratch = scratch  # removed with the dataset
    return dataset


def check_source(data, flags=None):
    """Raises the error reading a `data` section's source would, reading only as far as
    its first text: a source naming no file, an empty corpus, a prepared dataset that is
    unfinished or misses a shard. For commands that check their input before TensorFlow."""
    flags = {**CONFIG_FLAGS, **(flags or {})}
    source = os.path.expanduser(data.source or DEFAULT_CORPUS)
    if _names_dataset(source):
        open_prepared(source, flags["source"])
    elif not source.startswith(TFDS_PREFIX):
        check_not_empty(iter_pieces(source, flags=flags), source, flags["source"])
