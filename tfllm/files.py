"""Writing files safely: a directory checked before any work, JSON written atomically, an
exclusive lock on a directory being written.

No TensorFlow here: commands check their outputs before paying for its import.
"""

import errno
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
    """Writes JSON atomically (a reader never sees half a file); a write that fails (a full
    disk) leaves no temporary file behind."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False))


def write_text(path, text):
    """Writes UTF-8 text atomically, as write_json."""
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    except OSError:
        if os.path.exists(path + ".tmp"):
            os.remove(path + ".tmp")
        raise


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: numpy array} as a safetensors file atomically, readable by all as the
    other files tfllm writes (safetensors creates its files private)."""
    from safetensors.numpy import save_file

    save_file(tensors, path + ".tmp", metadata=metadata)
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)


class DirectoryLock:
    """An exclusive lock on a directory for the life of the process writing it.

    flock(2) on `directory/.lock`: the kernel releases it when the process ends, however
    it ends, so a lock file left by a killed process is no obstacle. A second process is
    refused in one line naming the first (`holder`, e.g. "tfllm.train (pid 123)").

    Example:
        >>> with DirectoryLock("data/out", "tfllm.prepare", "is being prepared by",
        ...                    "wait for it to finish, or pass another --output"):
        ...     ...
    """

    FILE = ".lock"

    def __init__(self, directory, holder, busy="is being written by", fix="wait for it"):
        self.path = os.path.join(directory, self.FILE)
        self.holder, self.busy, self.fix = holder, busy, fix
        self.file = None

    def acquire(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            return self
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            other = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise UserError(f"{os.path.dirname(self.path)} {self.busy} {other}; "
                            f"{self.fix}.") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{self.holder} (pid {os.getpid()})")
        self.file.flush()
        return self

    def release(self):
        if self.file is not None:
            self.file.close()  # closing drops the flock
            self.file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_disk_full(error):
    """Whether an exception is the file system saying it has no room (or quota) left."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
