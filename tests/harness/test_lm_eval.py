"""tfllm in lm-evaluation-harness: the same answers as lm-eval's own Hugging Face model on
the same checkpoint (references made by tools/make_lm_eval_fixtures.py with transformers),
lm-eval's command line on four local tasks, task scores during training, and bad input.
"""

import json
import logging
import pathlib
import shutil

import pytest

from tests.cli_helpers import run
from tfllm.configs import tiny_test
from tfllm.errors import UserError
from tfllm.training import Trainer

pytest.importorskip("lm_eval")  # the `test` extra installs it; tfllm[eval] for users

import lm_eval  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

import tfllm.harness  # noqa: E402
from tfllm import lm_eval as command  # noqa: E402

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
TASKS = FIXTURES / "lm_eval"
TINY = f"hf:{FIXTURES / 'hf' / 'llama'}"
REFERENCE = json.loads((TASKS / "hf_reference.json").read_text(encoding="utf-8"))
TASK_NAMES = ["tiny_mc", "tiny_ll", "tiny_rolling", "tiny_gen"]


def ask(kind, args):
    return [Instance(kind, {}, a, i) for i, a in enumerate(args)]


@pytest.fixture(scope="module")
def lm():
    return tfllm.harness.TfllmLM(run_dir=TINY, batch_size=4,
                                 chat_template=str(FIXTURES / "chat/templates/smollm2.jinja"))


def test_loglikelihoods_match_lm_eval_hf_model(lm, caplog):
    reference = REFERENCE["loglikelihood"]
    with caplog.at_level(logging.WARNING, "tfllm.harness"):
        got = lm.loglikelihood(ask("loglikelihood", [(c, x) for c, x, _, _ in reference]))
    for (score, greedy), (context, continuation, want, want_greedy) in zip(got, reference):
        assert score == pytest.approx(want, abs=1e-3), (context[:40], continuation)
        assert greedy == want_greedy, (context[:40], continuation)
    assert sum(g for _, g in got) >= 2  # greedy continuations are among them
    # One request is longer than the 128-token window: cut from the left, and said.
    assert "cut from the left" in caplog.text


def test_rolling_loglikelihoods_match_lm_eval_hf_model(lm):
    reference = REFERENCE["rolling"]
    got = lm.loglikelihood_rolling(ask("loglikelihood_rolling", [(t,) for t, _, _ in reference]))
    assert max(n for _, n, _ in reference) > 8 * lm.max_length  # many windows
    for score, (_, _, want) in zip(got, reference):
        assert score == pytest.approx(want, abs=1e-2)


def test_greedy_generations_match_lm_eval_hf_model(lm):
    reference = REFERENCE["generate_until"]
    got = lm.generate_until(ask("generate_until", [(c, k) for c, k, _ in reference]))
    assert got == [want for _, _, want in reference]


def test_chat_template_hooks_render_as_transformers(lm):
    for case in REFERENCE["chat"]:
        assert lm.apply_chat_template(case["history"], case["add_generation_prompt"]) \
            == case["text"]
    assert "<|im_start|>" in lm.chat_template(True)
    assert lm.chat_template(False) is None


