"""The LSTM language model through the commands: train, evaluate, generate."""

import json
import os

import numpy as np
import pytest

from tests.cli_helpers import run, train_run

pytestmark = pytest.mark.slow  # trains in subprocesses

TINY_LSTM = ["--config=lstm", "--config.model.units=16", "--config.model.embedding_dim=8",
             "--config.model.max_length=16", "--config.train.steps=10",
             "--config.train.batch_size=4", "--config.train.warmup_steps=2",
             "--config.eval.every=10", "--config.eval.seq_len=512", "--config.eval.batch_size=16",
             "--config.checkpoint.every=10", "--config.log_every=5", "--config.sample.length=20"]


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    return train_run(tmp_path_factory, *TINY_LSTM, name="lstm")[0]


def test_evaluate_reads_the_long_windows_the_run_evaluated_with(lstm_run):
    with open(os.path.join(lstm_run, "metrics.jsonl")) as f:
        val_loss = [json.loads(line) for line in f][-1]["val_loss"]
    proc = run("tfllm.evaluate", f"--run_dir={lstm_run}", "--json", "--batch_size=16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tokens"] == 111_539  # every validation character predicted once
    np.testing.assert_allclose(result["loss"], val_loss, rtol=1e-4)


def test_generate_goes_past_the_training_window(lstm_run):
    proc = run("tfllm.generate", f"--run_dir={lstm_run}", "--prompt=KING:",
               "--max_new_tokens=40", "--seed=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("KING:") and len(proc.stdout.rstrip("\n")) >= 40


def test_tflite_models_carry_the_state_across_chunks(lstm_run, tmp_path):
    """The TFLite files read 16-token chunks and carry the LSTM state: over the run's
    512-token evaluation windows the float32 file scores what the Keras model does."""
    with open(os.path.join(lstm_run, "metrics.jsonl")) as f:
        val_loss = [json.loads(line) for line in f][-1]["val_loss"]
    # In this process: the commands are these calls with flags (their own behaviour is
    # tests/test_export_cli.py's), and each process would load TensorFlow again.
    import tfllm

    out = str(tmp_path / "tflite")
    for fmt in ("tflite", "tflite_int8"):
        tfllm.export_run(lstm_run, fmt, output=out)
    losses = {}
    for variant in ("float32", "dynamic_int8", "int8"):
        result = tfllm.evaluate_run(lstm_run, batch_size=16,
                                    tflite=os.path.join(out, variant + ".tflite"))
        assert result["tokens"] == 111_539
        losses[variant] = result["loss"]
    np.testing.assert_allclose(losses["float32"], val_loss, rtol=1e-4)
    np.testing.assert_allclose(losses["dynamic_int8"], val_loss, rtol=0.01)
    np.testing.assert_allclose(losses["int8"], val_loss, rtol=0.03)
    from tfllm.inference.exporting import is_full_integer, tflite_interpreter

    assert is_full_integer(tflite_interpreter(os.path.join(out, "int8.tflite")))
