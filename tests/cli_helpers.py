"""Running tfllm's commands as a user does: a process, its exit code and output."""

import json
import os
import shutil
import subprocess
import sys

# Environment variables that change what a process imports, or how TensorFlow starts: a
# command given one of them gets a real `python -m`, not a warm start.
IMPORT_TIME_ENV = ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL", "TFLLM_NATIVE_LOGS", "TF_USE_LEGACY_KERAS",
                   "CUDA_VISIBLE_DEVICES", "TF_ENABLE_ONEDNN_OPTS")


def run(module, *args, cwd=None, timeout=600, env=None, input_text=None, fresh=False):
    """The finished process of `python -m module args`; `env` adds to the environment (a
    value None removes that variable), `input_text` is its stdin. Unless `fresh` (or `env`
    changes the imports), the process is forked from one that has already imported
    TensorFlow (tests/warm_start.py): the same command, without the 6-8 s of imports."""
    if not fresh and not set(env or ()) & set(IMPORT_TIME_ENV):
        return _warm_run(module, args, cwd, env, input_text, timeout)
    env = _environment(env)
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input_text)
    return proc


def _environment(env):
    """The test's environment with `env` over it (None removes a variable), as a command's."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **(env or {}))
    return {key: value for key, value in env.items() if value is not None}


def start(module, *args, stdout, stderr, env=None):
    """`python -m module args` started and left running, for a test that signals it: a
    process forked from one that has imported TensorFlow (see `run`), with a Popen's
    `pid`, `send_signal`, `wait(timeout)` and `returncode`; stdout and stderr go to the
    files at these paths. SIGINT does what it does in a fresh interpreter."""
    from tests import warm_start

    return warm_start.start(module, args, None, _environment(env), os.devnull, os.fspath(stdout),
                            os.fspath(stderr))


def _warm_run(module, args, cwd, env, input_text, timeout):
    import tempfile

    from tests import warm_start

    env = _environment(env)
    with tempfile.TemporaryDirectory(prefix="tfllm-warm-") as scratch:
        return warm_start.run(module, args, cwd, env, input_text, timeout, scratch)


def error_lines(proc):
    """The non-blank lines of stderr. TensorFlow's start-up chatter is not filtered here:
    the commands must keep it off stderr themselves (tfllm.native_logs)."""
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_one_line_error(proc, *phrases):
    lines = error_lines(proc)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, lines
    assert proc.stdout == "", proc.stdout  # nothing printed before the error (a stray prompt)
    assert lines[0].startswith("tfllm."), lines
    assert ": error: " in lines[0], lines
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def train_run(tmp_path_factory, *args, name="run"):
    """(run_dir, process) of a `tfllm.train` run with `args` in a fresh directory; fails
    the test if training fails."""
    run_dir = str(tmp_path_factory.mktemp("runs") / name)
    proc = run("tfllm.train", *args, f"--run_dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def metrics(run_dir):
    """The records of a run's metrics.jsonl."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def rewind(finished_run, tmp_path, step):
    """A copy of a finished run as a run killed right after its step-`step` checkpoint."""
    run_dir = str(tmp_path / f"from_{step}")
    shutil.copytree(finished_run, run_dir)
    checkpoints = os.path.join(run_dir, "checkpoints")
    for name in os.listdir(checkpoints):
        if name.startswith("ckpt-") and int(name.split("-")[1].split(".")[0]) > step:
            os.remove(os.path.join(checkpoints, name))
    with open(os.path.join(checkpoints, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-{step}"\nall_model_checkpoint_paths: "ckpt-{step}"\n')
    return run_dir


def assert_resume_loses_nothing(finished_run, tmp_path, step, *args):
    """Rerunning `tfllm.train *args` on a copy of `finished_run` killed after its
    step-`step` checkpoint resumes there and logs the same losses (rtol 1e-5)."""
    import numpy as np

    run_dir = rewind(finished_run, tmp_path, step)
    proc = run("tfllm.train", *args, f"--run_dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming {run_dir} from step {step}" in proc.stdout
    expected, got = metrics(finished_run), metrics(run_dir)
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    # elapsed_s goes on from the checkpoint's record: the run's wall time across processes
    elapsed = [r["elapsed_s"] for r in got]
    assert elapsed == sorted(elapsed), elapsed
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
        if "val_loss" in a:
            np.testing.assert_allclose(b["val_loss"], a["val_loss"], rtol=1e-5)
