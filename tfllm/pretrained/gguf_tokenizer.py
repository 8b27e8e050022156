"""A GGUF file's tokenizer as the Hugging Face `tokenizer.json` it was converted from.

Written here because the `gguf` package reads the metadata but builds no tokenizer, and
tfllm does not depend on transformers. A byte-level BPE vocabulary (`tokenizer.ggml.model`
= "gpt2": GPT-2, Llama 3, Qwen, SmolLM) is rebuilt with its merges, the pre-tokenizer its
`tokenizer.ggml.pre` names (the split llama.cpp applies for that name, as the original
tokenizer.json has it), its control tokens as special tokens and user-defined ones as
added tokens. Anything else is refused in one line naming the key.
"""

import json

from tfllm.errors import UserError
from tfllm.pretrained.gguf_checkpoint import field

# Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
CONTROL, USER_DEFINED = 3, 4

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _byte_level(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
            "use_regex": use_regex}


def _split_then_bytes(regex):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        _byte_level(False)]}


# tokenizer.ggml.pre -> (the tokenizer.json pre-tokenizer, BPE's ignore_merges).
PRE_TOKENIZERS = {
    "default": (_byte_level(True), False),
    "gpt-2": (_byte_level(True), False),
    "smollm": ({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, _byte_level(True)]}, False),
    "llama-bpe": (_split_then_bytes(_LLAMA3_SPLIT), True),
    "llama3": (_split_then_bytes(_LLAMA3_SPLIT), True),
    "qwen2": (_split_then_bytes(_QWEN2_SPLIT), False),
}


def tokenizer_json(reader, path):
    """The tokenizer.json text of a GGUF file's tokenizer; UserError if the file has no
    tokenizer metadata, or one of a kind or pre-tokenizer tfllm does not rebuild."""
    kind = field(reader, "tokenizer.ggml.model")
    tokens = field(reader, "tokenizer.ggml.tokens")
    if kind is None or not tokens:
        raise UserError(f"{path} has no tokenizer metadata (tokenizer.ggml.model and "
                        "tokenizer.ggml.tokens); use a GGUF file converted with its tokenizer.")
    if kind != "gpt2":
        raise UserError(f"{path}: tokenizer.ggml.model={kind!r} is not supported: tfllm rebuilds "
                        "byte-level BPE tokenizers ('gpt2': GPT-2, Llama 3, Qwen, SmolLM).")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise UserError(f"{path}: tokenizer.ggml.pre={pre!r} is not supported: tfllm rebuilds "
                        f"{', '.join(sorted(PRE_TOKENIZERS))}.")
    pre_tokenizer, ignore_merges = PRE_TOKENIZERS[pre]
    types = field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    merges = field(reader, "tokenizer.ggml.merges") or []
    added = [{"id": i, "content": token, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": kind_ == CONTROL}
             for i, (token, kind_) in enumerate(zip(tokens, types))
             if kind_ in (CONTROL, USER_DEFINED)]
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": pre_tokenizer, "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": {token: i for i, token in enumerate(tokens)},
                  "merges": [merge.split(" ", 1) for merge in merges]}},
        ensure_ascii=False)
