"""Quantization-aware training from the CLI: the switch, resuming on either side of it, the
full-integer int8 export and its agreement with the QAT Keras model, bad input."""

import json
import os

import numpy as np
import pytest

from tests.cli_helpers import (assert_one_line_error, assert_resume_loses_nothing, metrics, run,
                               train_run)

pytestmark = pytest.mark.slow  # trains in subprocesses

ARGS = ("--config=tiny_test", "--config.train.steps=30", "--qat_start_step=10",
        "--config.checkpoint.keep=5", "--config.sample.length=0")
# The int8 model and the QAT Keras model it comes from agree within int8 rounding of the
# activations the QAT model keeps float (norms, residual stream, logits): documented in
# docs/quantization.md.
PROB_ATOL = 0.03         # every token's probability
TARGET_LOGPROB_MAE = 0.03  # mean |difference| of the targets' log-probabilities
LOSS_RTOL = 0.01


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir, proc = train_run(tmp_path_factory, *ARGS, name="qat")
    return run_dir


@pytest.mark.parametrize("step", [10, 20], ids=["before_switch", "after_switch"])
def test_resume_on_either_side_of_the_switch_loses_nothing(reference, tmp_path, step):
    assert_resume_loses_nothing(reference, tmp_path, step, *ARGS)


def test_int8_export_runs_and_agrees_with_the_qat_model(reference, tmp_path):
    out = str(tmp_path / "tflite")
    proc = run("tfllm.export", f"--run_dir={reference}", "--format=tflite_int8", f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = os.path.join(out, "int8.tflite")
    import tensorflow as tf

    from tfllm.compression import is_quantized
    from tfllm.data import PreparedDataset
    from tfllm.data.pipeline import eval_windows
    from tfllm.inference.exporting import is_full_integer, tflite_interpreter, tflite_loss
    from tfllm.runs.run_directory import load_run

    config, _, model = load_run(reference)
    assert is_quantized(model)
    interpreter = tflite_interpreter(path)
    assert is_full_integer(interpreter)
    tokens = PreparedDataset(os.path.join(reference, "data"))
    inputs, targets, weights = (a[:32] for a in eval_windows(tokens.val, 16, 32))
    keras_logp = tf.nn.log_softmax(model(inputs, training=False)).numpy()
    runner = tflite_interpreter(path, reference=True).get_signature_runner()
    tflite_logp = tf.nn.log_softmax(runner(token_ids=inputs)["logits"]).numpy()
    assert np.max(np.abs(np.exp(keras_logp) - np.exp(tflite_logp))) < PROB_ATOL
    keras_target = np.take_along_axis(keras_logp, targets[..., None], -1)
    tflite_target = np.take_along_axis(tflite_logp, targets[..., None], -1)
    assert np.mean(np.abs(keras_target - tflite_target)) < TARGET_LOGPROB_MAE
    keras_loss = -np.mean(keras_target)
    np.testing.assert_allclose(tflite_loss(path, inputs, targets, weights), keras_loss,
                               rtol=LOSS_RTOL)
    proc = run("tfllm.evaluate", f"--run_dir={reference}", f"--tflite={path}", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["loss"] > 0


def test_qat_run_evaluates_as_trained(reference):
    proc = run("tfllm.evaluate", f"--run_dir={reference}", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["loss"], metrics(reference)[-1]["val_loss"], rtol=1e-5)
    assert result["kernel_sparsity"] < 0.01


@pytest.mark.parametrize("case", ["beyond_steps", "mixed_precision", "no_representative_data"])
def test_bad_qat_input_is_one_line(case, reference, tmp_path):
    run_dir = tmp_path / "bad"
    if case == "no_representative_data":
        proc = run("tfllm.export", f"--run_dir={reference}", "--format=tflite_int8",
                   "--representative_windows=0", f"--output={run_dir}")
        assert_one_line_error(proc, "--representative_windows=0", "use e.g. 128")
    elif case == "beyond_steps":
        proc = run("tfllm.train", "--config=tiny_test", "--qat_start_step=20", f"--run_dir={run_dir}")
        assert_one_line_error(proc, "train.qat_start_step=20", "below train.steps=20")
    else:
        proc = run("tfllm.train", "--config=tiny_test", "--qat_start_step=5",
                   "--config.train.precision=mixed_bfloat16", f"--run_dir={run_dir}")
        assert_one_line_error(proc, "quantization-aware training runs in float32")
    assert not run_dir.exists()
