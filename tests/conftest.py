"""Shared test set-up: tfllm's Keras (tf_keras), quiet logs, float32 by default."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests (and the commands they start) keep their caches (the measured matmul peak)
# out of the user's ~/.cache: a peak measured on tiny sizes would skew tfllm.train's MFU.
# The directory goes when the test run ends.
if "TFLLM_TEST_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["TFLLM_TEST_CACHE"] = os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(
        prefix="tfllm-test-cache-")
    atexit.register(shutil.rmtree, os.environ["TFLLM_TEST_CACHE"], ignore_errors=True)

import subprocess  # noqa: E402

import pytest  # noqa: E402

import tfllm  # noqa: E402,F401  (sets the environment before TensorFlow loads)


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that switch the mixed-precision policy must not leak it into others."""
    from tfllm._keras import keras

    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB tmpfs: room for a tiny run's first checkpoint, not for its later ones."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs",
                                            str(mount)], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


# The modules that take longest (seconds of test time on the project's 2-core VM, README's
# test command, 2026-12-07), started first: pytest-xdist hands each worker whole modules
# (--dist loadscope) in collection order, and a long module collected last (tests/test_*.py
# come after the folders) would run alone at the end. Longest first shortens that tail.
LONGEST_FIRST = ("tests/test_train_cli.py", "tests/distribute/test_distribution.py",
                 "tests/chat/test_chat_training.py",
                 "tests/test_speedrun.py", "tests/models/test_gpt.py",
                 "tests/test_benchmark_cli.py", "tests/compression/test_qat_cli.py",
                 "tests/test_silent_failures.py", "tests/distribute/test_dtensor.py",
                 "tests/adapt/test_lora.py", "tests/test_export_cli.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pytest.ini): one worker more than the usable cores. A worker whose test
    waits on a command's process (or on a checkpoint to appear) leaves its core to the
    others: on the 2-core VM, 3 workers ran the suite in 11:24 against 11:57 with 2
    (2026-12-07, one run each), while its cores were busy 85-99% of the time."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 1


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    root = str(config.rootpath)

    def key(item):
        path = os.path.relpath(str(item.path), root)
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: each module's tests keep their order
