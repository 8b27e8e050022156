"""A prepared token dataset, read through memory maps: what `tfllm.prepare` writes.

    DIR/
      manifest.json      what it was made from, its token counts and split, each shard
      tokenizer.json     the tokenizer (+ sentencepiece.model)
      shard-00000.bin    token ids in order, little-endian uint16 (uint32 for a vocabulary
      shard-00001.bin    over 65,536); the shards joined are the corpus's tokens
      ...

The manifest is written last: a directory without one is unfinished and is never read.
Opening a dataset checks every shard's size, and its checksum and token ids whenever the
shard changed since they were last checked: a damaged shard is named in one line, never
read. What was checked (each shard's size and modification time when its bytes matched
the manifest's sha256, and its largest id) is kept outside the dataset, in
~/.cache/tfllm/verified/, so a dataset's files stay exactly what tfllm.prepare wrote;
tfllm.prepare records its own shards as checked.
"""

import collections
import hashlib
import json
import os

import numpy as np

from tfllm.errors import UserError

MANIFEST_FILE = "manifest.json"
PROGRESS_FILE = ".prepare.json"  # in an unfinished output: what it is being made from
FORMAT = "tfllm-prepared-1"
# Memory maps a dataset keeps open at once (each holds a file descriptor): a dataset of any
# number of shards is read under the common `ulimit -n` of 1,024.
MAX_OPEN_SHARDS = 64


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
        self._shards = shards  # a ShardMaps, or a list of arrays
        self._starts = np.cumsum([0] + _lengths(shards))  # each shard's global offset
        self.lo, self.hi = lo, hi
        self.dtype = shards.dtype if isinstance(shards, ShardMaps) else (
            shards[0].dtype if shards else np.dtype("<u2"))

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
        spans = [(s, max(start, self._starts[s]) - self._starts[s],
                  min(stop, self._starts[s + 1]) - self._starts[s])
                 for s in range(len(self._starts) - 1)
                 if max(start, self._starts[s]) < min(stop, self._starts[s + 1])]
        if len(spans) == 1:
            s, a, b = spans[0]
            return self._shards[s][a:b]
        # Copied shard by shard: a view would keep its shard's map (and descriptor) open.
        out = np.empty(sum(b - a for _, a, b in spans), self.dtype)
        at = 0
        for s, a, b in spans:
            out[at:at + b - a] = self._shards[s][a:b]
            at += b - a
        return out

    def __array__(self, dtype=None, copy=None):
        tokens = self._range(self.lo, self.hi)
        return tokens.astype(dtype) if dtype is not None else np.array(tokens)


def _lengths(shards):
    return list(shards.lengths) if isinstance(shards, ShardMaps) else [len(s) for s in shards]


class ShardMaps:
    """The shards of a dataset as read-only memory maps, each opened on first use and at
    most MAX_OPEN_SHARDS open at once (the least recently used closed first). np.memmap
    keeps a file descriptor per map: one map per shard would run out of descriptors."""

    def __init__(self, paths, lengths, dtype):
        self.paths, self.lengths, self.dtype = list(paths), list(lengths), np.dtype(dtype)
        self._open = collections.OrderedDict()

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        array = self._open.pop(index, None)
        if array is None:
            array = np.memmap(self.paths[index], dtype=self.dtype, mode="r",
                              shape=(self.lengths[index],))
            while len(self._open) >= MAX_OPEN_SHARDS:
                self._open.popitem(last=False)  # its map (and descriptor) closes with it
        self._open[index] = array
        return array


class Prepared:
    """What every prepared dataset (text or chat) offers from its manifest: `directory`,
    `manifest`, `fingerprint`, `val_fraction` and its tokenizer, loaded on first use."""

    directory = manifest = _tokenizer = None

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


