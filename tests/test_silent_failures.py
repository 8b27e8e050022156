"""Nothing finishes with exit 0 and a wrong result: divergence, a second process on a run,
weights that do not fit, config files, tokenizers that cannot give what was asked.

In-process through the library where the command line is not what is tested; the
one-line form of the commands' errors is checked on a few cases of each kind.
"""

import json
import os
import shutil
import subprocess

import pytest

from tests.cli_helpers import assert_one_line_error, run
from tfllm.config import identity_mismatch, validate
from tfllm.configs import lstm, tiny_test
from tfllm.data import DEFAULT_CORPUS
from tfllm.errors import UserError
from tfllm.training import Trainer
from tfllm.runs.run_directory import RunLock, latest_checkpoint, load_run, restore_weights


def quiet_train(config, run_dir, **kwargs):
    return Trainer(config, str(run_dir), print_fn=lambda *args: None, **kwargs).train()


def tiny(**train):
    config = tiny_test.get_config()
    config.sample.length = 0
    config.train.update(train)
    return config


def tiny_lstm():
    config = lstm.get_config()
    config.model.update(units=16, embedding_dim=16, num_layers=1)
    config.train.update(steps=10, batch_size=4, warmup_steps=2)
    config.eval.update(every=10, seq_len=0, batch_size=16)
    config.checkpoint.every = 10
    config.log_every = 5
    config.sample.length = 0
    return config


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "gpt"
    quiet_train(tiny(steps=10), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "lstm"
    quiet_train(tiny_lstm(), run_dir)
    return run_dir


def strict_json_records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in metrics.jsonl"))
                for line in f]


# Divergence ---------------------------------------------------------------------------

