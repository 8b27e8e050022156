"""What importing tfllm sets up for TensorFlow, checked in fresh interpreters."""

import os
import subprocess
import sys

import pytest

# Whether TensorFlow's CPU allocator keeps statistics: only its BFC allocator does.
PROBE = """
import tfllm
import tensorflow as tf
tf.ones([256, 256]) @ tf.ones([256, 256])
try:
    tf.config.experimental.get_memory_info("CPU:0")
    print("bfc")
except ValueError:
    print("default")
"""


@pytest.mark.parametrize("setting, allocator", [(None, "bfc"), ("false", "default")])
def test_import_selects_the_bfc_host_allocator_unless_the_user_chose(setting, allocator):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if setting is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    assert out.split()[-1] == allocator
