"""Tokenizers by name, trained from a corpus and saved with a run."""

import json
import os

from tfllm.tokenizers.base import TOKENIZER_FILE, Tokenizer
from tfllm.tokenizers.byte_tokenizer import ByteTokenizer
from tfllm.tokenizers.char_tokenizer import CharTokenizer
from tfllm.tokenizers.hf_tokenizer import HFTokenizer
from tfllm.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer

TOKENIZERS = {t.name: t for t in (CharTokenizer, ByteTokenizer, SentencePieceTokenizer,
                                  HFTokenizer)}


def train_tokenizer(name, text, **options):
    """Builds the tokenizer called `name` ("char", "byte", "sentencepiece") from `text`.

    Options of sentencepiece: `vocab_size`, `model_type` ("bpe" or "unigram").
    """
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}; use one of {sorted(TOKENIZERS)}.")
    return TOKENIZERS[name].train(text, **options)


def load_tokenizer(directory):
    """The tokenizer saved in `directory` by `Tokenizer.save`."""
    path = os.path.join(directory, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {TOKENIZER_FILE} in {directory}; is it a tfllm run directory?")
    with open(path) as f:
        state = json.load(f)
    return TOKENIZERS[state["type"]].from_state(state, directory)


__all__ = ["Tokenizer", "CharTokenizer", "ByteTokenizer", "SentencePieceTokenizer", "HFTokenizer",
           "TOKENIZERS", "train_tokenizer", "load_tokenizer"]
