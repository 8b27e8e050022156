"""A corpus tokenized once into a cached token file, split into train and validation."""

import json
import os

import numpy as np


class TokenStore:
    """The token ids of a corpus with a train/validation split.

    The last `val_fraction` of the tokens is validation (the convention of published
    char-level Tiny Shakespeare results); the rest is training data.

    Example:
        >>> store = TokenStore(tokenizer.encode_to_array(text), val_fraction=0.1)
        >>> store.save("run/tokens.npy", key)         # once
        >>> TokenStore.load("run/tokens.npy", key, 0.1)  # later: memory-mapped, no tokenizing
    """

    def __init__(self, tokens, val_fraction):
        self.tokens = tokens
        self.val_fraction = val_fraction
        # The first int(n * (1 - f)) tokens train: 111,540 validation characters of Tiny
        # Shakespeare, as in published results.
        split = int(len(tokens) * (1 - val_fraction))
        self.train = tokens[:split]
        self.val = tokens[split:]

    @staticmethod
    def cache_key(source_description, tokenizer):
        """What the cache was made from: the corpus and the tokenizer's mapping."""
        return {"source": source_description, "tokenizer": tokenizer.fingerprint()}

    @classmethod
    def load(cls, path, key, val_fraction):
        """The cached store at `path` if it was made with `key`, else None."""
        if not (os.path.exists(path) and os.path.exists(path + ".json")):
            return None
        with open(path + ".json") as f:
            if json.load(f) != key:
                return None
        return cls(np.load(path, mmap_mode="r"), val_fraction)

    def save(self, path, key):
        """Writes the tokens (uint16 when they fit) and their key, each atomically."""
        dtype = np.uint16 if int(np.max(self.tokens)) < 2 ** 16 else np.int32
        with open(path + ".tmp", "wb") as f:
            np.save(f, np.asarray(self.tokens, dtype))
        os.replace(path + ".tmp", path)
        with open(path + ".json.tmp", "w") as f:
            json.dump(key, f)
        os.replace(path + ".json.tmp", path + ".json")
