"""Time to a target validation loss.

    python -m tfllm.speedrun --config=speedrun_shakespeare_char --target=1.88 --repeats=3

Each repeat runs `python -m tfllm.train` in a fresh run directory with
train.target_val_loss set, so training stops at the first evaluation at or below the
target. Reported per repeat, from the train process's metrics.jsonl: the wall time from
that process's start (interpreter, TensorFlow import, compilation, data preparation and
every evaluation included) to the end of that evaluation, the steps and the tokens seen;
then the median over the repeats. Exits 1 if any repeat misses the target.

With --budget=SECONDS only evaluations that ended within that much wall time count, and a
run still going at the budget is stopped. With --target=0 there is no target: the run
trains its whole schedule (or until the budget) and the report is the best loss of its
evaluations: the best loss a recipe reaches in a time budget.

    python -m tfllm.speedrun --config=shakespeare_char_30min --target=0 --budget=1800

(`python tools/speedrun.py ...` in a checkout is the same.)
"""

import json
import os
import shutil
import statistics
import subprocess
import sys

from absl import flags

from tfllm import cli

flags.DEFINE_string("config", "speedrun_shakespeare_char", "Config name or file, as tfllm.train takes it.")
flags.DEFINE_float("target", 1.88, "Whole-validation-split loss to reach. 0: none (the config's "
                   "own target too): train the whole schedule, or until --budget, and report "
                   "the best loss.", lower_bound=0.0)
flags.DEFINE_integer("repeats", 1, "Independent runs (the median is reported).", lower_bound=1)
cli.define_path("run_root", "runs/speedrun", "Run directories go here (replaced each repeat).")
flags.DEFINE_multi_string("set", [], "Config overrides, key=value (e.g. --set=train.steps=600).")
flags.DEFINE_float("budget", 0.0, "Wall-time budget in seconds per repeat: evaluations ending "
                   "later do not count and the run is stopped there. 0 (the default): none.",
                   lower_bound=0.0)
flags.DEFINE_bool("json", False, "Print one JSON object instead of a report.")
cli.define_path("compilation_cache", "", "Passed to tfllm.train: XLA's compiled steps are kept "
                "in (and loaded from) this directory. Empty (the default): every repeat "
                "compiles from scratch.")
FLAGS = flags.FLAGS


def one_run(run_dir):
    """Result dict of one training run: its first evaluation at or below the target, else
    its best one."""
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "tfllm.train", f"--config={FLAGS.config}", f"--run_dir={run_dir}",
           f"--config.train.target_val_loss={FLAGS.target}", "--config.sample.length=0"]
    if FLAGS.compilation_cache:
        cmd.append(f"--compilation_cache={FLAGS.compilation_cache}")
    cmd += [f"--config.{override}" for override in FLAGS.set]
    try:
        # The slack covers the child's start before its own clock (process start) begins.
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=FLAGS.budget + 10 if FLAGS.budget else None)
    except subprocess.TimeoutExpired:
        proc = None  # stopped at the budget; its metrics.jsonl holds the evaluations so far
    if proc is not None and proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        cli.fail(f"tfllm.train failed: {lines[-1]}")
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    lines = []
    if os.path.exists(metrics_path):  # a run stopped at the budget may not have one yet
        with open(metrics_path) as f:
            lines = f.read().splitlines()
    if proc is None and lines:
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()  # a run stopped at the budget cut its last line short
    evals = [r for r in map(json.loads, lines) if "val_loss" in r
             and (not FLAGS.budget or r["elapsed_s"] <= FLAGS.budget)]
    if not evals:
        cli.fail(f"no evaluation ended within --budget={FLAGS.budget:g} s; "
                 "raise the budget or evaluate sooner (eval.every).")
    hit = next((r for r in evals if r["val_loss"] <= FLAGS.target), None)  # a loss is > 0: none with --target=0
    best = min(evals, key=lambda r: r["val_loss"])
    record = hit or best
    return {"reached": hit is not None, "seconds": record["elapsed_s"], "step": record["step"],
            "tokens": record["tokens"], "val_loss": record["val_loss"],
            "evaluations": len(evals)}


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    runs = [one_run(os.path.join(FLAGS.run_root, f"repeat_{i}")) for i in range(FLAGS.repeats)]
    reached = all(r["reached"] for r in runs)  # False without a target
    summary = {"config": FLAGS.config, "target": FLAGS.target, "overrides": FLAGS.set,
               "budget_s": FLAGS.budget,
               "compilation_cache": FLAGS.compilation_cache,
               "runs": runs, "all_reached": reached,
               "median_seconds": statistics.median(r["seconds"] for r in runs)}
    if FLAGS.json:
        print(json.dumps(summary))
    else:
        for i, r in enumerate(runs):
            verdict = ("reached" if r["reached"] else
                       "NOT reached; best" if FLAGS.target else "best")
            print(f"repeat {i}: {verdict} val_loss {r['val_loss']:.4f} at {r['seconds']:.1f} s, "
                  f"step {r['step']}, {r['tokens']:,} tokens")
        what = (f"to val_loss <= {FLAGS.target}" if reached else
                f"to the best val_loss; the target {FLAGS.target} was missed" if FLAGS.target else
                "to the best val_loss (no target)")
        print(f"median {summary['median_seconds']:.1f} s {what} "
              f"({FLAGS.config}{' ' + ' '.join(FLAGS.set) if FLAGS.set else ''})")
    sys.exit(0 if reached or not FLAGS.target else 1)


if __name__ == "__main__":
    cli.run(main)
