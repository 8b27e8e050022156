"""Commands started from a process that has already imported TensorFlow.

A test that runs `python -m tfllm.train ...` pays 6-8 s of CPU for importing TensorFlow,
tf_keras and tfllm before the command does anything, and the suite runs about a hundred
commands on a 2-core machine: a third of its time went on imports. Here one server process
per pytest worker imports them once and forks a child per command. The child is a process of
its own (its own exit code, stdin, stdout and stderr files, working directory and
environment) that runs the module as `__main__` the way `python -m` does, so what the test
checks is the command's behaviour; only the imports were done before it started.

What this cannot show is what happens while TensorFlow imports (its start-up lines, the
checks made before it loads): tests about those pass `fresh=True` (or an environment that
changes the imports, such as PYTHONPATH) and get a real `python -m`.

TensorFlow's runtime (its thread pools, devices) starts at the first operation, which only
children run; the server never runs one, so forking it is safe.
"""

import json
import os
import runpy
import signal
import subprocess
import sys
import time

# Imported once by the server: what the commands import, heaviest first.
PRELOAD = ("tensorflow", "tfllm._keras", "tfllm.training", "tfllm.api", "tfllm.inference",
           "tfllm.pretrained", "tfllm.data", "tfllm.chat", "tfllm.adapt", "tfllm.compression",
           "tfllm.bench", "tfllm.distribute", "tfllm.runs", "tfllm.tokenizers", "numpy")

_server = None


class _Server:
    """The pytest worker's end of one server process."""

    def __init__(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        # Started by its file, not `-m tests.warm_start`: the checkout's root stays off its
        # sys.path, so its children import tfllm from where `python -m` would.
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def request(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("the warm-start server died; rerun with fresh=True to see why")
        return json.loads(reply)


class Process:
    """A command forked from the server, as far as a test handles a Popen: its pid (to
    signal it), `wait` and `returncode`."""

    def __init__(self, server, pid, command):
        self.server, self.pid, self.args, self.returncode = server, pid, command, None

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout):
        """The exit code (negative: killed by that signal); after `timeout` seconds the
        process is killed and subprocess.TimeoutExpired raised."""
        reply = self.server.request({"op": "wait", "pid": self.pid, "timeout": timeout})
        if reply["returncode"] is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        self.returncode = reply["returncode"]
        return self.returncode


def start(module, args, cwd, env, stdin, stdout, stderr):
    """A Process running `python -m module args` forked from the server (started the first
    time); stdin, stdout and stderr are paths of files."""
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = _Server()
    args = [os.fspath(a) for a in args]
    reply = _server.request(dict(op="start", module=module, args=args,
                                 cwd=os.fspath(cwd or os.getcwd()),
                                 env={k: os.fspath(v) for k, v in env.items()},
                                 stdin=stdin, stdout=stdout, stderr=stderr))
    return Process(_server, reply["pid"], ["python", "-m", module, *args])


def run(module, args, cwd, env, input_text, timeout, scratch):
    """A CompletedProcess of `python -m module args`, forked from the server. `scratch` is a
    directory for the child's stdin, stdout and stderr files."""
    paths = {name: os.path.join(scratch, name) for name in ("stdin", "stdout", "stderr")}
    with open(paths["stdin"], "w") as f:
        f.write(input_text or "")
    process = start(module, args, cwd, env, **paths)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired as e:
        e.output, e.stderr = _read(paths["stdout"]), _read(paths["stderr"])
        raise
    return subprocess.CompletedProcess(process.args, process.returncode,
                                       _read(paths["stdout"]), _read(paths["stderr"]))


def _read(path):
    with open(path) as f:
        return f.read()


def _child(message):
    """In the forked child: become `python -m module args` and never return."""
    for fd, (path, mode) in enumerate(((message["stdin"], os.O_RDONLY),
                                       (message["stdout"], os.O_WRONLY | os.O_CREAT),
                                       (message["stderr"], os.O_WRONLY | os.O_CREAT))):
        opened = os.open(path, mode, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    os.environ.clear()
    os.environ.update(message["env"])
    os.chdir(message["cwd"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = [message["module"], *message["args"]]
    sys.path[0] = message["cwd"]  # `python -m` puts the working directory first
    # Leaving through SystemExit runs the interpreter's own exit (atexit handlers, flushing,
    # the exit code; an uncaught exception prints its traceback and exits 1) as `python -m`.
    runpy.run_module(message["module"], run_name="__main__", alter_sys=True)
    sys.exit(0)


def _wait(pid, timeout):
    """The child's exit code (negative: killed by that signal), or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.02)


def serve():
    """The server: preload, then answer each request line on stdin: "start" forks a child
    (the reply is its pid), "wait" waits for one (the reply is its exit code)."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # a stray print in the server must not garble the replies
    for line in sys.stdin:
        message = json.loads(line)
        if message["op"] == "wait":
            reply = {"returncode": _wait(message["pid"], message["timeout"])}
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(message)
            reply = {"pid": pid}
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    serve()
