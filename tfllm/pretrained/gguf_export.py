"""A tfllm GPT written as a GGUF file llama.cpp runs: the metadata, tensor names and layout
llama.cpp's own converter writes for the architecture that computes the model exactly
(GPT-2, Llama, Qwen2 or Qwen3, as for the Hugging Face export), the tokenizer in its
metadata, the chat template when the run has one.

Tokenizers: a Hugging Face byte-level BPE (a run started from hf: or gguf:) with a
pre-tokenizer llama.cpp names (gguf_tokenizer.PRE_TOKENIZERS); tfllm's byte tokenizer (the
256 byte tokens, no merges); tfllm's char tokenizer when every character is one byte (each
a token). Anything else (sentencepiece, a char vocabulary beyond ASCII) is refused in one line.
"""

import json
import os

import numpy as np

from tfllm.errors import UserError
from tfllm.pretrained import hf_config, hf_weights
from tfllm.pretrained.gguf_checkpoint import gguf_layout, hf_names
from tfllm.pretrained.gguf_tokenizer import CONTROL, PRE_TOKENIZERS

TYPES = ("f32", "f16", "bf16", "q8_0")


def save_gguf(model, tokenizer, path, gguf_type="f32", chat_template=None, settings=None):
    """Writes `model` (a tfllm GPT) and `tokenizer` as the GGUF file `path`, its matrices in
    `gguf_type` (f32, f16, bf16 or q8_0; norms and biases stay f32, as llama.cpp keeps them).
    `settings`: the imported checkpoint's config (context, start and end tokens).
    Returns the architecture. UserError for a model or tokenizer GGUF cannot express."""
    from gguf import GGUFWriter

    if gguf_type not in TYPES:
        raise UserError(f"--gguf_type={gguf_type} is not allowed: use one of {', '.join(TYPES)}.")
    config = model.get_config()
    hf = hf_config.hf_config(config)
    arch = hf["model_type"]
    if settings:
        hf.update({k: settings[k] for k in ("max_position_embeddings", "bos_token_id",
                                            "eos_token_id") if k in settings})
    fields = tokenizer_fields(tokenizer, hf)
    tensors = gguf_tensors(model, arch, hf)
    writer = GGUFWriter(path + ".tmp", arch)
    _hyperparameters(writer, arch, hf)
    _tokenizer(writer, fields)
    if chat_template:
        writer.add_chat_template(chat_template)
    writer.add_file_type(_FILE_TYPES[gguf_type])
    for name, value in tensors.items():
        _add_tensor(writer, name, value, gguf_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(path + ".tmp", path)
    return arch


# general.file_type: llama.cpp's llama_ftype of the file's main type.
_FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}


def gguf_tensors(model, arch, hf):
    """{GGUF name: float32 array} of a GPT, named and laid out as llama.cpp writes them."""
    tensors = hf_weights.export_tensors(model, arch)
    names = hf_names(hf)
    out = {}
    for name, value in tensors.items():
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        value = gguf_layout(short, value, hf, to_gguf=True)
        if short == "lm_head.weight" and hf.get("tie_word_embeddings", True):
            continue
        out[names[short]] = np.ascontiguousarray(value, np.float32)
    return out


def _add_tensor(writer, name, value, gguf_type):
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    if value.ndim == 1 or gguf_type == "f32":
        writer.add_tensor(name, value)
        return
    kind = GGMLQuantizationType[gguf_type.upper()]
    if kind == GGMLQuantizationType.F16:
        writer.add_tensor(name, value.astype(np.float16))
        return
    writer.add_tensor(name, quantize(value, kind), raw_dtype=kind)


def _hyperparameters(writer, arch, hf):
    if arch == "gpt2":
        writer.add_block_count(hf["n_layer"])
        writer.add_context_length(hf["n_positions"])
        writer.add_embedding_length(hf["n_embd"])
        writer.add_feed_forward_length(hf["n_inner"])
        writer.add_head_count(hf["n_head"])
        writer.add_layer_norm_eps(hf["layer_norm_epsilon"])
        return
    writer.add_block_count(hf["num_hidden_layers"])
    writer.add_context_length(hf["max_position_embeddings"])
    writer.add_embedding_length(hf["hidden_size"])
    writer.add_feed_forward_length(hf["intermediate_size"])
    writer.add_head_count(hf["num_attention_heads"])
    writer.add_head_count_kv(hf["num_key_value_heads"])
    writer.add_key_length(hf["head_dim"])
    writer.add_value_length(hf["head_dim"])
    writer.add_rope_dimension_count(hf["head_dim"])
    writer.add_rope_freq_base(hf["rope_theta"])
    writer.add_layer_norm_rms_eps(hf["rms_norm_eps"])


