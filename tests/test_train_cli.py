"""`python -m tfllm.train` end to end: outputs, bad input, resume after SIGKILL or Ctrl-C."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_helpers import (assert_one_line_error, assert_resume_loses_nothing, error_lines,
                               metrics, run, start, train_run)

pytestmark = pytest.mark.slow  # trains in subprocesses

TINY = ["--config=tiny_test"]
XLA = ["--config.train.xla=True"]  # the compiled step users train with (tiny_test: off)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_run(tmp_path_factory, *TINY, *XLA, "--config.sample.length=20")


def assert_same_losses(expected, got):
    """Two runs' metrics log the same steps, training losses and evaluations (rel 1e-6)."""
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for a, b in zip(expected, got):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=0), a["step"]
        assert ("val_loss" in a) == ("val_loss" in b), a["step"]
        if "val_loss" in a:
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6, abs=0), a["step"]


def test_run_directory_holds_everything_a_run_needs(trained):
    run_dir, proc = trained
    for name in ("config.json", "tokenizer.json", "data/manifest.json", "checkpoints/checkpoint",
                 "best/checkpoint", "tensorboard"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    records = metrics(run_dir)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    for r in records:
        assert {"step", "elapsed_s", "tokens", "loss", "lr", "tokens_per_s", "mfu"} <= set(r)
        assert r["tokens"] == r["step"] * 4 * 16  # tiny_test: batch 4 x 16 tokens
        assert 0 < r["mfu"] < 1.5
    assert "val_loss" in records[1] and "val_loss" in records[3]
    assert records[-1]["val_loss"] < records[1]["val_loss"] < np.log(65) + 0.2
    assert "sample:" in proc.stdout and "done: step 20" in proc.stdout
    assert "MFU " in proc.stdout
    # train.precision=auto (the default) says what it chose; the run records the choice.
    assert "precision: float32, XLA on (train.precision=auto: " in proc.stdout
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["train"]["precision"] == "float32"
    # Time left on every progress line but the last.
    lines = [l for l in proc.stdout.splitlines() if l.startswith("step ")]
    assert all(" left" in l for l in lines[:-1])
    assert " left" not in lines[-1]


def test_batch_size_and_sequence_length_warm_up(tmp_path_factory):
    run_dir, _ = train_run(tmp_path_factory, *TINY, "--config.train.batch_size_start=2",
                           "--config.train.seq_len_start=4", "--config.train.shape_warmup_steps=10",
                           "--config.sample.length=0", name="warmup")
    records = metrics(run_dir)
    # Steps 0-4: 2 windows of 4 tokens, 5-9: 2 of 8, from step 10 the full 4 of 16.
    assert [r["tokens"] for r in records] == [40, 120, 440, 760]
    assert records[-1]["val_loss"] < records[1]["val_loss"] < np.log(65) + 0.2


def test_weight_averaging_is_what_is_evaluated_and_saved_last(trained, tmp_path_factory):
    run_dir, _ = train_run(tmp_path_factory, *TINY, "--config.train.ema_decay=0.8",
                           "--config.sample.length=0", name="ema")
    plain, averaged = metrics(trained[0]), metrics(run_dir)
    # The average does not steer training: the same training losses as without it ...
    assert [r["loss"] for r in averaged] == pytest.approx([r["loss"] for r in plain], rel=1e-3)
    # ... but the evaluations are of the averaged weights, and so is the last checkpoint.
    assert averaged[-1]["val_loss"] != pytest.approx(plain[-1]["val_loss"], rel=1e-4)
    import tfllm  # what tfllm.evaluate calls (its CLI: test_evaluate_matches_the_final_...)

    result = tfllm.evaluate_run(run_dir, batch_size=16)
    np.testing.assert_allclose(result["loss"], averaged[-1]["val_loss"], rtol=1e-4)


def test_a_finished_averaging_run_trained_further_continues_from_its_training_weights(
        tmp_path_factory):
    # The last checkpoint's model holds the average; training on must start from the
    # training values, as the uninterrupted run does. A constant rate keeps the first 20
    # steps independent of train.steps.
    args = [*TINY, "--config.deterministic=True", "--config.train.ema_decay=0.8",
            "--config.train.schedule=constant", "--config.sample.length=0"]
    uninterrupted, _ = train_run(tmp_path_factory, *args, "--config.train.steps=30", name="ema30")
    extended, _ = train_run(tmp_path_factory, *args, name="ema20")
    proc = run("tfllm.train", *args, "--config.train.steps=30", f"--run_dir={extended}")
    assert proc.returncode == 0 and "resuming" in proc.stdout, proc.stderr[-3000:]
    assert [r["step"] for r in metrics(extended)] == [5, 10, 15, 20, 25, 30]
    assert_same_losses(metrics(uninterrupted), metrics(extended))


def test_a_resume_may_split_the_batch_into_micro_batches(trained, tmp_path):
    # A run that ran out of memory is rerun with gradient accumulation: the same batches,
    # so the same losses up to float rounding.
    assert_resume_loses_nothing(trained[0], tmp_path, 10, *TINY, *XLA,
                                "--config.train.grad_accum_steps=2")


def test_rerun_of_a_finished_run_trains_nothing(trained):
    run_dir, _ = trained
    proc = run("tfllm.train", *TINY, f"--run_dir={run_dir}")
    assert proc.returncode == 0 and "already trained to step 20" in proc.stdout
    assert len(metrics(run_dir)) == 4


@pytest.mark.parametrize("change, phrase", [
    ("--config.model.hidden_dim=64", "model.hidden_dim=32, not 64"),
    # Muon's variables would load AdamW's by position without a word.
    ("--config.train.optimizer=muon", "train.optimizer='adamw', not 'muon'"),
    ("--config.train.ema_decay=0.9", "train.ema_decay=0.0, not 0.9"),
    ("--config.train.precision=mixed_float16", "train.precision='float32', not 'mixed_float16'"),
])
def test_resuming_with_another_training_state_is_one_line_and_changes_nothing(
        trained, tmp_path, change, phrase):
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained[0], run_dir)

    def state():  # the run's files; .lock is where a training process writes its pid
        return {name: os.path.getmtime(os.path.join(run_dir, name)) for name in os.listdir(run_dir)
                if name != ".lock"}

    before = state()
    proc = run("tfllm.train", *TINY, f"--run_dir={run_dir}", "--config.train.steps=30", change)
    assert_one_line_error(proc, f"holds a run with {phrase}", "pass a new --run_dir")
    assert state() == before


