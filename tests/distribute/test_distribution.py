"""Data parallelism for real: MirroredStrategy over logical CPUs and MultiWorkerMirrored
over worker processes on localhost train what one device trains."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_helpers import assert_one_line_error, run, train_run

pytestmark = pytest.mark.slow  # trains in subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 20 steps, a loss record every step. XLA off everywhere: XLA cannot compile a step for
# replicas on logical CPUs (tfllm.training.training_setup.xla_works), so the single-device
# reference takes the same kernels.
RUN = ["--config=tiny_test", "--config.train.xla=False", "--config.log_every=1",
       "--config.eval.every=20", "--config.eval.batch_size=256", "--config.checkpoint.every=5",
       "--config.sample.length=0"]


def losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return np.array([json.loads(line)["loss"] for line in f])


def weights(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith("model/")}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return train_run(tmp_path_factory, *RUN)[0]


@pytest.mark.parametrize("devices", [2, 4])
def test_mirrored_over_logical_cpus_equals_one_device(single, devices, tmp_path):
    run_dir = str(tmp_path / "run")
    proc = run("tfllm.train", *RUN, f"--run_dir={run_dir}", "--strategy=mirrored",
               f"--cpu_devices={devices}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(losses(run_dir)) == 20
    np.testing.assert_allclose(losses(run_dir), losses(single), rtol=1e-4)


@pytest.mark.parametrize("optimizer", ["muon", "sophia"])
def test_optimizer_mirrored_over_logical_cpus_equals_one_device(optimizer, tmp_path_factory,
                                                                tmp_path):
    """Muon's stacked Newton-Schulz update runs per replica on the all-reduced gradient;
    Sophia's Hessian estimate (every 2 steps here) is all-reduced with it, each replica
    sampling its rows' labels as one device does."""
    args = [*RUN, f"--config.train.optimizer={optimizer}", "--config.train.hessian_every=2"]
    reference = train_run(tmp_path_factory, *args)[0]
    run_dir = str(tmp_path / "run")
    proc = run("tfllm.train", *args, f"--run_dir={run_dir}", "--strategy=mirrored",
               "--cpu_devices=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(losses(run_dir)) == 20
    np.testing.assert_allclose(losses(run_dir), losses(reference), rtol=1e-4)


def launch(run_dir, log_dir, env=None, stdout=subprocess.PIPE):
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "launch_workers.py"), "--num_workers=2",
         f"--log_dir={log_dir}", "--", "-m", "tfllm.train", *RUN, f"--run_dir={run_dir}",
         "--strategy=multi_worker"],
        stdout=stdout, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {})))


def test_multi_worker_killed_then_rerun_equals_one_device(single, tmp_path):
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    with open(tmp_path / "stdout", "w") as stdout:
        job = launch(run_dir, logs, stdout=stdout)
        # Kill worker 1 once the chief has a checkpoint mid-run.
        deadline = time.time() + 300
        while not (run_dir / "checkpoints" / "ckpt-10.index").exists():
            assert job.poll() is None and time.time() < deadline, job.communicate()
            time.sleep(0.1)
        time.sleep(0.5)  # the launcher passes the chief's output on every 0.2 s
        # The chief's progress reaches the terminal while the job runs.
        assert "step     10/20" in (tmp_path / "stdout").read_text()
        worker_1 = json.loads((logs / "workers.json").read_text())["pids"][1]
        os.kill(worker_1, signal.SIGKILL)
        killed_at = time.time()
        _, err = job.communicate(timeout=120)
    # The launcher noticed at once (not when the chief's collective timed out), stopped the
    # chief, and named the dead worker with its exit code; no traceback reached the user.
    # "At once": within the 20 s the launcher gives a SIGTERMed worker, plus room for a
    # loaded 2-core machine (40 s seen with the other pytest worker busy); a chief left
    # waiting in its collective would hang until communicate's timeout above.
    assert time.time() - killed_at < 60
    assert job.returncode == 128 + signal.SIGKILL
    assert err.strip().splitlines()[-1].startswith(
        "launch_workers: worker 1 was killed by SIGKILL; the others were stopped"), err
    assert "Traceback" not in (tmp_path / "stdout").read_text() + err
    assert int(tf.train.latest_checkpoint(run_dir / "checkpoints").rsplit("-", 1)[1]) < 20

    job = launch(run_dir, logs, env={"TFLLM_KEEP_WORKER_SCRATCH": "1"})
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-3000:]
    assert "resuming" in out and "done: step 20" in out
    assert err == "" and "Error" not in out, (out + err)[-3000:]  # a clean job prints no error
    # Nothing lost: the losses of the interrupted and resumed job are one device's.
    np.testing.assert_allclose(losses(run_dir), losses(single), rtol=1e-4)
    chief = weights(str(run_dir / "checkpoints" / "ckpt-20"))
    worker = weights(str(run_dir / ".workers" / "worker_1" / "checkpoints" / "ckpt-20"))
    reference = weights(os.path.join(single, "checkpoints", "ckpt-20"))
    assert chief.keys() == worker.keys() == reference.keys()
    for name in chief:
        np.testing.assert_array_equal(chief[name], worker[name])
    # Relative to the weights' norm, not per element: AdamW normalizes each element's
    # step, so summation-order noise in near-zero gradients (the key bias's is exactly
    # zero in exact arithmetic) becomes a full-size step there.
    difference = np.sqrt(sum(np.sum((chief[n] - reference[n]) ** 2) for n in chief))
    scale = np.sqrt(sum(np.sum(reference[n] ** 2) for n in chief))
    assert difference / scale <= 1e-4, difference / scale
    # The chief alone wrote the run's files.
    assert not (run_dir / ".workers" / "worker_1" / "metrics.jsonl").exists()


@pytest.mark.parametrize("case", ["unknown strategy", "batch not divisible", "mesh without dtensor",
                                  "multi_worker without TF_CONFIG"])
def test_bad_strategy_input_is_one_line(case, tmp_path):
    args, phrase = {
        "unknown strategy": (["--strategy=horovod"], "unknown strategy 'horovod'"),
        "batch not divisible": (["--strategy=mirrored", "--cpu_devices=3"],
                                "train.batch_size=4 does not split across 3 replicas"),
        "mesh without dtensor": (["--strategy=mirrored", "--mesh=batch:2"], "--mesh is for"),
        "multi_worker without TF_CONFIG": (["--strategy=multi_worker"], "needs TF_CONFIG"),
    }[case]
    proc = run("tfllm.train", "--config=tiny_test", f"--run_dir={tmp_path / 'run'}", *args,
               env={"TF_CONFIG": None}, timeout=300)
    assert_one_line_error(proc, phrase)
    assert not (tmp_path / "run").exists()
