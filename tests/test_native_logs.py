"""Commands keep TensorFlow's native start-up chatter off stderr; real errors still show,
even from a process that crashes right after writing them."""

import subprocess
import sys

from tests.cli_helpers import assert_one_line_error, run
from tfllm.native_logs import is_noise

CUDA_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796373870.577928    2534 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "E0000 00:00:1796373872.771485    2534 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]
REAL_ERROR = ("E0000 00:00:1796373872.771485    2534 cuda_executor.cc:90] failed to allocate "
              "4.00GiB from device: CUDA_ERROR_OUT_OF_MEMORY")


def test_noise_is_exactly_the_start_up_lines():
    assert all(is_noise(line) for line in CUDA_LINES)
    assert not is_noise(REAL_ERROR)
    assert not is_noise("Traceback (most recent call last):")


def test_a_crashing_process_still_shows_its_last_error_and_no_noise():
    script = "\n".join([
        "import os",
        "from tfllm import native_logs",
        "native_logs.filter_stderr()",
        *(f"os.write(2, {(line + chr(10)).encode()!r})" for line in [*CUDA_LINES, REAL_ERROR]),
        "print('out', flush=True)",
        "os.write(2, b'progress 1/2\\rprogress 2/2\\r')",
        "os.abort()",
    ])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode < 0  # killed by SIGABRT
    assert proc.stdout == b"out\n"
    assert proc.stderr == (REAL_ERROR + "\nprogress 1/2\rprogress 2/2\r").encode()


def test_a_command_that_loads_tensorflow_prints_only_its_own_line(tmp_path):
    # evaluate imports TensorFlow before it finds that the directory holds no run
    proc = run("tfllm.evaluate", f"--run_dir={tmp_path}")
    assert_one_line_error(proc, "holds no tfllm run")
