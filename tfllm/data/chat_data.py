"""Chat and instruction data as packed windows to train on.

A source is chat data when its files all end in .jsonl (each row an example,
tfllm.chat.records) or when it is a chat dataset `tfllm.prepare` made of such files. Rows
are encoded with the run's chat template (the loss mask on the answers) into a prepared
chat dataset (tfllm.data.chat_preparation: the run's data/ copy of its .jsonl, or the
dataset named), split into training and validation examples (by a seeded shuffle of whole
examples, so no example is cut by the split) and packed into windows
(tfllm.data.packing) whose tokens are read from the memory maps as batches ask.
docs/chat.md.
"""

import os
import tempfile

import numpy as np

from tfllm.chat.template import CHATML
from tfllm.data.chat_preparation import CHAT_SUFFIX, prepare_chat, request_key
from tfllm.data.corpus import corpus_files
from tfllm.data.packing import pack, window_batch
from tfllm.data.preparation import SHARD_CHARS
from tfllm.data.prepared_chat import TEMPLATE_FILE, PreparedChatDataset, is_prepared_chat
from tfllm.errors import UserError


def is_chat_source(source):
    """Whether data.source is chat data: .jsonl files only (a file, folder or glob), or a
    prepared chat dataset."""
    if not source or not isinstance(source, str) or source.startswith("tfds:"):
        return False
    if is_prepared_chat(source):
        return True
    try:
        files = corpus_files(source)
    except UserError:
        return False
    return all(f.endswith(CHAT_SUFFIX) for f in files)


