"""Byte-level tokenizer: the 256 byte values of UTF-8 text."""

import numpy as np

from tfllm.tokenizers.base import Tokenizer


class ByteTokenizer(Tokenizer):
    """Token id = UTF-8 byte value; any text encodes, nothing to train.

    Example:
        >>> ByteTokenizer().encode("hé").tolist()
        [104, 195, 169]
    """

    name = "byte"

    @classmethod
    def train(cls, text=None, **unused):
        return cls()

    @property
    def vocab_size(self):
        return 256

    def encode(self, text):
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids):
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def _state(self, directory):
        return {}

    @classmethod
    def from_state(cls, state, directory):
        return cls()