def test_lm_eval_command_line_scores_four_local_tasks_as_the_hf_model(tmp_path):
    out = tmp_path / "results"
    proc = run("tfllm.lm_eval", "--model_args", f"run_dir={TINY}", "--tasks",
               ",".join(TASK_NAMES), "--include_path", ".", "--batch_size", "4",
               "--output_path", str(out), cwd=str(TASKS),
               env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                    "HF_DATASETS_CACHE": str(tmp_path / "datasets")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for name in TASK_NAMES:
        assert f"|{name}" in table, table  # lm-eval's own table
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    for task, metrics in REFERENCE["scores"].items():
        for key, want in metrics.items():
            if isinstance(want, float):
                assert results[task][key] == pytest.approx(want, rel=1e-4), (task, key)


def test_training_scores_tasks_and_the_run_scores_the_same_afterwards(tmp_path):
    task = tmp_path / "tiny_mc.yaml"  # its data file by absolute path: training runs anywhere
    task.write_text((TASKS / "tiny_mc.yaml").read_text().replace(
        "test: mc.jsonl", f"test: {TASKS / 'mc.jsonl'}"))
    config = tiny_test.get_config()
    config.model.max_length = 64
    config.eval.update(tasks=str(task), task_limit=8)
    lines = []
    Trainer(config, str(tmp_path / "run"), print_fn=lines.append).train()
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "task/tiny_mc/acc" in r]
    assert [r["step"] for r in scored] == [10, 20]  # at each evaluation
    assert any("tiny_mc acc " in line for line in lines)
    results = lm_eval.simple_evaluate(
        model="tfllm", model_args=f"run_dir={tmp_path / 'run'}", tasks=["tiny_mc"], limit=8,
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False))
    assert results["results"]["tiny_mc"]["acc,none"] == scored[-1]["task/tiny_mc/acc"]


def one_line_error(capsys, *argv):
    """The stderr line of `python -m tfllm.lm_eval ARGV` run in this process (its checks
    come before lm-eval starts), asserting exit status 2 and a single line."""
    with pytest.raises(SystemExit) as exit_info:
        command.main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfllm.lm_eval: error: "), err
    return err[0]


def test_a_task_file_that_does_not_exist_is_one_line(capsys):
    assert "no task file missing/task.yaml" in one_line_error(
        capsys, "--model_args", f"run_dir={TINY}", "--tasks", "missing/task.yaml")


def test_an_unknown_task_name_is_one_line(capsys, monkeypatch):
    monkeypatch.chdir(TASKS)
    assert "Tasks not found: tiny_mcq" in one_line_error(
        capsys, "--model_args", f"run_dir={TINY}", "--tasks", "tiny_mcq", "--include_path", ".")


def test_a_run_without_checkpoint_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(FIXTURES / "old_run" / "config.json", run_dir / "config.json")
    with pytest.raises(UserError, match="has no checkpoint yet"):
        tfllm.harness.TfllmLM(run_dir=str(run_dir))
    with pytest.raises(UserError, match="needs run_dir"):
        tfllm.harness.TfllmLM()
    with pytest.raises(UserError, match="pretrained: not an argument"):
        tfllm.harness.TfllmLM(run_dir=TINY, pretrained="gpt2")


def test_apply_chat_template_without_a_template_is_refused():
    lm = tfllm.harness.TfllmLM(run_dir=TINY)  # the tiny checkpoint ships none
    with pytest.raises(UserError, match="--apply_chat_template: .* has no chat template"):
        lm.chat_template(True)


def test_the_command_line_error_for_an_unknown_model_arg_is_one_line(capsys):
    assert "dtype: not an argument of the tfllm model" in one_line_error(
        capsys, "--model_args", f"run_dir={TINY},dtype=float16", "--tasks", "tiny_mc",
        "--include_path", str(TASKS))


def test_eval_tasks_are_checked_before_training():
    from tfllm.harness.tasks import check_tasks

    with pytest.raises(UserError, match="no task file nowhere.yaml"):
        check_tasks("nowhere.yaml")
    with pytest.raises(UserError, match="dtensor"):
        check_tasks("hellaswag", "dtensor")


def test_a_run_without_checkpoint_is_one_line_before_lm_eval_starts(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(FIXTURES / "old_run" / "config.json", run_dir / "config.json")
    assert "has no checkpoint yet" in one_line_error(
        capsys, "--model_args", f"run_dir={run_dir}", "--tasks", "tiny_mc",
        "--include_path", str(TASKS))
    error = one_line_error(capsys, "--model_args", f"run_dir={TINY}", "--tasks", "tiny_gen",
                           "--include_path", str(TASKS), "--apply_chat_template")
    assert "--apply_chat_template" in error and "has no chat template" in error
