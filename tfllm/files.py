"""Writing files safely: a directory checked before any work, JSON written atomically.

No TensorFlow here: commands check their outputs before paying for its import.
"""

import json
import os
import tempfile

from tfllm.errors import UserError


def check_writable(path, flag="--run_dir", what="run directory"):
    """Raises UserError (naming `what` and the `flag` that set it) unless the directory
    `path` exists or can be created. Tried, not read from permission bits: root passes
    those on /proc or a read-only disk, where making a directory still fails."""
    path_abs = os.path.abspath(path)
    if os.path.exists(path_abs) and not os.path.isdir(path_abs):
        raise UserError(f"{what} {path} is a file; pass a directory as {flag}.")
    parent = path_abs
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    reason = "it is a file"
    if os.path.isdir(parent):
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".tmp-check-", dir=parent))
            return
        except OSError as e:
            reason = e.strerror
    raise UserError(f"{what} {path} cannot be created ({parent} is not a writable directory: "
                    f"{reason}); pass a writable {flag}.")


def write_json(path, data):
    """Writes JSON atomically (a reader never sees half a file)."""
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    os.replace(path + ".tmp", path)


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: numpy array} as a safetensors file atomically, readable by all as the
    other files tfllm writes (safetensors creates its files private)."""
    from safetensors.numpy import save_file

    save_file(tensors, path + ".tmp", metadata=metadata)
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)
