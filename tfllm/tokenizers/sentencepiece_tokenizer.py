"""Subword tokenizer (BPE or unigram) trained with sentencepiece on the user's corpus."""

import hashlib
import io
import os
import re

import numpy as np
import sentencepiece as spm

from tfllm.tokenizers.base import Tokenizer

MODEL_FILE = "sentencepiece.model"


class SentencePieceTokenizer(Tokenizer):
    """Wraps a trained sentencepiece model.

    Example:
        >>> tok = SentencePieceTokenizer.train(text, vocab_size=500, model_type="bpe")
        >>> tok.decode(tok.encode("To be, or not to be"))
        'To be, or not to be'
    """

    name = "sentencepiece"

    def __init__(self, model_proto):
        self.model_proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self._newline_ids = self._sp.encode("\n")

    @classmethod
    def train(cls, text, vocab_size=1000, model_type="bpe", **unused):
        """Trains on the lines of `text` (a str, or an iterable of lines: tfllm.prepare
        passes a bounded sample of a large corpus)."""
        lines = text.splitlines() if isinstance(text, str) else list(text)
        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"unknown sentencepiece model_type {model_type!r}; "
                             "use 'bpe' or 'unigram'.")
        model = io.BytesIO()
        # Lines are sentences to sentencepiece; identity normalization keeps decode(encode(x)) == x
        # for the text it was trained on, and byte fallback encodes any unseen character.
        # byte_fallback reserves 256 byte pieces; sentencepiece needs them plus every character.
        minimum = 256 + len(set().union(*map(set, lines))) + 4
        if vocab_size < minimum:
            raise ValueError(f"sentencepiece vocab_size={vocab_size} is too small for this corpus; "
                             f"use at least {minimum} (--config.data.vocab_size).")
        # hard_vocab_limit=True: a corpus too small for vocab_size is an error naming the
        # largest size it supports, not a smaller vocabulary than the config records.
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=model,
                vocab_size=vocab_size, model_type=model_type, character_coverage=1.0,
                normalization_rule_name="identity", remove_extra_whitespaces=False,
                byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
                user_defined_symbols=["\n"], hard_vocab_limit=True, minloglevel=2)
        except RuntimeError as e:
            reason = str(e).split("] ")[-1]
            most = re.search(r"value <= (\d+)", reason)
            if most:
                raise ValueError(f"sentencepiece vocab_size={vocab_size} is more than this corpus "
                                 f"gives: at most {most.group(1)} pieces; set "
                                 f"--config.data.vocab_size={most.group(1)} or less, or use a "
                                 "larger corpus.") from None
            raise ValueError(f"sentencepiece could not train: {reason}") from None
        return cls(model.getvalue())

    @property
    def vocab_size(self):
        return self._sp.get_piece_size()

    def encode(self, text):
        return np.asarray(self._sp.encode(text), dtype=np.int32)

    def decode(self, ids):
        return self._sp.decode([int(i) for i in ids])

    def encode_continuation(self, text):
        # sentencepiece marks the start of a text with "▁" (its dummy prefix) and splits
        # at "\n" (a piece of its own here): after a leading "\n", the ids are those of
        # the text inside a longer one.
        ids = self._sp.encode("\n" + text)
        return np.asarray(ids[len(self._newline_ids):], dtype=np.int32)

    def document_separator(self):
        eos = self._sp.eos_id()  # "</s>", which sentencepiece reserves by default
        return np.asarray([eos] if eos >= 0 else self.encode("\n"), dtype=np.int32)

    def token_id(self, text):
        piece = self._sp.piece_to_id(text)  # "\n" is a piece of its own; encode adds "▁"
        if piece != self._sp.unk_id() or text == self._sp.id_to_piece(self._sp.unk_id()):
            return int(piece)
        return super().token_id(text)

    def _state(self, directory):
        if directory is None:  # fingerprint: the model bytes themselves
            return {"model_sha256": hashlib.sha256(self.model_proto).hexdigest()}
        with open(os.path.join(directory, MODEL_FILE), "wb") as f:
            f.write(self.model_proto)
        return {"model_file": MODEL_FILE}

    @classmethod
    def from_state(cls, state, directory):
        with open(os.path.join(directory, state["model_file"]), "rb") as f:
            return cls(f.read())