class PreparedDataset(Prepared):
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
        if self.manifest.get("kind", "text") != "text":
            raise DatasetError(f"{flag}={directory} is a prepared chat dataset (conversations and "
                               "their loss masks), not text; train on it with --init_from "
                               "a pretrained model (docs/chat.md).")
        dtype = np.dtype(self.manifest["dtype"])
        listed = self.manifest["shards"]
        paths = [os.path.join(self.directory, shard["file"]) for shard in listed]
        verify_shards(self.directory, self.manifest)
        shards = ShardMaps(paths, [shard["tokens"] for shard in listed], dtype)
        total, split = self.manifest["tokens"], self.manifest["train_tokens"]
        self.tokens = TokenView(shards, 0, total)
        self.train = TokenView(shards, 0, split)
        self.val = TokenView(shards, split, total)


    def describe(self):
        m = self.manifest
        t = m["tokenizer"]
        return (f"{self.directory}: {m['tokens']:,} tokens ({m['train_tokens']:,} train, "
                f"{m['tokens'] - m['train_tokens']:,} validation) of {t['name']} "
                f"({t['vocab_size']:,} ids), from {m['source']['bytes'] / 1e6:,.1f} MB in "
                f"{m['documents']:,} documents")


def _damaged(path, state):
    return DatasetError(f"shard {path} of the prepared dataset is {state}; rerun the "
                        "tfllm.prepare command that made it to rewrite it.")


def shard_check(path, dtype):
    """(sha256, largest token id) of a shard's bytes, read in 16 MB blocks."""
    digest, largest = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
            largest = max(largest, int(np.frombuffer(block, dtype).max(initial=0)))
    return digest.hexdigest(), largest


def _stamp(path):
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _verified_path(directory):
    """Where the shards of the dataset in `directory` are recorded as checked."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = hashlib.sha256(os.path.realpath(directory).encode()).hexdigest()[:24]
    return os.path.join(cache, "tfllm", "verified", name + ".json")


def _read_verified(directory):
    try:
        with open(_verified_path(directory)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def record_verified(directory, entries):
    """Records shards as checked ({file: (sha256, largest id)}), each with its size and
    modification time now; best effort (without a writable cache a dataset is checked on
    every open)."""
    path = _verified_path(directory)
    known = _read_verified(directory)
    for name, (sha, largest) in entries.items():
        known[name] = {"stamp": _stamp(os.path.join(directory, name)), "sha256": sha,
                       "max_id": largest}
    try:
        from tfllm.files import write_json

        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json(path, known)
    except OSError:
        pass


def verify_shards(directory, manifest):
    """DatasetError naming the first shard that is missing, of another size, whose bytes do
    not match the manifest's sha256, or that holds a token id beyond the tokenizer's. The
    checksum and ids are read only for shards changed since they were last checked."""
    dtype = np.dtype(manifest["dtype"])
    verify_files(directory, [(s["file"], s["tokens"] * dtype.itemsize, s["sha256"])
                             for s in manifest["shards"]], dtype,
                 manifest["tokenizer"]["vocab_size"])


def verify_files(directory, files, dtype=np.uint8, vocab=None):
    """DatasetError naming the first of `files` ((name, bytes, sha256) each: token shards,
    or a chat dataset's masks and index) that is missing, of another size, whose bytes do
    not match, or (with `vocab`) that holds a `dtype` value of `vocab` or more. A file is
    read only when changed since it was last checked (recorded outside the dataset)."""
    known, checked = _read_verified(directory), {}
    for name, size, sha in files:
        path = os.path.join(directory, name)
        actual = os.path.getsize(path) if os.path.isfile(path) else None
        if actual != size:
            raise _damaged(path, "missing" if actual is None else
                           f"truncated ({actual:,} of {size:,} bytes)")
        record = known.get(name) or {}
        if record.get("stamp") == _stamp(path) and record.get("sha256") == sha:
            largest = record["max_id"]
        else:
            found, largest = shard_check(path, dtype)
            if found != sha:
                raise _damaged(path, "damaged (its bytes do not match the manifest's sha256)")
            checked[name] = (found, largest)
        if vocab is not None and largest >= vocab:
            raise _damaged(path, f"damaged (it holds token id {largest:,}, the tokenizer has "
                           f"{vocab:,})")
    if checked:
        record_verified(directory, checked)


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