def test_a_diverging_fresh_run_stops_with_the_step_and_leaves_nothing(tmp_path):
    with pytest.raises(UserError, match=r"training diverged at step 5: the training loss is nan; "
                                        r"no checkpoint was written\. Lower "
                                        r"--config\.train\.learning_rate \(now 1e\+06\)"):
        quiet_train(tiny(learning_rate=1e6), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_divergence_after_a_checkpoint_keeps_it_as_the_resume_point(gpt_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(gpt_run, run_dir)
    with pytest.raises(UserError, match="diverged at step 15: .*the last checkpoint, step 10, is "
                                        "kept and a rerun resumes from it"):
        quiet_train(tiny(steps=20, learning_rate=1e6), run_dir)
    assert latest_checkpoint(str(run_dir)).endswith("ckpt-10")
    assert sorted(os.listdir(run_dir / "best")) == sorted(os.listdir(gpt_run / "best"))
    assert [r["step"] for r in strict_json_records(run_dir)] == [5, 10]
    # A rerun at a sane learning rate resumes from step 10 and finishes.
    assert quiet_train(tiny(steps=20), run_dir)["step"] == 20
    steps = [r["step"] for r in strict_json_records(run_dir)]
    assert steps == [5, 10, 15, 20]


def test_a_loss_above_max_loss_stops_the_run(tmp_path):
    with pytest.raises(UserError, match=r"diverged at step 5: the training loss is 4\.\d+, "
                                        r"above train\.max_loss=3"):
        quiet_train(tiny(max_loss=3.0), tmp_path / "run")


@pytest.mark.parametrize("key", ["train.learning_rate", "train.target_val_loss",
                                 "train.max_loss", "model.dropout"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_validation_refuses_non_finite_numbers_everywhere(key, value):
    config = tiny()
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(UserError, match=f"--config.{key}=.* is not allowed"):
        validate(config)


# One process per run directory ----------------------------------------------------------

def test_a_second_training_process_is_refused_while_readers_keep_working(gpt_run):
    def state():  # what the refused process must not touch (the lock is this test's)
        return {name: os.path.getmtime(gpt_run / name) for name in os.listdir(gpt_run)
                if name != ".lock"}

    before = state()
    lock = RunLock(str(gpt_run)).acquire()  # as a training process holds it
    try:
        proc = run("tfllm.train", "--config=tiny_test", f"--run_dir={gpt_run}",
                   "--config.train.steps=20", "--config.train.learning_rate=0.01")
        assert_one_line_error(proc, f"{gpt_run} is being trained by tfllm.train (pid {os.getpid()})")
        load_run(str(gpt_run))  # evaluate, generate and export read a run under training
    finally:
        lock.release()
    assert state() == before


def test_a_lock_file_left_by_a_killed_process_is_no_obstacle(gpt_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(gpt_run, run_dir)
    (run_dir / ".lock").write_text("tfllm.train (pid 999999)")  # nobody holds the flock
    assert quiet_train(tiny(steps=15), run_dir)["step"] == 15


# Weights that do not fit ----------------------------------------------------------------

def test_a_checkpoint_of_another_architecture_is_refused_naming_both(gpt_run, lstm_run):
    config, tokenizer, gpt = load_run(str(gpt_run))
    with pytest.raises(UserError, match=r"--checkpoint=.*ckpt-10 \(a 1-layer LSTM of 16 units "
                                        r"over 65 tokens\) does not fit the run's model \(a "
                                        r"1-layer GPT of width 32 over 65 tokens\): its "
                                        r"embeddings has shape \(65, 16\), this model's \(65, 32\)"):
        restore_weights(gpt, latest_checkpoint(str(lstm_run)), "--checkpoint", config.model,
                        tokenizer.vocab_size)


def test_init_from_another_architecture_or_shape_is_refused_before_training(gpt_run, lstm_run,
                                                                           tmp_path):
    with pytest.raises(UserError, match=r"--init_from=.*lstm.*ckpt-10 \(a 1-layer LSTM.*\) does "
                                        r"not fit the run's model \(a 1-layer GPT"):
        quiet_train(tiny(), tmp_path / "a", init_from=str(lstm_run))
    wider = tiny()
    wider.model.hidden_dim = 64
    with pytest.raises(UserError, match=r"does not fit the run's model \(a 1-layer GPT of width "
                                        r"64 over 65 tokens\): its \S+ has shape \(32,?\S*\), "
                                        r"this model's \(64"):
        quiet_train(wider, tmp_path / "b", init_from=str(gpt_run))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_init_from_into_a_run_directory_that_holds_a_run_is_refused(gpt_run, lstm_run):
    with pytest.raises(UserError, match=r"already holds a run, started from scratch; --init_from "
                                        r"starts a new run"):
        quiet_train(tiny(steps=20), gpt_run, init_from=str(lstm_run))


def test_a_killed_fine_tune_resumes_with_the_same_init_from(gpt_run, tmp_path):
    run_dir = tmp_path / "ft"
    quiet_train(tiny(steps=10), run_dir, init_from=str(gpt_run))
    assert quiet_train(tiny(steps=15), run_dir, init_from=str(gpt_run))["step"] == 15


@pytest.mark.parametrize("case", ["--checkpoint missing", "--checkpoint a directory",
                                  "export --checkpoint missing", "--init_from missing",
                                  "--tflite of another vocabulary"])
def test_paths_that_name_no_fitting_weights_are_one_line(case, gpt_run, tmp_path):
    byte_tflite = tmp_path / "byte.tflite"
    if case == "--tflite of another vocabulary":
        from tfllm.inference.exporting import export_tflite
        from tfllm.models import GPT

        export_tflite(GPT(vocab_size=256, num_layers=1, num_heads=2, hidden_dim=16, max_length=16),
                      str(byte_tflite), 16)
    command, args, phrase = {
        "--checkpoint missing": ("tfllm.evaluate", [f"--checkpoint={gpt_run}/checkpoints/ckpt-7"],
                                 f"no checkpoint there (no ckpt-7.index; {gpt_run}/checkpoints "
                                 "holds ckpt-10)"),
        "--checkpoint a directory": ("tfllm.generate", [f"--checkpoint={gpt_run}/checkpoints"],
                                     "is a directory; pass a checkpoint prefix"),
        "export --checkpoint missing": ("tfllm.export", [f"--checkpoint={gpt_run}/nope",
                                                         f"--output={tmp_path}/new"],
                                        "no checkpoint there (no nope.index"),
        "--init_from missing": ("tfllm.train", ["--config=tiny_test", f"--run_dir={tmp_path}/new",
                                                f"--init_from={tmp_path}/nowhere/run"],
                                "does not exist; pass a run directory of tfllm.train"),
        "--tflite of another vocabulary": ("tfllm.evaluate", [f"--tflite={byte_tflite}"],
                                           "scores 256 tokens, the run's tokenizer has 65"),
    }[case]
    if command != "tfllm.train":
        args = [f"--run_dir={gpt_run}"] + args
    assert_one_line_error(run(command, *args), phrase)
    assert not (tmp_path / "new").exists()


# Config files and settings --------------------------------------------------------------

CONFIG_FILES = {
    "an unknown key": ("c.train.stepz = 3", "the config has no key 'train.stepz'"),
    "a value of the wrong type": ("c.train.steps = '20'",
                                  "line 6: TypeError: Could not override field 'steps'"),
    "an infinite number": ("c.train.learning_rate = float('inf')",
                           "--config.train.learning_rate=inf is not allowed: it must be a finite"),
    "a syntax error": ("c.train.steps = = 3", "line 6: invalid syntax"),
    "an exception": ("raise RuntimeError('no such corpus')",
                     "line 6: RuntimeError: no such corpus"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_a_config_file_passes_the_checks_flags_get(case, tmp_path):
    line, phrase = CONFIG_FILES[case]
    path = tmp_path / "my_config.py"
    path.write_text("from tfllm.configs import tiny_test\n\n\ndef get_config():\n"
                    f"    c = tiny_test.get_config()\n    {line}\n    return c\n")  # line 6
    proc = run("tfllm.train", f"--config={path}", f"--run_dir={tmp_path / 'run'}")
    assert_one_line_error(proc, phrase)
    assert not (tmp_path / "run").exists()


def test_a_config_file_missing_a_key_is_refused():
    config = tiny()
    del config.train["max_loss"]
    with pytest.raises(UserError, match="the config lacks 'train.max_loss'; start a config file "
                                        "from tfllm.configs.base.get_config()"):
        validate(config)


@pytest.mark.parametrize("vocab_size, phrase", [
    (1, "vocab_size=1 is too small for this corpus; use at least"),
    (50000, r"vocab_size=50000 is more than this corpus gives: at most \d+ pieces")])
def test_a_sentencepiece_vocabulary_the_corpus_cannot_give_is_refused(vocab_size, phrase,
                                                                     tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 200)
    config = tiny()
    config.data.update(source=str(corpus), tokenizer="sentencepiece", vocab_size=vocab_size)
    with pytest.raises(UserError, match=phrase):
        quiet_train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_resume_under_another_kind_of_model_names_model_name():
    assert identity_mismatch(tiny().to_dict(), tiny_lstm().to_dict())[0] == "model.name"


def test_help_exits_zero():
    proc = run("tfllm.evaluate", "--help", timeout=60)
    assert proc.returncode == 0 and "--run_dir" in proc.stdout


# A full disk ----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_full_disk_is_one_line_and_a_rerun_resumes(small_disk, tmp_path):
    corpus = tmp_path / "corpus.txt"
    with open(DEFAULT_CORPUS) as f:
        corpus.write_text(f.read()[:30000])
    args = ["--config=tiny_test", f"--config.data.source={corpus}", "--config.train.steps=30",
            "--config.checkpoint.every=10", "--config.sample.length=0",
            f"--run_dir={small_disk / 'run'}"]
    proc = run("tfllm.train", *args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and lines == [
        f"tfllm.train: error: no space left on the device of {small_disk / 'run'} while writing "
        "the run; free some space and rerun the same command to resume from step 10, the last "
        "checkpoint."]
    assert not any(name.endswith("_temp") for sub in ("checkpoints", "best")
                   for name in os.listdir(small_disk / "run" / sub))
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    proc = run("tfllm.train", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming" in proc.stdout and latest_checkpoint(str(small_disk / "run")).endswith("-30")


def test_lora_on_a_random_base_and_a_warmup_longer_than_the_run_are_said(tmp_path):
    lines = []
    Trainer(tiny(steps=10, lora_rank=2, warmup_steps=30), str(tmp_path / "run"),
            print_fn=lines.append).train()
    lora = [line for line in lines if line.startswith("LoRA: rank 2")]
    assert lora and "the base is randomly initialized (no --init_from)" in lora[0], lines
    assert ("note: train.warmup_steps=30 is longer than train.steps=10: the learning rate "
            "never reaches its peak") in "\n".join(lines)
