"""Local worker processes for MultiWorkerMirroredStrategy on one machine: free ports, each
worker's TF_CONFIG, and a launcher that stops every worker when one fails. The command
`python -m tfllm.launch_workers` and `tfllm.benchmark --overhead` use it."""


import json
import os
import signal
import socket
import subprocess
import sys
import time


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_configs(num_workers, ports):
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(num_workers)]


def launch(num_workers, command, log_dir, env=None, echo=None):
    """Runs the workers to completion; returns (exit code, worker index) of the worker whose
    failure stopped the job (a negative code: killed by that signal), or (0, None).
    `echo(text)` receives the chief's output as it is written."""
    os.makedirs(log_dir, exist_ok=True)
    procs, logs = [], []
    for i, tf_config in enumerate(tf_configs(num_workers, free_ports(num_workers))):
        log = open(os.path.join(log_dir, f"worker_{i}.log"), "w")
        worker_env = dict(env or os.environ, TF_CONFIG=tf_config, PYTHONUNBUFFERED="1")
        procs.append(subprocess.Popen([sys.executable, *command], stdout=log,
                                      stderr=subprocess.STDOUT, env=worker_env))
        logs.append(log)
    with open(os.path.join(log_dir, "workers.json"), "w") as f:
        json.dump({"pids": [p.pid for p in procs]}, f)  # worker i's process id, for tools and tests
    chief_log = open(os.path.join(log_dir, "worker_0.log"))

    def pass_on_chief_output():
        text = chief_log.read()
        if text and echo is not None:
            echo(text)

    failed = None
    try:
        while any(p.poll() is None for p in procs):
            pass_on_chief_output()
            failed = first_failure(procs)
            if failed is not None:
                break
            time.sleep(0.2)
        else:
            failed = first_failure(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()
        pass_on_chief_output()
        chief_log.close()
    return failed if failed is not None else (0, None)


def first_failure(procs):
    """(exit code, worker index) of the worker whose failure stopped the job, or None.
    A worker killed by a signal comes first: the others then fail in their collectives,
    often within the same poll."""
    failed = [(p.returncode, i) for i, p in enumerate(procs) if p.returncode not in (None, 0)]
    return min(failed, key=lambda f: (f[0] >= 0, f[1])) if failed else None


def describe_exit(code):
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"
