"""What every tokenizer provides, and how a saved one is found again."""

import json
import os

import numpy as np

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """Text <-> int32 token ids. Subclasses set `name` and implement the four methods."""

    name = None

    @property
    def vocab_size(self):
        raise NotImplementedError

    def encode(self, text):
        """str -> np.ndarray of int32 ids."""
        raise NotImplementedError

    def decode(self, ids):
        """Sequence of ids -> str."""
        raise NotImplementedError

    def _state(self, directory):
        """A JSON-able dict that `from_state` rebuilds the tokenizer from; may write files."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state, directory):
        raise NotImplementedError

    def save(self, directory):
        """Writes the tokenizer into `directory` (tokenizer.json and any model file)."""
        state = {"type": self.name, **self._state(directory)}
        path = os.path.join(directory, TOKENIZER_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(state, f, indent=1, ensure_ascii=False)
        os.replace(path + ".tmp", path)

    def fingerprint(self):
        """Identifies the mapping: equal fingerprints encode text identically."""
        return json.dumps({"type": self.name, **self._state(None)}, sort_keys=True,
                          ensure_ascii=False)

    def token_id(self, text):
        """The id of the one token that is `text`, or None if `text` is not one token."""
        try:
            ids = self.encode(text)
        except ValueError:
            return None
        return int(ids[0]) if len(ids) == 1 else None

    def encode_to_array(self, text, dtype=np.int32):
        return np.asarray(self.encode(text), dtype=dtype)

    def encode_continuation(self, text):
        """The ids of `text` as they are inside a longer text, right after a newline.

        `tfllm.prepare` cuts a long document after newlines and encodes the pieces in
        parallel; joined, the pieces' ids equal the whole document's. True as such for
        char and byte tokenizers; a subword tokenizer overrides this."""
        return self.encode(text)

    def document_separator(self):
        """The ids put between two documents of a corpus: a newline here (files joined by
        a newline, as tfllm always read them); a subword tokenizer's end-of-text token."""
        return self.encode("\n")