def _tokenizer(writer, fields):
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(fields["pre"])
    writer.add_token_list(fields["tokens"])
    writer.add_token_types(fields["types"])
    if fields["merges"]:
        writer.add_token_merges(fields["merges"])
    for key in ("bos", "eos"):
        if fields.get(key) is not None:
            getattr(writer, f"add_{key}_token_id")(fields[key])
    writer.add_add_bos_token(False)


def tokenizer_fields(tokenizer, hf):
    """The tokenizer metadata of a GGUF file for a tfllm tokenizer; UserError if GGUF cannot
    express it exactly."""
    from tfllm.pretrained.tokenizer_export import _bytes_to_unicode

    table = _bytes_to_unicode()
    eos = hf.get("eos_token_id")
    if tokenizer is None:
        raise UserError("--format=gguf writes the tokenizer too; the run has none.")
    if tokenizer.name == "byte":
        return dict(pre="gpt-2", tokens=[table[b] for b in range(256)], types=[1] * 256,
                    merges=[], eos=eos, bos=hf.get("bos_token_id"))
    if tokenizer.name == "char":
        chars = tokenizer.chars if hasattr(tokenizer, "chars") else None
        if chars is None or any(len(c.encode("utf-8")) != 1 for c in chars):
            raise UserError("--format=gguf: llama.cpp has no character tokenizer, and this "
                            "run's characters are not all single bytes (which GGUF expresses as "
                            "byte tokens); export it with --format=hf.")
        return dict(pre="gpt-2", tokens=[table[ord(c)] for c in chars], types=[1] * len(chars),
                    merges=[], eos=None, bos=None)
    if tokenizer.name == "hf":
        return _hf_fields(tokenizer, hf)
    raise UserError(f"--format=gguf: a {tokenizer.name} tokenizer is not one tfllm writes as "
                    "GGUF (byte-level BPE, byte and single-byte char tokenizers are); export "
                    "it with --format=hf.")


def _hf_fields(tokenizer, hf):
    """A Hugging Face tokenizer.json's byte-level BPE as GGUF metadata."""
    spec = json.loads(tokenizer.json_text)
    model = spec.get("model") or {}
    pre = next((name for name, (pre_tokenizer, ignore) in PRE_TOKENIZERS.items()
                if pre_tokenizer == _normalized(spec.get("pre_tokenizer"))
                and ignore == bool(model.get("ignore_merges"))), None)
    if model.get("type") != "BPE" or model.get("byte_fallback") or pre is None:
        raise UserError("--format=gguf: the run's tokenizer is not a byte-level BPE with a "
                        "pre-tokenizer llama.cpp names (GPT-2, Llama 3, Qwen2, SmolLM); export "
                        "it with --format=hf.")
    vocab = dict(model["vocab"])
    for added in spec.get("added_tokens") or []:
        vocab[added["content"]] = added["id"]
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    for token, i in vocab.items():
        tokens[i] = token
    special = {a["id"] for a in spec.get("added_tokens") or [] if a.get("special")}
    user = {a["id"] for a in spec.get("added_tokens") or [] if not a.get("special")}
    types = [CONTROL if i in special else 4 if i in user else 1 for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return dict(pre=pre, tokens=tokens, types=types, merges=merges,
                eos=hf.get("eos_token_id", tokenizer.eos_id), bos=hf.get("bos_token_id"))


def _normalized(pre_tokenizer):
    """A tokenizer.json pre-tokenizer with the keys PRE_TOKENIZERS compares (its split
    patterns and flags), whatever else a version of tokenizers wrote."""
    if not isinstance(pre_tokenizer, dict):
        return pre_tokenizer
    keep = {"ByteLevel": ("type", "add_prefix_space", "trim_offsets", "use_regex"),
            "Digits": ("type", "individual_digits"),
            "Split": ("type", "pattern", "behavior", "invert")}
    kind = pre_tokenizer.get("type")
    if kind == "Sequence":
        return {"type": "Sequence",
                "pretokenizers": [_normalized(p) for p in pre_tokenizer["pretokenizers"]]}
    return {k: pre_tokenizer[k] for k in keep.get(kind, pre_tokenizer) if k in pre_tokenizer}
