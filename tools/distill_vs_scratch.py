"""A student trained with a teacher against the same student from the text alone
(docs/distillation.md): `--repeats` pairs, each pair (scratch, distilled) with its own
seed and run side by side, so both see the same machine load. Prints each run's
whole-validation curve, final loss and wall time, the medians, and the step at which
each distilled run first reaches the median from-scratch final loss.

    python tools/distill_vs_scratch.py --teacher=runs/shakespeare_char_30min \\
        --out=runs/distill [--config=shakespeare_char_student] [--repeats=3] \\
        [--set=train.distill_weight=0.5 ...]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def launch(config, run_dir, seed, extra):
    args = [sys.executable, "-m", "tfllm.train", f"--config={config}", f"--run_dir={run_dir}",
            f"--config.seed={seed}", *[f"--config.{item}" for item in extra]]
    log = open(run_dir + ".log", "w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT), time.time()


def curve(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: r["val_loss"] for r in records if "val_loss" in r}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="shakespeare_char_student")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[],
                        help="config override for the distilled runs, e.g. train.distill_weight=0.7")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = {"scratch": [], "distilled": []}
    for repeat in range(args.repeats):
        seed = 1337 + repeat
        runs = {"scratch": launch(args.config, f"{args.out}/scratch_{repeat}", seed, []),
                "distilled": launch(args.config, f"{args.out}/distilled_{repeat}", seed,
                                    [f"train.teacher={args.teacher}", *args.set])}
        for name, (proc, start) in runs.items():
            if proc.wait() != 0:
                sys.exit(f"{name} run {repeat} failed: see {args.out}/{name}_{repeat}.log")
            wall = time.time() - start
            values = curve(f"{args.out}/{name}_{repeat}")
            results[name].append({"seed": seed, "wall_s": wall, "curve": values,
                                  "final": values[max(values)]})
    report(results, args)


def report(results, args):
    target = statistics.median(r["final"] for r in results["scratch"])
    steps = sorted(results["scratch"][0]["curve"])
    print(f"whole-validation loss by step ({args.config}; distilled: teacher {args.teacher}"
          f"{', ' + ', '.join(args.set) if args.set else ''})")
    names = [f"{kind[:4]}_{i}" for kind in results for i in range(len(results[kind]))]
    print("step  " + " ".join(f"{n:>7}" for n in names))
    for step in steps:
        print(f"{step:>4}  " + " ".join(f"{r['curve'][step]:7.4f}" for kind in results
                                        for r in results[kind]))
    for kind, rows in results.items():
        finals = ", ".join(f"{r['final']:.4f}" for r in rows)
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in rows)
        print(f"{kind:<10} final median {statistics.median(r['final'] for r in rows):.4f} "
              f"({finals}); wall median {statistics.median(r['wall_s'] for r in rows):.0f} s "
              f"({walls})")
    reached = [next((s for s in steps if r["curve"][s] <= target), None)
               for r in results["distilled"]]
    print(f"distilled runs reach the median from-scratch final loss {target:.4f} at steps "
          f"{reached} of {steps[-1]}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"results": results, "target": target, "reached": reached}, f)


if __name__ == "__main__":
    main()
