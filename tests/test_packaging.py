"""The wheel a user installs carries every module, config and data file of the checkout.

`.ci/check_installed` goes further: it installs the wheel into a fresh virtual environment
and runs every command from outside the checkout.
"""

import glob
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_files():
    """{path in the wheel: path in the checkout} of every file the package must ship."""
    files = {}
    for source, target in (("tfllm", "tfllm"), ("configs", "tfllm/configs")):
        for directory, dirs, names in os.walk(os.path.join(ROOT, source)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in names:
                if name.endswith(".pyc"):
                    continue
                relative = os.path.relpath(os.path.join(directory, name), os.path.join(ROOT, source))
                files[f"{target}/{relative}"] = os.path.join(directory, name)
    return files


def test_the_wheel_holds_every_module_config_and_data_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path), ROOT], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = glob.glob(str(tmp_path / "tfllm-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = package_files()
    assert "tfllm/data/tinyshakespeare.txt" in expected and "tfllm/configs/default.py" in expected
    missing = sorted(set(expected) - shipped)
    assert not missing, f"left out of the wheel: {missing}"
