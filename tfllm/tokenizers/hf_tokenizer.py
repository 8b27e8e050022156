"""A Hugging Face `tokenizer.json` (byte-level BPE as GPT-2 and Qwen ship it, Metaspace BPE
with byte fallback as Llama ships it, ...) as a tfllm tokenizer, through `tokenizers`."""

import hashlib
import os

import numpy as np

from tfllm.tokenizers.base import Tokenizer

# tfllm's own tokenizer.json describes a run's tokenizer; the Hugging Face file is kept
# beside it under this name.
HF_FILE = "hf_tokenizer.json"


class HFTokenizer(Tokenizer):
    """Wraps `tokenizers.Tokenizer`. Encodes without special tokens (no BOS: documents
    are separated by the end-of-text token, `eos_id`, as tfllm separates documents);
    decodes every id. `vocab_size` is the model's, which may exceed the tokenizer's
    (Qwen pads its embedding table).

    Example:
        >>> tok = HFTokenizer.from_file("gpt2/tokenizer.json", vocab_size=50257, eos_id=50256)
        >>> tok.decode(tok.encode("Hello world"))
        'Hello world'
    """

    name = "hf"

    def __init__(self, json_text, vocab_size, eos_id=None, bos_id=None):
        from tokenizers import Tokenizer as _Tokenizer

        self.json_text = json_text
        self._tok = _Tokenizer.from_str(json_text)
        self._vocab_size = int(vocab_size)
        self.eos_id = None if eos_id is None else int(eos_id)
        self.bos_id = None if bos_id is None else int(bos_id)  # what chat templates name bos_token
        self._newline = self._tok.encode("\n", add_special_tokens=False).ids

    @classmethod
    def from_file(cls, path, vocab_size, eos_id=None, bos_id=None):
        with open(path, encoding="utf-8") as f:
            return cls(f.read(), vocab_size, eos_id, bos_id)

    @classmethod
    def train(cls, text, **unused):
        raise ValueError("a Hugging Face tokenizer comes with its checkpoint; start the run "
                         "with --init_from=hf:PATH instead of training one.")

    @property
    def vocab_size(self):
        return self._vocab_size

    @property
    def tokenizer_size(self):
        """One more than the largest id the tokenizer itself can produce (added tokens
        included): at most vocab_size for a tokenizer that fits its model."""
        return max(self._tok.get_vocab(with_added_tokens=True).values(), default=-1) + 1

    def encode(self, text):
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int32)

    def decode(self, ids):
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def encode_as_checkpoint(self, text, add_special_tokens=True):
        """`text`'s ids as transformers' `tokenizer.encode(text)` gives them: the
        checkpoint's post-processor applied (a BOS where it adds one). Evaluation harnesses
        score what a model's own tokenizer makes; training encodes with `encode`."""
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode_text(self, ids):
        """`ids` decoded with their special tokens left out (transformers'
        `decode(ids, skip_special_tokens=True)`)."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def encode_continuation(self, text):
        # The text as it is right after a newline: encoded after one, the newline's own
        # tokens dropped. Where a token spans the newline and the text (a run of newlines
        # that byte-level BPE merges), the text is encoded on its own instead.
        encoding = self._tok.encode("\n" + text, add_special_tokens=False)
        n = len(self._newline)
        if encoding.ids[:n] == self._newline and (n == len(encoding.ids)
                                                  or encoding.offsets[n][0] >= 1):
            return np.asarray(encoding.ids[n:], dtype=np.int32)
        return self.encode(text)

    def special_tokens(self):
        """{text: id} of the tokenizer's special tokens (<|im_end|>, <|eot_id|>, ...)."""
        return {t.content: int(i) for i, t in self._tok.get_added_tokens_decoder().items()
                if t.special}

    def encode_with_offsets(self, text):
        """(ids, (start, end) character offsets) of `text` encoded as text: a special-token
        string in it is not its special token (what a chat user typed stays text)."""
        self._tok.encode_special_tokens = True
        try:
            encoding = self._tok.encode(text, add_special_tokens=False)
        finally:
            self._tok.encode_special_tokens = False
        return encoding.ids, encoding.offsets

    def document_separator(self):
        return (np.asarray([self.eos_id], np.int32) if self.eos_id is not None
                else self.encode("\n"))

    def token_id(self, text):
        token = self._tok.token_to_id(text)
        return int(token) if token is not None else super().token_id(text)

    def _state(self, directory):
        state = {"vocab_size": self._vocab_size, "eos_id": self.eos_id}
        if directory is None:  # fingerprint: the tokenizer's definition itself (encoding
            # does not depend on bos_id, which only chat templates name)
            return {**state, "sha256": hashlib.sha256(self.json_text.encode()).hexdigest()}
        if self.bos_id is not None:
            state["bos_id"] = self.bos_id
        with open(os.path.join(directory, HF_FILE), "w", encoding="utf-8") as f:
            f.write(self.json_text)
        return {**state, "file": HF_FILE}

    @classmethod
    def from_state(cls, state, directory):
        return cls.from_file(os.path.join(directory, state["file"]), state["vocab_size"],
                             state.get("eos_id"), state.get("bos_id"))
