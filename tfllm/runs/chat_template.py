"""The chat template of a run or pretrained model, without TensorFlow: a chat fine-tuning
run's own, else that of the checkpoint the run was imported from (kept in RUN/pretrained/),
or a pretrained model's (`hf:DIR`, `gguf:FILE`)."""

import os

from tfllm.data.chat_data import read_template, saved_template
from tfllm.errors import UserError


def chat_template_of(spec, template_file=None, asked="--chat", option="--chat_template=FILE"):
    """(template text, origin) of a run or pretrained spec; UserError if it has none,
    naming what `asked` for it and the `option` that passes one."""
    from tfllm.pretrained.checkpoint import PRETRAINED_DIR, open_checkpoint, pretrained_path

    if template_file:
        return read_template(template_file, option.split("=")[0]), template_file
    path = pretrained_path(spec)
    if path is not None:
        text = open_checkpoint(path).chat_template
    else:  # a chat run's own, else that of the checkpoint the run was imported from
        text = saved_template(spec) or saved_template(os.path.join(spec, PRETRAINED_DIR))
    if not text:
        raise UserError(f"{asked}: {spec} has no chat template (a chat fine-tuning run or a "
                        f"checkpoint that ships one has); pass one with {option}.")
    return text, f"{spec}'s"