def test_evaluate_matches_the_final_validation_loss(trained):
    run_dir, _ = trained
    proc = run("tfllm.evaluate", f"--run_dir={run_dir}", "--json", "--batch_size=16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tokens"] == 111_539
    np.testing.assert_allclose(result["loss"], metrics(run_dir)[-1]["val_loss"], rtol=1e-4)
    np.testing.assert_allclose(result["perplexity"], np.exp(result["loss"]), rtol=1e-6)


@pytest.mark.parametrize("case", ["missing --data", "empty --data", "no run"])
def test_evaluate_bad_input_is_one_line(trained, case, tmp_path):
    run_dir, _ = trained
    (tmp_path / "empty.txt").write_text("\n")
    args, phrase = {
        "missing --data": ([f"--data={tmp_path / 'nope.txt'}"], "names no file; pass an existing "
                           "text file, folder or glob as --data"),
        "empty --data": ([f"--data={tmp_path / 'empty.txt'}"], "is empty; point --data at text"),
        "no run": ([f"--run_dir={tmp_path}"], "holds no tfllm run"),
    }[case]
    assert_one_line_error(run("tfllm.evaluate", f"--run_dir={run_dir}", *args), phrase)


def test_generate_is_reproducible_by_seed(trained):
    # In-process: tfllm.generate's --seed is this argument (the streaming test below checks
    # that two processes with one --seed print the same text).
    from tfllm.inference import generate
    from tfllm.runs.run_directory import load_run

    _, tokenizer, model = load_run(trained[0])
    prompt = tokenizer.encode("ROMEO:")
    a, b, other = (generate(model, prompt, 8, temperature=0.8, seed=seed)[0].tolist()
                   for seed in (3, 3, 4))
    assert a == b and a != other