def read_template(path, flag):
    """The text of the chat template file `path` that `flag` named; UserError if unreadable."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise UserError(f"{flag}={path}: cannot read it ({e.strerror}); pass a Jinja chat "
                        "template file.") from None


def saved_template(run_dir):
    """The chat template a chat fine-tuning run trained with (RUN/chat_template.jinja), or
    None."""
    path = os.path.join(run_dir, TEMPLATE_FILE)
    return read_template(path, "the run's template") if os.path.isfile(path) else None


def template_source(data, checkpoint_template=None):
    """(template text, where it came from): a prepared chat dataset's own (which
    data.chat_template may name only if equal), else data.chat_template's file, else the
    checkpoint's own, else tfllm's ChatML."""
    if is_prepared_chat(data.source):
        text = saved_template(data.source)
        if data.chat_template and read_template(
                data.chat_template, "--config.data.chat_template") != text:
            raise UserError(f"--config.data.source={data.source} was prepared with another chat "
                            f"template than --config.data.chat_template={data.chat_template}; "
                            "leave the flag out (the dataset's is used), or prepare the data "
                            "again with that template.")
        return text, "the prepared dataset's"
    if data.chat_template:
        return (read_template(data.chat_template, "--config.data.chat_template"),
                os.path.expanduser(data.chat_template))
    if checkpoint_template:
        return checkpoint_template, "the checkpoint's"
    return CHATML, "tfllm's ChatML"


class ChatDataset:
    """Packed training and validation windows of a prepared chat dataset, for windows of
    `length` tokens; UserError if no training example keeps a trained token."""

    kind = "chat"

    def __init__(self, prepared, length, packing=True, source=None):
        self.directory = source or prepared.directory
        self.fingerprint, self.template_text = prepared.fingerprint, prepared.template_text
        self.tokenizer, self.store = prepared.tokenizer, prepared.store
        self.rows = len(self.store)
        train, val = prepared.split()
        self.train = pack(self.store, length, packing, train)
        self.val = pack(self.store, length, packing, val)
        if self.train.examples == 0:
            t = self.train
            raise UserError(
                f"every training example of {self.directory} is left with no trained token "
                f"once cut to the window of {length + 1} tokens ({t.truncated:,} truncated, "
                f"{t.dropped:,} dropped); raise --config.model.max_length or shorten the "
                "prompts.")

    def describe(self):
        t = self.train
        return (f"{self.directory}: {self.rows:,} chat examples ({t.examples:,} training in "
                f"{len(t):,} windows, {self.val.examples:,} validation), {t.trained_tokens:,} "
                f"trained tokens; {t.truncated:,} truncated, {t.dropped + self.val.dropped:,} "
                "dropped with no trained token")


def load_chat_dataset(data, tokenizer, template_text, length, seed, packing=True,
                      prepare_dir=None, progress=False, reuse=None):
    """The ChatDataset of data.source for windows of `length` tokens.

    A prepared chat dataset is read where it is (UserError if made with another tokenizer
    or template); .jsonl files are prepared into `prepare_dir` (remade when the rows or the
    settings change; a temporary directory living as long as the dataset if None), with
    the validation examples chosen by `seed`. UserError for a malformed row, or no example
    keeping a trained token. `reuse`: a directory (a run's data/) read as it is if it
    holds what would be prepared, never written.
    """
    if is_prepared_chat(data.source):
        prepared = PreparedChatDataset(data.source)
        check_prepared_tokenizer(prepared.manifest, data.source, tokenizer)
        if prepared.template_text != template_text:
            raise UserError(f"--config.data.source={data.source} is prepared with another chat "
                            "template than the run's; prepare it again with the run's template "
                            "(tfllm.prepare --chat_template=RUN/chat_template.jinja).")
        return ChatDataset(prepared, length, packing)
    if reuse and is_prepared_chat(reuse):
        key = request_key(data.source, tokenizer, template_text, data.train_on,
                          data.chat_fields, data.val_fraction, seed)
        prepared = PreparedChatDataset(reuse)
        if prepared.manifest["request"] == key:
            return ChatDataset(prepared, length, packing, source=data.source)
    scratch = None
    if prepare_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="tfllm-chat-")
        prepare_dir = os.path.join(scratch.name, "data")
    flags = {"source": "--config.data.source", "output": "--run_dir",
             "val_fraction": "--config.data.val_fraction"}
    large = sum(os.path.getsize(f) for f in corpus_files(data.source)) > SHARD_CHARS
    prepared = prepare_chat(data.source, prepare_dir, tokenizer, template_text, data.train_on,
                            data.chat_fields, data.val_fraction, seed, flags=flags,
                            progress=progress, print_fn=print if progress and large else None,
                            replace=True)
    dataset = ChatDataset(prepared, length, packing, source=data.source)
    dataset.scratch = scratch  # removed with the dataset
    return dataset


def check_prepared_tokenizer(manifest, source, tokenizer):
    """UserError if the prepared chat dataset of `manifest` is not of `tokenizer`'s ids."""
    if manifest["tokenizer"]["fingerprint"] != tokenizer.fingerprint():
        raise UserError(f"--config.data.source={source} is prepared with another tokenizer "
                        f"({manifest['tokenizer']['vocab_size']:,} ids) than the model's "
                        f"({tokenizer.vocab_size:,}); prepare it with tfllm.prepare "
                        "--tokenizer_from= the model you train.")


def _epoch_rows(count, batch_size, seed, step):
    """Rows of step `step`'s batch: each epoch a seeded permutation of the windows, read in
    order, so every window is trained once per epoch (and a resumed run draws alike)."""
    index = step * batch_size + np.arange(batch_size)
    rows = np.empty(batch_size, np.int64)
    for epoch in np.unique(index // count):
        picked = index // count == epoch
        rows[picked] = np.random.default_rng([seed, int(epoch)]).permutation(count)[
            index[picked] % count]
    return rows


def _structure(tokens, segments, positions, targets, weights):
    return ({"token_ids": tokens, "segment_ids": segments, "positions": positions}, targets,
            weights)


def chat_train_dataset(packed, batch_size, seed, start_step=0, input_context=None):
    """Infinite dataset of ({"token_ids", "segment_ids", "positions"}, targets, weights),
    each (B, T), from step `start_step` on; split over replicas as tfllm.data.pipeline's
    train_dataset splits."""
    import tensorflow as tf

    from tfllm.data.pipeline import _per_replica, _replica_slices

    first, local, per_replica = _replica_slices(batch_size, input_context)

    def arrays(step):
        rows = _epoch_rows(len(packed), batch_size, seed, int(step))
        x, y, w = packed.batch(rows[first * per_replica:(first + local) * per_replica])
        return x["token_ids"], x["segment_ids"], x["positions"], y, w

    def load(step):
        out = tf.numpy_function(arrays, [step], [tf.int32] * 4 + [tf.float32], stateful=False)
        return tuple(tf.ensure_shape(t, [local * per_replica, packed.length]) for t in out)

    dataset = tf.data.Dataset.counter(start=start_step).map(load)
    if input_context is not None:
        dataset = dataset.flat_map(lambda *t: _per_replica(local, *t))
    return dataset.map(_structure).prefetch(tf.data.AUTOTUNE)


def chat_eval_windows(packed, max_tokens=None):
    """How many validation windows an evaluation scores: all of them, or the first
    max_tokens // window (at least one) when that is fewer."""
    if not max_tokens:
        return len(packed)
    return min(len(packed), max(1, max_tokens // packed.length))


def chat_eval_dataset(packed, batch_size, input_context=None, max_tokens=None):
    """Finite dataset of the first chat_eval_windows(packed, max_tokens) validation windows
    once, padded to whole batches with windows that weigh 0; read from the examples batch
    by batch."""
    import tensorflow as tf

    from tfllm.data.pipeline import _per_replica, _replica_slices

    count = chat_eval_windows(packed, max_tokens)
    first, local, per_replica = _replica_slices(batch_size, input_context)
    part = slice(first * per_replica, (first + local) * per_replica)

    def arrays(index):
        rows = int(index) * batch_size + np.arange(batch_size)
        tokens, segments, mask = packed.arrays(rows % max(count, 1))
        mask = mask * (rows < count)[:, None].astype(np.int8)  # padding windows weigh 0
        x, y, w = window_batch(tokens[part], segments[part], mask[part])
        return x["token_ids"], x["segment_ids"], x["positions"], y, w

    def load(index):
        out = tf.numpy_function(arrays, [index], [tf.int32] * 4 + [tf.float32], stateful=False)
        return tuple(tf.ensure_shape(t, [local * per_replica, packed.length]) for t in out)

    dataset = tf.data.Dataset.range(chat_eval_batches(packed, batch_size, max_tokens)).map(load)
    if input_context is not None:
        dataset = dataset.flat_map(lambda *b: _per_replica(local, *b))
    options = tf.data.Options()
    options.autotune.enabled = False  # as tfllm.data.pipeline.eval_dataset
    return dataset.map(_structure).prefetch(2).with_options(options)


def chat_eval_batches(packed, batch_size, max_tokens=None):
    return -(-chat_eval_windows(packed, max_tokens) // batch_size)
