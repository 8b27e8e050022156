"""The commands' host allocator: TensorFlow's BFC allocator, except under DTensor."""

import os
import subprocess
import sys

import pytest

# A fresh interpreter: TensorFlow imported, then the command's choice, then the first op.
# Only the BFC allocator keeps statistics, so get_memory_info tells which one serves.
PROBE = """
import sys
import tensorflow as tf
from tfllm import cli
cli.select_host_allocator(sys.argv[1] or None)
tf.ones([256, 256]) @ tf.ones([256, 256])
try:
    tf.config.experimental.get_memory_info("CPU:0")
    print("bfc")
except ValueError:
    print("default")
"""


@pytest.mark.parametrize("inherited, strategy, allocator", [
    (None, "", "bfc"), (None, "mirrored", "bfc"), ("false", "", "default"),
    (None, "dtensor", "default"), ("true", "dtensor", "default")])
def test_commands_serve_host_memory_from_bfc_but_not_under_dtensor(inherited, strategy,
                                                                     allocator):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    # On CPUs where TensorFlow turns oneDNN on (AVX-512), its CPU allocator keeps statistics
    # whichever allocator serves, so the probe could not tell them apart.
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    if inherited is not None:  # the user's environment, or a parent command's choice
        env["TF_CPU_ALLOCATOR_USE_BFC"] = inherited
    out = subprocess.run([sys.executable, "-c", PROBE, strategy], capture_output=True,
                         text=True, env=env, timeout=120, check=True).stdout
    assert out.split()[-1] == allocator