def test_fine_tune_from_a_run_on_a_new_corpus(trained, tmp_path):
    run_dir, _ = trained
    corpus = tmp_path / "new.txt"
    corpus.write_text("KING HENRY:\nOnce more unto the breach, dear friends, once more.\n" * 60)
    proc = run("tfllm.train", *TINY, f"--run_dir={tmp_path / 'ft'}", f"--init_from={run_dir}",
               f"--config.data.source={corpus}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    corpus.write_text("Zebra \u00e9 " * 500)  # é is not in the Shakespeare vocabulary
    proc = run("tfllm.train", *TINY, f"--run_dir={tmp_path / 'ft2'}", f"--init_from={run_dir}",
               f"--config.data.source={corpus}")
    assert_one_line_error(proc, "does not fit the run's tokenizer")
    assert not os.path.exists(tmp_path / "ft2")


def bad_inputs(tmp):
    empty = tmp / "empty.txt"
    empty.write_text("\n\n")
    short = tmp / "short.txt"
    short.write_text("too short")
    blocker = tmp / "a_file"
    blocker.write_text("x")
    return {
        "unknown flag": (["--epochs=3"], "Unknown command line flag 'epochs'"),
        "unknown config key": (["--config.train.epochs=3"],
                               "--config.train.epochs: the config has no key 'epochs'"),
        # The default config is read as the flag is defined: a bad key once raised there.
        "unknown config key, default config": (["--config.train.lr=3"],
                                               "--config.train.lr: the config has no key 'lr'"),
        "misspelt config section, default config": (
            ["--config.trian.steps=3"],
            "--config.trian.steps: the config has no key 'trian' (did you mean \"train\""),
        "wrong type": (["--config.train.batch_size=lots"], "batch_size"),
        "batch size 0": (["--config.train.batch_size=0"], "--config.train.batch_size=0 is not allowed: it must be > 0"),
        "width not divisible by heads": (["--config.model.hidden_dim=33"],
                                         "divisible by model.num_heads=2"),
        "unknown choice": (["--config.train.optimizer=lamb"], "adamw"),
        "eval window beyond a GPT's context": (["--config.eval.seq_len=17"],
                                               "a GPT reads at most model.max_length=16"),
        "missing corpus": ([f"--config.data.source={tmp / 'missing.txt'}"], "names no file"),
        "empty corpus": ([f"--config.data.source={empty}"], "is empty"),
        "corpus shorter than a window": ([f"--config.data.source={short}"], "fewer than one window"),
        "unwritable run directory": ([f"--run_dir={blocker / 'run'}"], "cannot be created"),
        # Passes the permission check as root, and mkdir fails (Linux's /proc).
        "run directory the system refuses": (["--run_dir=/proc/tfllm_run"], "cannot be created"),
        "unknown config name": (["--config=nonesuch"], "no config 'nonesuch'"),
        "config file missing": ([f"--config={tmp / 'nope.py'}"], "cannot load the config"),
        "evaluation margin below -1": (["--config.eval.target_margin=-1.5"],
                                       "it must be > -1, or -1"),
        "compilation cache on a file": ([f"--compilation_cache={blocker / 'cache'}"],
                                        "cannot create the compilation cache directory"),
        "warm-up without its steps": (["--config.train.seq_len_start=4"],
                                      "train.shape_warmup_steps=0 is not allowed"),
        "averaging with pruning": (["--config.train.ema_decay=0.9",
                                    "--config.train.prune_sparsity=0.5"],
                                   "does not combine with quantization-aware training or pruning"),
        "attention dropout of 1": (["--config.model.attention_dropout=1.0"],
                                   "--config.model.attention_dropout=1.0 is not allowed: it must be < 1"),
        "warm-up from the full length": (["--config.train.seq_len_start=16",
                                          "--config.train.shape_warmup_steps=5"],
                                         "it must be below model.max_length=16"),
    }


BAD_INPUTS = ["unknown flag", "unknown config key", "unknown config key, default config",
              "misspelt config section, default config", "wrong type", "batch size 0",
              "width not divisible by heads", "unknown choice", "eval window beyond a GPT's context",
              "missing corpus", "empty corpus",
              "corpus shorter than a window", "unwritable run directory",
              "run directory the system refuses", "unknown config name",
              "config file missing", "evaluation margin below -1", "compilation cache on a file",
              "warm-up without its steps", "warm-up from the full length", "attention dropout of 1",
              "averaging with pruning"]


def test_help_lists_the_config_flag_and_its_default():
    # --help lists the command's own flags; --config is defined by tfllm.cli for it.
    for help_flag in ("--help", "--helpfull"):
        proc = run("tfllm.train", help_flag)
        assert proc.returncode == 0
        assert "--config: Config file" in proc.stdout and "(default: 'default')" in proc.stdout


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path):
    args, phrase = bad_inputs(tmp_path)[case]
    run_dir = tmp_path / "run"
    if not any(a.startswith("--run_dir") for a in args):
        args = args + [f"--run_dir={run_dir}"]
    if not any(a.startswith("--config=") for a in args) and not case.endswith("default config"):
        args = TINY + args
    proc = run("tfllm.train", *args)
    assert_one_line_error(proc, phrase)
    assert not run_dir.exists()


