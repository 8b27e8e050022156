"""lm-eval task scores during training (`eval.tasks`): at each evaluation the model being
trained answers the chosen tasks (at most `eval.task_limit` examples each, the same ones
each time: lm-eval takes a task's first documents), and each task's metrics join the
validation loss in metrics.jsonl, TensorBoard and the progress line as
`task/<task>/<metric>`.

A task is an lm-eval task name (lm-eval fetches its dataset from the Hub itself) or a task
YAML file (offline: its `dataset_kwargs.data_files` are read relative to where tfllm runs).
"""

import contextlib
import io
import logging
import os
import re

from tfllm.errors import UserError

TASK_BATCH = 8  # requests per forward pass during training's evaluations


def task_entries(tasks):
    """The entries of an `eval.tasks` string: names and YAML files, in order."""
    return [t.strip() for t in (tasks or "").split(",") if t.strip()]


def is_task_file(entry):
    return entry.endswith((".yaml", ".yml"))


def check_tasks(tasks, strategy="auto"):
    """UserError, before TensorFlow loads, for `eval.tasks` that cannot run: lm-eval not
    installed, a task file that does not exist, or --strategy=dtensor (whose sharded model
    the scorer does not call)."""
    import importlib.util

    entries = task_entries(tasks)
    if entries and strategy == "dtensor":
        raise UserError("eval.tasks does not combine with --strategy=dtensor; score the run "
                        "afterwards with python -m tfllm.lm_eval.")
    if entries and importlib.util.find_spec("lm_eval") is None:
        raise UserError("eval.tasks needs lm-evaluation-harness; pip install 'tfllm[eval]' "
                        "(or leave eval.tasks empty).")
    check_task_files(tasks, "eval.tasks")


def check_task_files(tasks, flag):
    """UserError for an entry of `tasks` that is a path (a YAML file, or a folder of them,
    as lm-eval takes) where nothing is."""
    for entry in task_entries(tasks):
        if is_task_file(entry):
            missing = not os.path.isfile(entry)
        else:
            missing = os.sep in entry and not os.path.exists(entry)
        if missing:
            raise UserError(f"{flag}: no task file {entry}; pass an lm-eval task YAML that "
                            "exists, or a task name (`lm-eval ls tasks` lists them).")


class TaskScores:
    """Scores `tasks` (an eval.tasks string) for a model in memory; made once per run (it
    indexes lm-eval's tasks, and refuses a name lm-eval does not know)."""

    def __init__(self, tasks, limit, tokenizer, max_length, template_text=None):
        from lm_eval.tasks import TaskManager

        entries = task_entries(tasks)
        files = [e for e in entries if is_task_file(e)]
        self.names = [_task_name(e) if is_task_file(e) else e for e in entries]
        folders = sorted({os.path.dirname(os.path.abspath(f)) for f in files})
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
        self.manager = TaskManager(include_path=folders or None,
                                   include_defaults=len(files) < len(entries))
        unknown = [n for n in self.names if n not in self.manager.all_tasks]
        if unknown:
            raise UserError(f"eval.tasks: lm-eval has no task {', '.join(unknown)}; "
                            "`lm-eval ls tasks` lists them, or pass a task YAML file.")
        self.limit = limit or None
        self.tokenizer, self.max_length, self.template_text = tokenizer, max_length, template_text

    def __call__(self, model):
        """{"task/<task>/<metric>": value} of the model as it is now."""
        import lm_eval

        from tfllm.harness.model import TfllmLM

        lm = TfllmLM.from_model(model, self.tokenizer, self.max_length, TASK_BATCH,
                                self.template_text, name="training")
        with contextlib.redirect_stderr(io.StringIO()):  # lm-eval's progress bars
            results = lm_eval.simple_evaluate(
                model=lm, tasks=self.names, limit=self.limit, task_manager=self.manager,
                verbosity="ERROR", bootstrap_iters=0, random_seed=None, numpy_random_seed=None,
                torch_random_seed=None)  # the training run's own random state is left alone
        return flat_scores(results["results"])


def flat_scores(results):
    """lm-eval's {task: {"metric,filter": value}} as {"task/<task>/<metric>": value}, the
    filter named where it is not lm-eval's default (`none`), standard errors left out."""
    out = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            metric, _, kept = key.partition(",")
            if not kept or "_stderr" in metric or not isinstance(value, (int, float)):
                continue
            name = metric if kept == "none" else f"{metric}_{kept}"
            out[f"task/{task}/{name}"] = float(value)
    return out


def _task_name(path):
    """The `task:` a task YAML names (read as text: lm-eval's YAML has tags such as
    `!function` that a plain YAML reader refuses)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            found = re.match(r"task:\s*['\"]?([^'\"\s#]+)", line)
            if found:
                return found.group(1)
    raise UserError(f"eval.tasks: {path} names no `task:`; an lm-eval task YAML names its "
                    "task.")
