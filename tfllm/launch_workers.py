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
import os
import sys

from tfllm.distribute.local_workers import describe_exit, launch


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
