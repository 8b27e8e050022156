"""Hugging Face checkpoint <-> tfllm GPT: build, load and save."""

import json
import os

from tfllm.files import write_json, write_safetensors
from tfllm.models import build_model
from tfllm.pretrained import hf_config, hf_weights
from tfllm.pretrained.checkpoint import TOKENIZER_FILE, Checkpoint, open_checkpoint


def from_pretrained(path, max_length=None, dropout=0.0, attention_dropout=None):
    """The tfllm GPT of a Hugging Face checkpoint directory (config.json,
    model.safetensors or its sharded index, tokenizer.json), with its weights, and its
    tokenizer: (model, tokenizer; None if there is no tokenizer.json). Float32
    variables, whatever the checkpoint's dtype.

    Args:
        path: the checkpoint directory (tfllm downloads nothing: fetch it first, e.g.
            `huggingface-cli download gpt2 --local-dir gpt2`).
        max_length: the model's context (and, for learned positions, its position table);
            None = the checkpoint's.

    Raises UserError for anything tfllm would not compute exactly.

    Example:
        >>> model, tokenizer = from_pretrained("gpt2")
        >>> logits = model(tokenizer.encode("Hello")[None])
    """
    checkpoint = open_checkpoint(path)
    max_length = max_length or checkpoint.context
    hf_config.check_context(checkpoint.config, max_length)
    section = dict(checkpoint.model_section, max_length=max_length, dropout=dropout,
                   attention_dropout=attention_dropout)
    model = build_model(section, checkpoint.vocab_size)
    load_pretrained(model, checkpoint)
    if not isinstance(checkpoint, Checkpoint):  # a GGUF file: its tokenizer is required
        return model, checkpoint.tokenizer()
    has_tokenizer = os.path.exists(os.path.join(path, TOKENIZER_FILE))
    return model, checkpoint.tokenizer() if has_tokenizer else None


def load_pretrained(model, checkpoint):
    """Assigns a Checkpoint's (or a checkpoint directory's) weights to a built GPT of its
    architecture; UserError for a missing, extra or misshapen tensor."""
    if isinstance(checkpoint, str):
        checkpoint = open_checkpoint(checkpoint)
    hf_weights.load_weights(model, checkpoint.architecture, checkpoint.tensors())


def save_pretrained(model, tokenizer, path, settings=None):
    """Writes a tfllm GPT in the Hugging Face layout transformers loads
    (`AutoModelForCausalLM.from_pretrained(path)`): config.json, model.safetensors
    (float32) and the tokenizer (tokenizer.json; tokenizer.model for sentencepiece).
    `settings`: the directory of the checkpoint the model was imported from (or a run's
    copy of its SETTINGS_FILES), whose context, special token ids, generation config,
    tokenizer config and chat template the export keeps.
    Returns (architecture, tokenizer file). UserError for a model no architecture computes."""
    config = model.get_config()
    # An end-of-text token where the tokenizer has one; a char or byte run's separator
    # is a newline, which transformers' generate would stop at.
    eos_id = None
    if tokenizer is not None and tokenizer.name in ("hf", "sentencepiece"):
        eos = tokenizer.document_separator()
        eos_id = int(eos[0]) if len(eos) == 1 else None
    hf = hf_config.hf_config(config, eos_token_id=eos_id)
    if settings is not None:
        hf = _with_settings(hf, settings)
    tensors = hf_weights.export_tensors(model, hf["model_type"])
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, hf_weights.WEIGHTS_FILE), tensors, {"format": "pt"})
    written = None
    if tokenizer is not None:
        from tfllm.pretrained.tokenizer_export import write_tokenizer

        written = write_tokenizer(tokenizer, os.path.join(path, TOKENIZER_FILE))
        tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast"}
        if eos_id is not None:
            tokenizer_config["eos_token"] = tokenizer.decode([eos_id])
        write_json(os.path.join(path, "tokenizer_config.json"), tokenizer_config)
    if settings is not None:  # the checkpoint's own, over tfllm's defaults
        _copy_settings(settings, path)
    write_json(os.path.join(path, hf_config.CONFIG_FILE), hf)
    return hf["model_type"], written


# config.json keys an export takes from the checkpoint the model was imported from.
KEPT_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")


def _with_settings(hf, settings):
    """`hf` (the config.json an export writes) with the imported checkpoint's start, end and
    padding ids, and its context where rotary positions let the model read that far."""
    with open(os.path.join(settings, hf_config.CONFIG_FILE)) as f:
        original = json.load(f)
    hf = dict(hf, **{key: original[key] for key in KEPT_KEYS if key in original})
    if "max_position_embeddings" in hf and isinstance(
            original.get("max_position_embeddings"), int):
        hf["max_position_embeddings"] = max(hf["max_position_embeddings"],
                                            original["max_position_embeddings"])
    return hf


def _copy_settings(settings, path):
    import shutil

    from tfllm.pretrained.checkpoint import SETTINGS_FILES

    for name in SETTINGS_FILES:
        source = os.path.join(settings, name)
        if name != hf_config.CONFIG_FILE and os.path.isfile(source):
            shutil.copyfile(source, os.path.join(path, name))
