"""Distillation: the loss is its formula, the teacher stays frozen and out of the
student's checkpoints, a resumed run equals an uninterrupted one, bad teachers are one line."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_helpers import assert_one_line_error, metrics, rewind, run
from tfllm._keras import keras
from tfllm.config import validate
from tfllm.configs import lstm, tiny_test
from tfllm.errors import UserError
from tfllm.models import GPT, RecurrentLM
from tfllm.training import Trainer
from tfllm.adapt.distillation import distillation_loss
from tfllm.training.teacher import check_teacher
from tfllm.training.training_model import TrainingModel


def train(config, run_dir):
    return Trainer(config, str(run_dir), print_fn=lambda *a: None).train()


def student_config(teacher, **train_keys):
    config = tiny_test.get_config()
    config.deterministic = True
    config.sample.length = 0
    config.log_every = 1
    config.model.dropout = 0.1
    config.train.update(dict(dict(teacher=teacher, distill_weight=0.7, distill_temperature=2.0),
                             **train_keys))
    return config


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("teacher") / "run"
    config = tiny_test.get_config()
    config.sample.length = 0
    config.model.update(num_layers=2, hidden_dim=48)
    train(config, run_dir)
    return str(run_dir)


@pytest.fixture(scope="module")
def student_run(teacher_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("student") / "run"
    train(student_config(teacher_run), run_dir)
    return str(run_dir)


def test_the_loss_is_its_formula_on_a_hand_example():
    teacher = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]])
    student = np.array([[[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]]])
    targets = np.array([[1, 2]])
    w, t = 0.3, 2.0

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    p_teacher = np.exp(log_softmax(teacher / t))
    kl = (p_teacher * (log_softmax(teacher / t) - log_softmax(student / t))).sum(-1)
    ce = -np.take_along_axis(log_softmax(student), targets[..., None], -1)[..., 0]
    expected = w * t * t * kl + (1 - w) * ce
    got = distillation_loss(targets, student, teacher, w, t).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # w = 0 is the plain cross-entropy; a student equal to its teacher has no KL term.
    np.testing.assert_allclose(distillation_loss(targets, student, teacher, 0.0, t), ce, rtol=1e-6)
    np.testing.assert_allclose(distillation_loss(targets, teacher, teacher, 1.0, t), 0, atol=1e-6)


@pytest.mark.parametrize("student_kind", ["gpt", "lstm"])
def test_the_teacher_is_frozen_and_the_student_learns(student_kind):
    """In user code, through model.fit: a GPT teacher teaches a GPT or an LSTM."""
    keras.utils.set_random_seed(0)
    teacher = GPT(vocab_size=13, num_layers=2, num_heads=2, hidden_dim=32, max_length=16)
    student = (GPT(vocab_size=13, num_layers=1, num_heads=2, hidden_dim=16, max_length=16)
               if student_kind == "gpt" else
               RecurrentLM(vocab_size=13, embedding_dim=8, units=16, max_length=16))
    before = [w.numpy() for w in teacher.weights]
    ids = np.random.RandomState(0).randint(0, 13, (32, 17))
    data = tf.data.Dataset.from_tensor_slices((ids[:, :-1], ids[:, 1:])).batch(8).repeat()
    task = TrainingModel(student, teacher=teacher, distill_weight=1.0, distill_temperature=2.0)
    task.compile(optimizer=keras.optimizers.Adam(1e-2))
    with tf.GradientTape() as tape:
        loss = task._loss_sum(ids[:8, :-1], ids[:8, 1:], None)
    assert all(g is None for g in tape.gradient(loss, teacher.weights))
    task.fit(data, steps_per_epoch=30, epochs=1, verbose=0)
    for a, b in zip(before, teacher.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert not task.trainable_weights or all(
        any(w is v for v in student.trainable_weights) for w in task.trainable_weights)
    after = task._loss_sum(ids[:8, :-1], ids[:8, 1:], None)
    assert float(after) < 0.5 * float(loss)  # the KL to the teacher (w = 1)


def test_the_student_checkpoint_holds_no_teacher(student_run):
    names = [n for n, _ in tf.train.list_variables(
        os.path.join(student_run, "checkpoints", "ckpt-20"))]
    model_names = [n for n in names if n.startswith("model/")]
    assert model_names and not any("teacher" in n for n in names)
    # the student's own 1-block GPT, not the teacher's 2 blocks
    assert not any("block_1" in n or "blocks/1/" in n for n in model_names), model_names


def test_a_resumed_distillation_run_equals_an_uninterrupted_one(teacher_run, student_run,
                                                                tmp_path):
    run_dir = rewind(student_run, tmp_path, 10)
    train(student_config(teacher_run), run_dir)
    expected, got = metrics(student_run), metrics(run_dir)
    assert [r["step"] for r in got] == [r["step"] for r in expected] and len(got) == 20
    for a, b in zip(expected, got):
        assert a["loss"] == b["loss"], (a, b)


def test_resuming_with_another_teacher_is_refused(teacher_run, student_run, tmp_path):
    run_dir = rewind(student_run, tmp_path, 10)
    with pytest.raises(UserError, match="train.distill_weight=0.7, not 0.5"):
        train(student_config(teacher_run, distill_weight=0.5), run_dir)


def test_a_teacher_with_another_tokenizer_is_refused(teacher_run, tmp_path):
    config = student_config(teacher_run)
    config.data.tokenizer = "byte"
    with pytest.raises(UserError, match="uses a char tokenizer, the student a byte one"):
        check_teacher(config)
    # the same kind of tokenizer, another vocabulary: refused once both are known
    other = tmp_path / "other.txt"
    other.write_text("abcabcabd\n" * 400)
    config = student_config(teacher_run)
    config.data.source = str(other)
    with pytest.raises(UserError, match="has another tokenizer than the student's"):
        train(config, tmp_path / "run")
    assert not os.path.exists(tmp_path / "run")


def test_a_teacher_without_a_checkpoint_is_refused(teacher_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no tfllm run"):
        check_teacher(student_config(str(empty)))
    no_checkpoint = tmp_path / "fresh"
    no_checkpoint.mkdir()
    (no_checkpoint / "config.json").write_text(open(os.path.join(teacher_run,
                                                                 "config.json")).read())
    with pytest.raises(UserError, match="has no checkpoint yet; train the teacher first"):
        check_teacher(student_config(str(no_checkpoint)))


@pytest.mark.parametrize("flag, message", [
    ("--config.train.distill_weight=1.5", "train.distill_weight=1.5 is not allowed: it must be in [0, 1]"),
    ("--config.train.distill_temperature=0", "train.distill_temperature=0.0 is not allowed: it must be > 0"),
    ("--config.train.teacher=/nonexistent/teacher", "train.teacher=/nonexistent/teacher holds no tfllm run"),
])
def test_bad_distillation_input_is_one_line(flag, message, tmp_path):
    proc = run("tfllm.train", "--config=tiny_test", flag, f"--run_dir={tmp_path / 'r'}")
    assert_one_line_error(proc, message)
    assert not os.path.exists(tmp_path / "r")


def test_remat_on_a_recurrent_model_is_refused():
    config = lstm.get_config()
    config.model.remat = "block"
    with pytest.raises(UserError, match="model.remat='block' is not allowed: a recurrent model "
                                        "has no blocks to recompute"):
        validate(config)


def test_a_hugging_face_checkpoint_teaches_a_student_started_from_it(tmp_path):
    """train.teacher=hf:DIR: the student imported from the same checkpoint starts equal
    to its teacher, so the teacher term starts at zero and the run trains."""
    fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf", "llama")
    config = tiny_test.get_config()
    config.sample.length = 0
    config.log_every = 1
    config.train.update(steps=2, teacher=f"hf:{fixture}", distill_weight=1.0,
                        distill_temperature=1.0)
    config.eval.every = 2
    config.checkpoint.every = 2
    Trainer(config, str(tmp_path / "run"), init_from=f"hf:{fixture}",
            print_fn=lambda *a: None).train()
    first = metrics(str(tmp_path / "run"))[0]
    assert 0 <= first["loss"] < 1e-6  # the KL of a model to itself


def test_a_resumed_run_keeps_the_teacher_checkpoint_it_started_with(tmp_path):
    """run.json records the teacher's checkpoint; a resumed student loads that one, even
    after the teacher trained further, and says so; gone, it is one line."""
    from tfllm.training.teacher import pinned_checkpoint, teacher_checkpoint

    teacher = tmp_path / "teacher"
    (teacher / "checkpoints").mkdir(parents=True)
    (teacher / "config.json").write_text("{}")
    for step in (10, 20):
        (teacher / "checkpoints" / f"ckpt-{step}.index").write_text("")
    (teacher / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-20"\n')
    assert teacher_checkpoint(str(teacher)) == str(teacher / "checkpoints" / "ckpt-20")
    assert teacher_checkpoint("hf:somewhere") is None and teacher_checkpoint("") is None
    started = str(teacher / "checkpoints" / "ckpt-10")
    assert pinned_checkpoint(str(teacher), started) == started
    assert pinned_checkpoint(str(teacher), None) is None  # a run from before the record
    os.remove(started + ".index")
    with pytest.raises(UserError, match=r"the checkpoint this run started with \(.*ckpt-10\) "
                                        "is gone"):
        pinned_checkpoint(str(teacher), started)
