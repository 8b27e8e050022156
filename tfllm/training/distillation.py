"""Knowledge distillation: a student learns from a frozen teacher's next-token distributions.

The per-token loss (Hinton et al., 2015), with w = train.distill_weight and
T = train.distill_temperature:

    w * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - w) * CE(text, student)

T^2 keeps the teacher term's gradients the size of the cross-entropy's as T changes.
The teacher runs in inference mode, gets no gradients and is never in the student's
checkpoints; `train.teacher` names it again when a run resumes. `TrainingModel(student,
teacher=...)` trains with this loss from `model.fit` in user code.

TensorFlow loads on first use, not on import: tfllm.train checks the teacher
(`check_teacher`) before paying for it.
"""

import os

from tfllm.errors import UserError
from tfllm.pretrained.checkpoint import hf_path


def distillation_loss(targets, student_logits, teacher_logits, weight, temperature):
    """Per-token distillation loss (B, T), float32.

    Args:
        targets: next-token ids (B, T).
        student_logits, teacher_logits: (B, T, V) over the same vocabulary.
        weight: w in [0, 1], the teacher term's share.
        temperature: T > 0.
    """
    import tensorflow as tf

    student = tf.cast(student_logits, tf.float32)
    teacher_logp = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature)
    student_logp = tf.nn.log_softmax(student / temperature)
    kl = tf.reduce_sum(tf.exp(teacher_logp) * (teacher_logp - student_logp), axis=-1)
    loss = (weight * temperature ** 2) * kl
    if weight < 1:
        loss += (1 - weight) * tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(targets, tf.int32), logits=student)
    return loss


def check_teacher(config):
    """Checks what `train.teacher` names without TensorFlow: a run directory with a
    checkpoint, or a Hugging Face checkpoint directory; and, as far as the configs tell,
    the same kind of tokenizer as the student's and a context covering its windows.
    Raises UserError naming the fix."""
    from tfllm.training.run_directory import load_config, latest_checkpoint

    spec = config.train.get("teacher", "")
    if not spec:
        return
    path = hf_path(spec)
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
    if teacher_model.get("name") == "gpt" and teacher_model.get("position") == "learned" \
            and teacher_model.max_length < length:
        raise UserError(f"{_named(spec)} reads at most {teacher_model.max_length} "
                        f"positions (learned positions), the student's windows are {length}; "
                        f"set model.max_length <= {teacher_model.max_length}.")


def load_teacher(spec, tokenizer, max_length):
    """The frozen teacher model `spec` names (train.teacher), its weights restored, for a
    student whose tokenizer is `tokenizer` and windows `max_length` tokens. Build it under
    the strategy's scope. UserError if the tokenizers differ."""
    path = hf_path(spec)
    if path is not None:
        from tfllm.pretrained.conversion import from_pretrained

        model, theirs = from_pretrained(path, max_length=max_length)
    else:
        from tfllm.training.lora import merge_lora
        from tfllm.training.run_directory import load_run

        _, theirs, model = load_run(spec)
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


def configured_teacher(config, tokenizer, strategy):
    """The teacher a config's train.teacher names, loaded under `strategy`'s scope so its
    variables live where the student's do; None without one. Training and the benchmark
    both take it so."""
    spec = config.train.get("teacher", "")
    if not spec:
        return None
    with strategy.scope():
        return load_teacher(spec, tokenizer, config.model.max_length)


def _tokenizer_words(tokenizer):
    if tokenizer is None:
        return "none"
    return f"{tokenizer.name}, {tokenizer.vocab_size} ids"
