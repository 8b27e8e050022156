"""Chat and instruction data (JSON Lines) as packed windows to train on.

A source whose files all end in .jsonl is chat data: each row an example (tfllm.chat.records),
encoded with the run's chat template (the loss mask on the answers), split into training
and validation examples (data.val_fraction, by a seeded shuffle of whole examples, so no
example is cut by the split) and packed into windows (tfllm.data.packing). Held in
memory; docs/chat.md.
"""

import hashlib
import json
import os

import numpy as np

from tfllm.chat.encoding import ChatEncoder
from tfllm.chat.records import parse_fields, read_examples
from tfllm.chat.template import CHATML, ChatTemplate, ChatTemplateError
from tfllm.data.corpus import corpus_files
from tfllm.data.packing import pack
from tfllm.errors import UserError

CHAT_SUFFIX = ".jsonl"
TEMPLATE_FILE = "chat_template.jinja"


def is_chat_source(source):
    """Whether data.source names .jsonl files only (a file, folder or glob)."""
    if not source or source.startswith("tfds:") or not isinstance(source, str):
        return False
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
    """(template text, where it came from): data.chat_template's file, else the
    checkpoint's own, else tfllm's ChatML."""
    if data.chat_template:
        return (read_template(data.chat_template, "--config.data.chat_template"),
                os.path.expanduser(data.chat_template))
    if checkpoint_template:
        return checkpoint_template, "the checkpoint's"
    return CHATML, "tfllm's ChatML"


def chat_encoder(data, tokenizer, template_text, origin="chat template"):
    """The ChatEncoder of a run: its template with the tokenizer's special tokens."""
    template = ChatTemplate(template_text, special_token_strings(tokenizer), name=origin)
    encoder = ChatEncoder(tokenizer, template, data.train_on)
    if encoder.end_of_turn() is None:
        raise ChatTemplateError(
            f"the {origin} chat template ends an answer with no special token of the "
            "tokenizer (ChatML needs <|im_end|>), so generation could not stop at the end of "
            "a turn; pass the model's own template as --config.data.chat_template=FILE.")
    return encoder


def special_token_strings(tokenizer):
    """bos_token / eos_token as templates name them, from the tokenizer's ids."""
    out = {}
    for name, token in (("eos_token", getattr(tokenizer, "eos_id", None)),
                        ("bos_token", getattr(tokenizer, "bos_id", None))):
        if token is not None:
            out[name] = tokenizer.decode([token])
    return out


class ChatDataset:
    """Packed training and validation windows of a chat source, for windows of `length`."""

    kind = "chat"

    def __init__(self, source, train, val, fingerprint, tokenizer, template_text, rows):
        self.directory = source
        self.train, self.val = train, val
        self.fingerprint, self.tokenizer = fingerprint, tokenizer
        self.template_text, self.rows = template_text, rows

    def describe(self):
        t = self.train
        return (f"{self.directory}: {self.rows:,} chat examples ({t.examples:,} training in "
                f"{len(t):,} windows, {self.val.examples:,} validation), {t.trained_tokens:,} "
                f"trained tokens; {t.truncated:,} truncated, {t.dropped + self.val.dropped:,} "
                "dropped with no trained token")


def load_chat_dataset(data, tokenizer, template_text, length, seed, packing=True):
    """The ChatDataset of data.source for windows of `length` tokens; UserError if a row
    is malformed, or no example keeps a trained token."""
    encoder = chat_encoder(data, tokenizer, template_text)
    fields = parse_fields(data.chat_fields)
    files = corpus_files(data.source)
    encoded = [_encode(encoder, tokenizer, example)
               for path in files for _, example in read_examples(path, fields)]
    if not encoded:
        raise UserError(f"--config.data.source={data.source} holds no rows; pass JSON Lines "
                        "files with one example per line (docs/chat.md).")
    order = np.random.default_rng(seed).permutation(len(encoded))
    n_val = int(round(len(encoded) * data.val_fraction)) if len(encoded) > 1 else 0
    n_val = min(max(n_val, 1 if len(encoded) > 1 and data.val_fraction > 0 else 0),
                len(encoded) - 1)
    val = pack([encoded[i] for i in order[:n_val]], length, packing)
    train = pack([encoded[i] for i in order[n_val:]], length, packing)
    if train.examples == 0:
        raise UserError(
            f"every training example of {data.source} is left with no trained token once cut "
            f"to the window of {length + 1} tokens ({train.truncated:,} truncated, "
            f"{train.dropped:,} dropped); raise --config.model.max_length or shorten the "
            "prompts.")
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    digest.update(json.dumps([template_text, data.train_on, data.chat_fields, length, seed,
                              data.val_fraction, bool(packing)]).encode())
    return ChatDataset(data.source, train, val, digest.hexdigest(), tokenizer, template_text,
                       len(encoded))


def _encode(encoder, tokenizer, example):
    """(ids, mask) of one Example."""
    eos = getattr(tokenizer, "eos_id", None)
    end = [eos] if eos is not None else []
    if example.kind == "chat":
        return encoder.encode(example.messages, example.tools, example.trained)
    if example.kind == "completion":
        prompt = tokenizer.encode(example.prompt).tolist() if example.prompt else []
        answer = tokenizer.encode(example.completion).tolist() + end
        return (np.asarray(prompt + answer, np.int32),
                np.asarray([0] * len(prompt) + [1] * len(answer), np.int8))
    ids = tokenizer.encode(example.text).tolist() + end
    return np.asarray(ids, np.int32), np.ones(len(ids), np.int8)


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
    length = packed.tokens.shape[1] - 1

    def arrays(step):
        rows = _epoch_rows(len(packed), batch_size, seed, int(step))
        rows = rows[first * per_replica:(first + local) * per_replica]
        x = packed.inputs(rows)
        return (x["token_ids"], x["segment_ids"], x["positions"], packed.targets(rows),
                packed.weights(rows))

    def load(step):
        out = tf.numpy_function(arrays, [step], [tf.int32] * 4 + [tf.float32], stateful=False)
        return tuple(tf.ensure_shape(t, [local * per_replica, length]) for t in out)

    dataset = tf.data.Dataset.counter(start=start_step).map(load)
    if input_context is not None:
        dataset = dataset.flat_map(lambda *t: _per_replica(local, *t))
    return dataset.map(_structure).prefetch(tf.data.AUTOTUNE)


def chat_eval_dataset(packed, batch_size, input_context=None):
    """Finite dataset of every validation window once, padded to whole batches with
    windows that weigh 0."""
    import tensorflow as tf

    from tfllm.data.pipeline import _per_replica, _replica_slices

    count = -(-len(packed) // batch_size) * batch_size
    rows = np.arange(count) % max(len(packed), 1)
    x = packed.inputs(rows)
    weights = packed.weights(rows) * (np.arange(count) < len(packed))[:, None]
    tensors = (x["token_ids"], x["segment_ids"], x["positions"], packed.targets(rows), weights)
    first, local, per_replica = _replica_slices(batch_size, input_context)
    dataset = tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size, drop_remainder=True)
    if input_context is not None:
        part = slice(first * per_replica, (first + local) * per_replica)
        dataset = dataset.flat_map(lambda *b: _per_replica(local, *(t[part] for t in b)))
    options = tf.data.Options()
    options.autotune.enabled = False  # as tfllm.data.pipeline.eval_dataset
    return dataset.map(_structure).prefetch(2).with_options(options)


def chat_eval_batches(packed, batch_size):
    return -(-len(packed) // batch_size)
