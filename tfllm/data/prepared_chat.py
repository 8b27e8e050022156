"""A prepared chat dataset, read through memory maps: what `tfllm.prepare` writes for
.jsonl data (layout in tfllm.data.chat_preparation).

Opening one reads its manifest and the small per-example index (12 bytes an example),
and checks every file as a text dataset's shards are checked (size always; checksum and
token ids when a file changed since last checked). Its tokens and masks stay on disk until
a batch asks for them.
"""

import hashlib
import json
import os

import numpy as np

from tfllm.data.chat_examples import INDEX_DTYPE, INDEX_FIELDS, ExampleStore, split_examples
from tfllm.data.prepared_dataset import (MANIFEST_FILE, DatasetError, Prepared, ShardMaps,
                                         TokenView, read_manifest, verify_files, verify_shards)

KIND = "chat"
TEMPLATE_FILE = "chat_template.jinja"


def is_prepared_chat(path):
    """Whether `path` is a chat dataset `tfllm.prepare` finished."""
    manifest = os.path.join(os.path.expanduser(path or ""), MANIFEST_FILE)
    if not path or not os.path.isfile(manifest):
        return False
    try:
        with open(manifest) as f:
            return json.load(f).get("kind") == KIND
    except (OSError, ValueError):
        return False


def chat_fingerprint(manifest):
    """What identifies a chat dataset's examples: rows, tokenizer, template, split and
    every file's bytes."""
    identity = {key: manifest[key] for key in ("source", "tokenizer", "chat", "val_fraction")}
    identity["shards"] = [(s["sha256"], s["mask"]["sha256"], s["index"]["sha256"])
                          for s in manifest["shards"]]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class PreparedChatDataset(Prepared):
    """The examples, split, template and tokenizer of a prepared chat dataset.

    Example:
        >>> data = PreparedChatDataset("data/chats")
        >>> train, val = data.split()          # example indices
        >>> ids, mask = data.store.span(0, 20)  # the first 20 tokens of example 0
    """

    kind = KIND

    def __init__(self, directory, flag="--config.data.source"):
        self.directory = os.path.expanduser(directory)
        self.manifest = m = read_manifest(self.directory, flag)
        if m.get("kind") != KIND:
            raise DatasetError(f"{flag}={directory} is a prepared text dataset, not chat data; "
                               "prepare the .jsonl files with tfllm.prepare --data=FILE.jsonl.")
        verify_shards(self.directory, m)
        shards = m["shards"]
        verify_files(self.directory, [(s["mask"]["file"], s["tokens"], s["mask"]["sha256"])
                                      for s in shards] +
                     [(s["index"]["file"], s["examples"] * INDEX_FIELDS * INDEX_DTYPE.itemsize,
                       s["index"]["sha256"]) for s in shards])
        self.template_text = self._template()
        lengths = [s["tokens"] for s in shards]
        path = lambda name: os.path.join(self.directory, name)
        ids = ShardMaps([path(s["file"]) for s in shards], lengths, m["dtype"])
        masks = ShardMaps([path(s["mask"]["file"]) for s in shards], lengths, np.uint8)
        index = [np.fromfile(path(s["index"]["file"]), INDEX_DTYPE) for s in shards]
        self.store = ExampleStore(TokenView(ids, 0, m["tokens"]),
                                  TokenView(masks, 0, m["tokens"]), np.concatenate(index))

    def _template(self):
        path = os.path.join(self.directory, TEMPLATE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            text = None
        if text is None or hashlib.sha256(text.encode()).hexdigest() != \
                self.manifest["chat"]["template_sha256"]:
            raise DatasetError(f"{path} is {'missing' if text is None else 'changed'} since the "
                               "dataset was prepared; rerun the tfllm.prepare command that made "
                               "it.")
        return text

    @property
    def train_on(self):
        return self.manifest["chat"]["train_on"]

    def split(self):
        """(training, validation) example indices, as fixed when it was prepared."""
        return split_examples(len(self.store), self.val_fraction,
                              self.manifest["chat"]["split_seed"])

    def describe(self):
        m = self.manifest
        return (f"{self.directory}: {m['examples']:,} chat examples, {m['tokens']:,} tokens "
                f"({m['trained_tokens']:,} trained: {m['chat']['train_on']}), validation "
                f"{m['val_fraction']:g} of the examples, from {m['source']['bytes'] / 1e6:,.1f} MB")
