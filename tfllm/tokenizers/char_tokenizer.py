"""Character-level tokenizer whose vocabulary is the set of characters of a corpus."""

import numpy as np

from tfllm.tokenizers.base import Tokenizer


class CharTokenizer(Tokenizer):
    """One token per character; ids follow the sorted order of the characters.

    Example:
        >>> tok = CharTokenizer.train("hello world")
        >>> tok.decode(tok.encode("hello"))
        'hello'
    """

    name = "char"

    def __init__(self, chars):
        self.chars = list(chars)
        self._ids = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, text, **unused):
        if not text:
            raise ValueError("cannot build a character vocabulary from empty text.")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        try:
            return np.fromiter((self._ids[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError:
            missing = sorted(set(text) - set(self._ids))
            shown = ", ".join(repr(c) for c in missing[:20])
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            raise ValueError(
                f"{len(missing)} character{'s' if len(missing) > 1 else ''} ({shown}{more}) "
                f"{'are' if len(missing) > 1 else 'is'} not in this tokenizer's vocabulary of "
                f"{self.vocab_size} characters; use only characters of the training corpus "
                "or train with a byte or sentencepiece tokenizer.") from None

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)

    def _state(self, directory):
        return {"chars": "".join(self.chars)}

    @classmethod
    def from_state(cls, state, directory):
        return cls(state["chars"])
