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

import pytest  # noqa: E402

import tfllm  # noqa: E402,F401  (sets the environment before TensorFlow loads)


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that switch the mixed-precision policy must not leak it into others."""
    from tfllm._keras import keras

    yield
    keras.mixed_precision.set_global_policy("float32")
