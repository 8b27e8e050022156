"""Knowledge distillation: a student learns from a frozen teacher's next-token distributions.

The per-token loss (Hinton et al., 2015), with w = train.distill_weight and
T = train.distill_temperature:

    w * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - w) * CE(text, student)

T^2 keeps the teacher term's gradients the size of the cross-entropy's as T changes.
The teacher runs in inference mode, gets no gradients and is never in the student's
checkpoints; `train.teacher` names it again when a run resumes. `TrainingModel(student,
teacher=...)` trains with this loss from `model.fit` in user code; the teacher of a run
is loaded by tfllm.training.teacher.
"""


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
