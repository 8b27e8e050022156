"""Start N tfllm workers on this machine with the TF_CONFIG each needs, for trying
MultiWorkerMirroredStrategy without a cluster:

    python -m tfllm.launch_workers --num_workers=2 -- -m tfllm.train --strategy=multi_worker \\
        --config=tiny_test --run_dir=runs/mw

(`python tools/launch_workers.py ...` in a checkout is the same.)

Everything after `--` is the Python command line each worker runs. Worker 0 is the chief
(it writes the run directory). Output of worker i goes to <log_dir>/worker_<i>.log, the
chief's also to this terminal as it is written; <log_dir>/workers.json lists their process
ids. If any worker fails, the others are stopped, one line names it, and the exit code is
that worker's (128 + N for a worker killed by signal N); on Ctrl-C all are stopped and the
exit code is 130. Rerunning the same command resumes from
the last checkpoint.
"""

import argparse
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--log_dir", default="runs/worker_logs")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="after --: the Python arguments each worker runs")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.num_workers < 1 or not command:
        parser.error("give --num_workers >= 1 and, after --, the command each worker runs "
                     "(e.g. -- -m tfllm.train --strategy=multi_worker).")
    def echo(text):
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        code, worker = launch(args.num_workers, command, args.log_dir, echo=echo)
    except KeyboardInterrupt:  # the workers were stopped on the way out of launch
        print("launch_workers: interrupted; the workers were stopped. Rerun the same command to "
              "resume from the last checkpoint.", file=sys.stderr)
        sys.exit(130)
    if code:
        log = os.path.join(args.log_dir, f"worker_{worker}.log")
        print(f"launch_workers: worker {worker} {describe_exit(code)}; the others were stopped "
              f"(its output: {log}). Rerun to resume from the last checkpoint.", file=sys.stderr)
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
