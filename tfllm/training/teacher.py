"""The teacher of a distillation run (train.teacher): checked without TensorFlow before a
run starts, and loaded frozen under the strategy's scope. A teacher is a tfllm run
directory or a Hugging Face checkpoint (hf:PATH); the loss is tfllm.adapt.distillation's.
"""

import os

from tfllm.errors import UserError
from tfllm.pretrained.checkpoint import pretrained_path
from tfllm.runs.run_directory import latest_checkpoint, load_config


def check_teacher(config):
    """Checks what `train.teacher` names without TensorFlow: a run directory with a
    checkpoint, or a Hugging Face checkpoint directory; and, as far as the configs tell,
    the same kind of tokenizer as the student's and a context covering its windows.
    Raises UserError naming the fix."""
    spec = config.train.teacher
    if not spec:
        return
    path = pretrained_path(spec)
    if path is not None:
        from tfllm.pretrained.checkpoint import check_checkpoint

        check_checkpoint(path, config.model.max_length)
        if config.data.tokenizer != "hf":
            raise UserError(f"{_named(spec)} reads Hugging Face token ids; the student "
                            f"uses a {config.data.tokenizer} tokenizer: train it on the same ids "
                            f"(--init_from=hf:PATH, or a dataset prepared with "
                            f"--tokenizer_from=hf:{path}).")
        return
    saved = load_config(spec) if os.path.isdir(spec) else None
    if saved is None:
        raise UserError(f"{_named(spec)} holds no tfllm run (no config.json); pass a "
                        "run directory of tfllm.train or hf:PATH.")
    if latest_checkpoint(spec) is None:
        raise UserError(f"{_named(spec)} has no checkpoint yet; train the teacher "
                        "first (checkpoints are saved every checkpoint.every steps).")
    if saved.data.tokenizer != config.data.tokenizer:
        raise UserError(f"{_named(spec)} uses a {saved.data.tokenizer} tokenizer, the "
                        f"student a {config.data.tokenizer} one; teacher and student must share "
                        f"the tokenizer (set data.tokenizer={saved.data.tokenizer}).")
    _check_context(spec, saved.model, config.model.max_length)


def _named(spec):
    return f"train.teacher={spec}"


def _check_context(spec, teacher_model, length):
    if teacher_model.name == "gpt" and teacher_model.position == "learned" \
            and teacher_model.max_length < length:
        raise UserError(f"{_named(spec)} reads at most {teacher_model.max_length} "
                        f"positions (learned positions), the student's windows are {length}; "
                        f"set model.max_length <= {teacher_model.max_length}.")


def teacher_checkpoint(spec):
    """The checkpoint a tfllm run teacher `spec` would be loaded from now (its newest), or
    None for hf:PATH or no teacher. A run records it, so a resumed run keeps that teacher."""
    if not spec or pretrained_path(spec) is not None:
        return None
    return latest_checkpoint(spec)


def pinned_checkpoint(spec, recorded):
    """The teacher checkpoint a resumed run loads: the one it started with (`recorded`,
    from run.json), which must still exist; None to load the newest (hf:, or a run from
    before runs recorded it)."""
    if not recorded or pretrained_path(spec) is not None:
        return None
    if not os.path.exists(recorded + ".index"):
        raise UserError(f"{_named(spec)}: the checkpoint this run started with ({recorded}) is "
                        "gone (the teacher run kept only newer ones); restore it, or train the "
                        "student in a new --run_dir against the teacher as it is now.")
    return recorded


def load_teacher(spec, tokenizer, max_length, checkpoint=None):
    """The frozen teacher model `spec` names (train.teacher), its weights restored (from
    `checkpoint` of a tfllm run teacher, default its newest), for a student whose tokenizer
    is `tokenizer` and windows `max_length` tokens. Build it under the strategy's scope.
    UserError if the tokenizers differ."""
    path = pretrained_path(spec)
    if path is not None:
        from tfllm.pretrained.conversion import from_pretrained

        model, theirs = from_pretrained(path, max_length=max_length)
    else:
        from tfllm.adapt.lora import merge_lora
        from tfllm.runs.run_directory import load_run

        _, theirs, model = load_run(spec, checkpoint)
        merge_lora(model)  # a LoRA teacher: its adapters folded in, one matmul each
    if theirs is None or theirs.fingerprint() != tokenizer.fingerprint():
        raise UserError(f"{_named(spec)} has another tokenizer than the student's "
                        f"({_tokenizer_words(theirs)} against {_tokenizer_words(tokenizer)}); "
                        "teacher and student must share it: train the student on the "
                        "teacher's data, or with its tokenizer.")
    if model.vocab_size != tokenizer.vocab_size:  # a checkpoint's padded embedding table
        raise UserError(f"{_named(spec)} predicts {model.vocab_size} ids, the student "
                        f"{tokenizer.vocab_size}; train the student with the teacher's "
                        "vocabulary (--init_from=hf:PATH gives a student its size).")
    model.trainable = False
    return model


def configured_teacher(config, tokenizer, strategy, checkpoint=None):
    """The teacher a config's train.teacher names (from `checkpoint`, see load_teacher),
    loaded under `strategy`'s scope so its variables live where the student's do; None
    without one. Training and the benchmark both take it so."""
    spec = config.train.teacher
    if not spec:
        return None
    with strategy.scope():
        return load_teacher(spec, tokenizer, config.model.max_length, checkpoint)


def _tokenizer_words(tokenizer):
    if tokenizer is None:
        return "none"
    return f"{tokenizer.name}, {tokenizer.vocab_size} ids"
