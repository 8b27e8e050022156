"""Keeps TensorFlow's native start-up chatter off a command's stderr; real errors pass.

TensorFlow 2.21 logs through absl from C++ before anything initialises absl logging, so
TF_CPP_MIN_LOG_LEVEL does not reach these lines, and on a machine without a GPU every
command began with "Could not find cuda drivers" and "failed call to cuInit" (an E line).
No setting silences them without also silencing real errors (TF_CPP_MIN_LOG_LEVEL=3), so
the commands pass their stderr through a filter that drops exactly the lines in NOISE.

The filter is a forked process, not a thread: what a crashing command wrote just before
it died (a CHECK failure, an abort) still reaches the terminal, since the filter reads
until the last writer has gone. Set TFLLM_NATIVE_LOGS=1 to see everything.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import signal
import sys
import tempfile
import threading

# (source file, phrase): a line is dropped only when it holds both. Each is harmless.
NOISE = (
    ("absl::InitializeLog", "All log messages before absl::InitializeLog() is called"),
    ("cudart_stub.cc", "Could not find cuda drivers"),     # no GPU: TensorFlow runs on CPU
    ("cuda_platform.cc", "failed call to cuInit"),         # the same, from the CUDA platform
    ("port.cc", "oneDNN custom operations are on"),         # an informational notice
    ("INFO: Created TensorFlow Lite", "XNNPACK delegate for CPU"),  # TFLite's default CPU path
    ("cpu_feature_guard.cc", "This TensorFlow binary is optimized"),
    ("cpu_feature_guard.cc", "To enable the following instructions"),
    # Grappler's cost model cannot read DTensor's SPMD-expanded matmuls; the step itself is
    # unaffected (tests/distribute/test_dtensor.py checks it against one device).
    ("op_level_cost_estimator.cc", "Incompatible Matrix dimensions"),
)


# Lines that are harmless only where the machine has no NVIDIA device: with one, a failed
# cuInit is a real problem and is shown.
GPU_SOURCES = ("cudart_stub.cc", "cuda_platform.cc")


def _has_nvidia_device():
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def is_noise(line):
    """Whether a stderr line is one of TensorFlow's harmless start-up lines (NOISE)."""
    for source, phrase in NOISE:
        if source in line and phrase in line:
            return source not in GPU_SOURCES or not _has_nvidia_device()
    return False


@contextlib.contextmanager
def quiet_native_start():
    """While the block runs, file descriptor 2 goes to a temporary file; then every line of
    it that is not NOISE is written to stderr. For TensorFlow's import in a library user's
    process, where no filter process runs (the commands have filter_stderr)."""
    if os.environ.get("TFLLM_NATIVE_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not is_noise(line):
                    _write_all(line.encode("utf-8"))


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, as the next finder would, and runs its import (and the
    first device query, where TensorFlow calls cuInit) inside quiet_native_start."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec(module):
            with quiet_native_start():
                exec_module(module)
                module.config.list_physical_devices("GPU")

        spec.loader.exec_module = quiet_exec
        return spec


def quiet_tensorflow_import():
    """Makes the process's first `import tensorflow` drop TensorFlow's harmless start-up
    lines (NOISE). Does nothing once TensorFlow is imported."""
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def filter_stderr():
    """From now on this process's stderr (file descriptor 2, so native code's too) passes
    through a filter process that drops the NOISE lines. Does nothing when
    TFLLM_NATIVE_LOGS is set, or once threads run (forking then is unsafe)."""
    if os.environ.get("TFLLM_NATIVE_LOGS") or threading.active_count() > 1 or not hasattr(os, "fork"):
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(write_end)
        _pass_on(read_end)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)


def _pass_on(read_end):
    """The filter process: copies the pipe to the original stderr, line by line, until every
    writer has closed it, then exits. Ctrl-C reaches the whole process group: the filter
    ignores it and drains what the command still writes on its way out. A progress line
    redrawn with carriage returns passes as it is drawn."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for fd in (0, 1):  # a reader of the command's stdout waits for no one but the command
        os.close(fd)
    pending = b""
    try:
        while chunk := os.read(read_end, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not is_noise(line.decode("utf-8", "replace")):
                    _write_all(line + b"\n")
            if b"\r" in pending:
                drawn, pending = pending.rsplit(b"\r", 1)
                _write_all(drawn + b"\r")
        _write_all(pending)
    finally:
        os._exit(0)


def _write_all(data):
    while data:
        data = data[os.write(2, data):]
