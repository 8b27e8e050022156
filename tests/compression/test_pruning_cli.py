"""Magnitude pruning from the CLI: resuming mid-schedule, evaluation and export of the
pruned model, bad input."""

import json
import os

import numpy as np
import pytest

from tests.cli_helpers import (assert_one_line_error, assert_resume_loses_nothing, metrics, run,
                               train_run)

pytestmark = pytest.mark.slow  # trains in subprocesses

ARGS = ("--config=tiny_test", "--config.train.steps=40", "--prune_sparsity=0.5",
        "--config.train.prune_start_step=10", "--config.train.prune_end_step=30",
        "--config.train.prune_every=10", "--config.checkpoint.keep=5", "--config.sample.length=0")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir, _ = train_run(tmp_path_factory, *ARGS, name="pruned")
    return run_dir


def test_resume_mid_schedule_loses_nothing(reference, tmp_path):
    assert_resume_loses_nothing(reference, tmp_path, 20, *ARGS)


def test_pruned_run_evaluates_and_exports_sparse(reference, tmp_path):
    proc = run("tfllm.evaluate", f"--run_dir={reference}", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["kernel_sparsity"] == pytest.approx(0.5, abs=0.005)
    np.testing.assert_allclose(result["loss"], metrics(reference)[-1]["val_loss"], rtol=1e-5)

    out = str(tmp_path / "tflite")
    proc = run("tfllm.export", f"--run_dir={reference}", "--format=tflite", f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "tflite.json")) as f:
        sizes = json.load(f)["files"]
    import tfllm  # in this process: what tfllm.evaluate --tflite calls

    for variant, rtol in (("float32", 1e-4), ("dynamic_int8", 0.02)):
        tflite_loss = tfllm.evaluate_run(reference, tflite=os.path.join(out, variant + ".tflite"))
        np.testing.assert_allclose(tflite_loss["loss"], result["loss"], rtol=rtol)
    # The float32 file stores the half-zero kernels sparse: smaller than a dense one.
    from tfllm.inference.exporting import export_tflite
    from tfllm.runs.run_directory import load_run

    _, _, model = load_run(reference)
    dense = export_tflite(model, str(tmp_path / "dense.tflite"), 16, "float32")
    assert sizes["float32.tflite"] < 0.9 * dense


@pytest.mark.parametrize("flags,phrases", [
    (("--prune_sparsity=1.0",), ("train.prune_sparsity=1.0", "[0, 1)")),
    (("--prune_sparsity=0.5", "--config.train.prune_end_step=50"),
     ("train.prune_end_step=50", "train.steps=20]")),
    (("--prune_sparsity=0.5", "--config.train.prune_every=7"),
     ("train.prune_every=7", "divide")),
    (("--prune_sparsity=0.5", "--qat_start_step=10"), ("do not combine", "qat_start_step=-1")),
], ids=["sparsity_one", "end_beyond_steps", "every_not_dividing", "with_qat"])
def test_bad_pruning_input_is_one_line(flags, phrases, tmp_path):
    run_dir = tmp_path / "bad"
    proc = run("tfllm.train", "--config=tiny_test", *flags, f"--run_dir={run_dir}")
    assert_one_line_error(proc, *phrases)
    assert not run_dir.exists()
