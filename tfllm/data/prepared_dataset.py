"""A prepared token dataset, read through memory maps: what `tfllm.prepare` writes.

    DIR/
      manifest.json      what it was made from, its token counts and split, each shard
      tokenizer.json     the tokenizer (+ sentencepiece.model)
      shard-00000.bin    token ids in order, little-endian uint16 (uint32 for a vocabulary
      shard-00001.bin    over 65,536); the shards joined are the corpus's tokens
      ...

The manifest is written last: a directory without one is unfinished and is never read.
"""

import hashlib
import json
import os

import numpy as np

from tfllm.errors import UserError

MANIFEST_FILE = "manifest.json"
PROGRESS_FILE = ".prepare.json"  # in an unfinished output: what it is being made from
FORMAT = "tfllm-prepared-1"


class DatasetError(UserError):
    """A prepared dataset that cannot be read; the message says why and what to do."""


def is_prepared(path):
    """Whether `path` is a directory `tfllm.prepare` finished."""
    return bool(path) and os.path.isfile(os.path.join(os.path.expanduser(path), MANIFEST_FILE))


def shard_dtype(vocab_size):
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def manifest_fingerprint(manifest):
    """What identifies a dataset's tokens: corpus, tokenizer, split and every shard's bytes."""
    identity = {key: manifest[key] for key in ("source", "tokenizer", "val_fraction", "separator")}
    identity["shards"] = [(s["tokens"], s["sha256"]) for s in manifest["shards"]]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class TokenView:
    """Tokens [lo, hi) of the shards joined, indexed like a 1-D array (an int, a slice of
    step 1, or an integer array), without ever copying the shards into memory.

    Example:
        >>> view = dataset.train
        >>> view[np.array([[0, 1, 2], [7, 8, 9]])]  # (2, 3) ids, gathered from the maps
    """

    def __init__(self, shards, lo, hi):
        self._shards = shards
        self._starts = np.cumsum([0] + [len(s) for s in shards])  # global offset of each shard
        self.lo, self.hi = lo, hi
        self.dtype = shards[0].dtype if shards else np.dtype("<u2")

    def __len__(self):
        return self.hi - self.lo

    @property
    def shape(self):
        return (len(self),)

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("a TokenView slice takes step 1")
            return self._range(self.lo + start, self.lo + max(start, stop))
        index = np.asarray(key)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} tokens")
        index = np.where(index < 0, index + len(self), index) + self.lo
        if len(self._shards) == 1:
            return self._shards[0][index]
        shard = np.searchsorted(self._starts, index, side="right") - 1
        out = np.empty(index.shape, self.dtype)
        for s in np.unique(shard):
            where = shard == s
            out[where] = self._shards[s][index[where] - self._starts[s]]
        return out

    def _range(self, start, stop):
        parts = []
        for s, shard in enumerate(self._shards):
            a, b = max(start, self._starts[s]), min(stop, self._starts[s + 1])
            if a < b:
                parts.append(shard[a - self._starts[s]:b - self._starts[s]])
        return np.concatenate(parts) if parts else np.empty(0, self.dtype)

    def __array__(self, dtype=None, copy=None):
        tokens = self._range(self.lo, self.hi)
        return tokens.astype(dtype) if dtype is not None else np.array(tokens)


class PreparedDataset:
    """The token shards, split and tokenizer of a `tfllm.prepare` output directory.

    `train`, `val` and `tokens` (all of them) are `TokenView`s over memory maps: opening
    a dataset reads only its manifest, whatever its size. The last `val_fraction` of the
    tokens is validation, as for a corpus tokenized in one piece.

    Example:
        >>> data = PreparedDataset("data/shakespeare")
        >>> data.tokenizer.decode(data.val[:20])
    """

    def __init__(self, directory, flag="--config.data.source"):
        self.directory = os.path.expanduser(directory)
        self.manifest = read_manifest(self.directory, flag)
        dtype = np.dtype(self.manifest["dtype"])
        shards = []
        for shard in self.manifest["shards"]:
            path = os.path.join(self.directory, shard["file"])
            expected = shard["tokens"] * dtype.itemsize
            size = os.path.getsize(path) if os.path.isfile(path) else None
            if size != expected:
                state = "missing" if size is None else f"truncated ({size:,} of {expected:,} bytes)"
                raise DatasetError(f"shard {path} of the prepared dataset is {state}; rerun the "
                                   "tfllm.prepare command that made it to rewrite it.")
            shards.append(np.memmap(path, dtype=dtype, mode="r", shape=(shard["tokens"],)))
        total, split = self.manifest["tokens"], self.manifest["train_tokens"]
        self.tokens = TokenView(shards, 0, total)
        self.train = TokenView(shards, 0, split)
        self.val = TokenView(shards, split, total)
        self._tokenizer = None

    @property
    def fingerprint(self):
        return self.manifest["fingerprint"]

    @property
    def val_fraction(self):
        return self.manifest["val_fraction"]

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from tfllm.tokenizers import load_tokenizer

            self._tokenizer = load_tokenizer(self.directory)
        return self._tokenizer

    def describe(self):
        m = self.manifest
        t = m["tokenizer"]
        return (f"{self.directory}: {m['tokens']:,} tokens ({m['train_tokens']:,} train, "
                f"{m['tokens'] - m['train_tokens']:,} validation) of {t['name']} "
                f"({t['vocab_size']:,} ids), from {m['source']['bytes'] / 1e6:,.1f} MB in "
                f"{m['documents']:,} documents")


def read_manifest(directory, flag="--config.data.source"):
    """The manifest of a prepared dataset; DatasetError (naming `flag`) if it has none."""
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        if os.path.isfile(os.path.join(directory, PROGRESS_FILE)):
            raise DatasetError(f"{flag}={directory} is an unfinished tfllm.prepare output; rerun "
                               "the same tfllm.prepare command to finish it.")
        raise DatasetError(f"{flag}={directory} is not a prepared dataset (no {MANIFEST_FILE}); "
                           "make one with `python -m tfllm.prepare --data=SRC --output=DIR`.")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} cannot be read ({e}); rerun tfllm.prepare.") from None
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{path} is of format {manifest.get('format')!r}, this tfllm reads "
                           f"{FORMAT!r}; prepare the corpus again with this version.")
    return manifest