def test_a_checkpoint_without_the_state_the_run_restores_is_one_line(trained, tmp_path):
    # As an averaging run saved before checkpoints kept its training weights: its config
    # says averaging, its checkpoint holds no average and no training weights.
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["train"]["ema_decay"] = 0.9
    (run_dir / "config.json").write_text(json.dumps(config))
    before = sorted(os.listdir(run_dir / "checkpoints"))
    proc = run("tfllm.train", *TINY, f"--run_dir={run_dir}", "--config.train.ema_decay=0.9",
               "--config.train.steps=30")
    assert_one_line_error(proc, "ckpt-20 does not hold what this run restores",
                          f"start a new --run_dir, with --init_from={run_dir}")
    assert sorted(os.listdir(run_dir / "checkpoints")) == before


@pytest.mark.parametrize("override,phrase", [
    ("--config.model.hidden_dim=64", "model.hidden_dim=32, not 64"),
    ("--config.data.tokenizer=byte", "data.tokenizer='char', not 'byte'"),
])
def test_resuming_with_an_incompatible_config_is_refused(trained, override, phrase):
    run_dir, _ = trained
    before = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    proc = run("tfllm.train", *TINY, f"--run_dir={run_dir}", override)
    assert_one_line_error(proc, phrase)
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == before


RESUME_ARGS = TINY + XLA + ["--config.deterministic=True", "--config.train.steps=120",
                      "--config.checkpoint.every=20", "--config.eval.every=40",
                      "--config.log_every=5", "--config.model.dropout=0.1",
                      "--config.train.ema_decay=0.9", "--config.sample.length=0"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train_run(tmp_path_factory, *RESUME_ARGS, name="uninterrupted")[0]


def _stop_when_logged(run_dir, step, sig, tmp_path):
    """Starts (or resumes) RESUME_ARGS's run in `run_dir`, sends `sig` once its metrics
    log a step >= `step`; returns (exit code, stderr lines, last step logged, last
    checkpoint's step)."""
    # Forked from a process that has imported TensorFlow (tests/warm_start.py); Python's own
    # SIGINT handler, as in a fresh interpreter, even where the test runs in the background.
    stderr = tmp_path / f"stderr-{sig}"
    child = start("tfllm.train", *RESUME_ARGS, f"--run_dir={run_dir}", stdout=os.devnull,
                  stderr=stderr)
    log = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if log.exists() and any(json.loads(l)["step"] >= step for l in log.read_text().splitlines()):
            break
        time.sleep(0.02)
    child.send_signal(sig)
    child.wait(timeout=120)  # a command that hangs on its way out fails the test
    lines = error_lines(subprocess.CompletedProcess(child.args, child.returncode, "",
                                                    stderr.read_text()))
    last = [json.loads(l)["step"] for l in log.read_text().splitlines()][-1]
    checkpoint = int(tf.train.latest_checkpoint(str(run_dir / "checkpoints")).rsplit("-", 1)[1])
    return child.returncode, lines, last, checkpoint


def test_a_killed_or_interrupted_run_resumes_with_identical_losses(uninterrupted, tmp_path):
    """One run stopped twice: by Ctrl-C, then (resumed) by SIGKILL; each rerun resumes from
    the last checkpoint, and the losses are the uninterrupted run's."""
    run_dir = tmp_path / "stopped"
    code, lines, last, first = _stop_when_logged(run_dir, 50, signal.SIGINT, tmp_path)
    assert 50 <= last < 120, "the interruption must land mid-run"
    # one line saying where a rerun resumes; 128 + SIGINT
    assert code == 130 and lines == [
        f"tfllm.train: interrupted; rerun the same command to resume from step {first}, "
        "the last checkpoint."]
    # Killed once the resumed process has written a checkpoint of its own (every 20 steps).
    code, _, last, second = _stop_when_logged(run_dir, first + 25, signal.SIGKILL, tmp_path)
    assert code == -signal.SIGKILL and first < second and last < 120, "the kill must land mid-run"

    proc = run("tfllm.train", *RESUME_ARGS, f"--run_dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming {run_dir} from step {second}" in proc.stdout
    assert_same_losses(metrics(uninterrupted), metrics(run_dir))


def test_resume_after_the_corpus_changed_prepares_it_again(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 400)
    args = TINY + [f"--run_dir={tmp_path / 'run'}", f"--config.data.source={corpus}",
                   "--config.sample.length=0"]
    assert run("tfllm.train", *args, "--config.train.steps=10").returncode == 0
    corpus.write_text("To be, or not to be, that is the question.\n" * 500)
    proc = run("tfllm.train", *args, "--config.train.steps=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "data" / "manifest.json").read_text())
    assert manifest["tokens"] == corpus.stat().st_size  # made from the corpus as it is now


@pytest.mark.parametrize("case", ["empty prompt", "character outside the vocabulary",
                                  "beyond the learned context", "top_p outside (0, 1]",
                                  "negative temperature", "no checkpoint"])
def test_generate_bad_input_is_one_line(trained, case, tmp_path):
    run_dir, _ = trained
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (untrained / name).write_text(open(os.path.join(run_dir, name)).read())
    args, phrase = {
        "empty prompt": (["--prompt="], "the prompt is empty"),
        "negative temperature": (["--temperature=-1"], "temperature must be >= 0"),
        "character outside the vocabulary": (["--prompt=Zebra \u00e9"], "does not fit the run's tokenizer"),
        "beyond the learned context": (["--prompt=ROMEO:", "--max_new_tokens=100"],
                                       "exceeds the model's context of 16 learned positions"),
        "top_p outside (0, 1]": (["--top_p=1.5"], "top_p=1.5 is outside (0, 1]"),
        "no checkpoint": ([f"--run_dir={untrained}"], "has no checkpoint yet"),
    }[case]
    if not any(a.startswith("--run_dir") for a in args):
        args = [f"--run_dir={run_dir}"] + args
    assert_one_line_error(run("tfllm.generate", *args), phrase)


def test_generate_streams_the_same_text_and_honours_the_stop_token(trained):
    # (--sampler maps to the sampling settings by tfllm.inference.sampler_settings, tested
    # in tests/inference/test_sampling.py; greedy is temperature 0 there.)
    run_dir, _ = trained
    base = (f"--run_dir={run_dir}", "--max_new_tokens=12", "--seed=4")
    streamed = run("tfllm.generate", *base, "--prompt=RO", "--stream_chunk=3")
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    # The whole text at once, the prompt read from stdin: the same text as streamed.
    whole = run("tfllm.generate", *base, "--prompt_file=-", "--stream_chunk=0", input_text="RO")
    assert streamed.stdout == whole.stdout and len(whole.stdout) == len("RO") + 12 + 1
    text = whole.stdout[2:-1]
    stop = text[3]
    import tfllm  # --stop_at is this argument of the call tfllm.generate makes

    stopped = tfllm.generate_text(run_dir, "RO", max_new_tokens=12, seed=4, stop_at=stop)[0]
    assert stopped == text[:text.index(stop) + 1]
    assert_one_line_error(run("tfllm.generate", *base, "--stop_at=ab"), "is not a single token")
