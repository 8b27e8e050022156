"""Chat fine-tuning in a run: the template it trains with, its data, and its record.

A run whose data.source is JSON Lines trains on chat data (tfllm.data.chat_data): the
template is --config.data.chat_template's file, else the checkpoint's own, else tfllm's
ChatML; it is kept in the run directory (chat_template.jinja), where generation
(`tfllm.generate --chat`) and exports read it, and a resumed run must render with the same.
"""

import hashlib
import os

from tfllm.data.chat_data import (TEMPLATE_FILE, is_chat_source, load_chat_dataset,
                                  saved_template, template_source)
from tfllm.errors import UserError
from tfllm.files import write_text

__all__ = ["is_chat_source", "run_template", "chat_dataset", "save_template", "saved_template"]


def run_template(run_dir, data, checkpoint_template, resuming):
    """(template text, origin) of a chat run; UserError if a resumed run would render with
    another template than it trained with."""
    text, origin = template_source(data, checkpoint_template)
    saved = saved_template(run_dir) if resuming else None
    if saved is not None and saved != text:
        raise UserError(
            f"{run_dir} was trained with another chat template (its {TEMPLATE_FILE}, sha256 "
            f"{_sha(saved)}; now {origin}, {_sha(text)}); resume with the same template, or "
            "pass a new --run_dir.")
    return text, origin


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def chat_dataset(config, tokenizer, template_text, prepare_dir=None, progress=False):
    """The ChatDataset of the run's data.source, in windows of model.max_length: a
    prepared chat dataset read where it is, .jsonl files prepared into `prepare_dir` (the
    run's data/; a rerun or resume reuses it)."""
    if tokenizer is None or not hasattr(tokenizer, "special_tokens"):
        raise UserError(
            f"--config.data.source={config.data.source} is chat data (.jsonl), which needs a "
            "pretrained model's tokenizer; start from one with --init_from=hf:DIR or "
            "--init_from=gguf:FILE.")
    return load_chat_dataset(config.data, tokenizer, template_text, config.model.max_length,
                             config.seed, config.data.packing, prepare_dir, progress)


def save_template(run_dir, text):
    write_text(os.path.join(run_dir, TEMPLATE_FILE), text)
