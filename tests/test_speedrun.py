"""tfllm.speedrun: time to a target validation loss, as a user runs it."""

import json
import os

import pytest

from tests.cli_helpers import error_lines, run

pytestmark = pytest.mark.slow  # trains in subprocesses



def speedrun(tmp_path, *args):
    return run("tfllm.speedrun", "--config=tiny_test", f"--run_root={tmp_path}", "--json", *args)


def test_stops_at_the_first_evaluation_at_or_below_the_target(tmp_path):
    # tiny_test evaluates every 10 steps from ln(65) = 4.17; 4.1 is passed at step 10.
    cache = tmp_path / "xla"
    proc = speedrun(tmp_path, "--target=4.1", "--set=checkpoint.every=20", "--set=train.xla=True",
                    f"--compilation_cache={cache}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])["runs"][0]
    assert run["reached"] and run["step"] == 10 and run["val_loss"] <= 4.1
    assert run["tokens"] == 10 * 4 * 16  # steps x batch x context of tiny_test
    assert run["seconds"] > 1.0  # counts start-up: interpreter, TensorFlow, compilation
    with open(tmp_path / "repeat_0" / "metrics.jsonl") as f:
        assert max(json.loads(line)["step"] for line in f) == 10  # training stopped there
    assert os.path.exists(tmp_path / "repeat_0" / "checkpoints" / "ckpt-10.index")
    assert any(name.startswith("xla_compile_cache") for name in os.listdir(cache))  # compiled steps kept


def test_a_missed_target_exits_1_and_evaluations_wait_within_the_margin(tmp_path):
    """A missed target exits 1 with the best result. eval.target_margin: a due evaluation
    is skipped while the training loss since the last log is above target + margin; the
    last step is evaluated regardless."""
    proc = speedrun(tmp_path, "--target=0.5", "--set=train.steps=30", "--set=log_every=10",
                    "--set=eval.target_margin=0.0")
    assert proc.returncode == 1, proc.stderr[-2000:]  # 0.5 is out of reach
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not summary["all_reached"] and summary["runs"][0]["step"] == 30
    with open(tmp_path / "repeat_0" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records if "val_loss" in r] == [30]
    assert all(r["loss"] > 0.5 for r in records)  # why steps 10 and 20 were skipped
    proc = speedrun(tmp_path, "--target=0.5", "--set=train.steps=30", "--set=log_every=10",
                    "--set=eval.target_margin=5.0")
    with open(tmp_path / "repeat_0" / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f if "val_loss" in line] == [10, 20, 30]


def test_a_budget_counts_only_the_evaluations_that_ended_within_it(tmp_path):
    """--budget: a run still going at the budget is stopped, and the best loss reported is
    the best of the evaluations that ended within the budget."""
    proc = speedrun(tmp_path, "--target=0.5", "--budget=12", "--set=train.steps=100000",
                    "--set=checkpoint.every=100000")
    assert proc.returncode == 1, proc.stderr[-2000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])["runs"][0]
    with open(tmp_path / "repeat_0" / "metrics.jsonl") as f:
        evals = [r for r in map(json.loads, f) if "val_loss" in r]
    assert evals[-1]["step"] < 100000  # stopped long before its last step
    within = [r for r in evals if r["elapsed_s"] <= 12]
    assert run["evaluations"] == len(within) >= 1
    assert run["seconds"] <= 12 and run["val_loss"] == min(r["val_loss"] for r in within)


def test_no_target_trains_the_whole_schedule_and_reports_the_best_loss(tmp_path):
    """--target=0 (the 30-minute question): no evaluation stops the run, not even at the
    config's own train.target_val_loss, and the best evaluation is reported with exit 0."""
    config = tmp_path / "with_target.py"
    config.write_text("from tfllm.configs import tiny_test\n\n\n"
                      "def get_config():\n"
                      "    config = tiny_test.get_config()\n"
                      "    config.train.update(steps=30, target_val_loss=4.1)\n"
                      "    return config\n")
    proc = speedrun(tmp_path, "--target=0", f"--config={config}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])["runs"][0]
    with open(tmp_path / "repeat_0" / "metrics.jsonl") as f:
        evals = [r for r in map(json.loads, f) if "val_loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]  # 4.1 is passed at step 10
    best = min(evals, key=lambda r: r["val_loss"])
    assert not run["reached"] and (run["step"], run["val_loss"]) == (best["step"], best["val_loss"])


def test_bad_input_is_one_line(tmp_path):
    for args, phrase in [(["--target=-1"], "flag --target=-1: -1.0 is not a non-negative number"),
                         (["--set=train.stpes=3"], "tfllm.train failed: tfllm.train: error: "
                          "--config.train.stpes: the config has no key 'stpes'")]:
        proc = speedrun(tmp_path, *args)
        lines = error_lines(proc)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("tfllm.speedrun: error: "), lines
        assert phrase in lines[0], (phrase, lines[0])
        assert not (tmp_path / "repeat_0").exists()
