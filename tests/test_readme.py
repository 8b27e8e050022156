"""The README's "In your own code" example runs as written, in a fresh interpreter (it
imports tfllm first), with fewer training steps."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains in subprocesses

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_the_readme_example_trains_and_generates(tmp_path):
    with open(README, encoding="utf-8") as f:
        section = f.read().split("## In your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert code.count("steps_per_epoch=1000") == 1, "the example changed: update this test"
    code = code.replace("steps_per_epoch=1000", "steps_per_epoch=20, verbose=0")
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The prompt, then 50 new characters (a char tokenizer), then print's newline.
    assert proc.stdout.startswith("ROMEO:") and len(proc.stdout) == len("ROMEO:") + 50 + 1
