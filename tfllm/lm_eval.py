"""lm-evaluation-harness's own command line with tfllm models registered:

    python -m tfllm.lm_eval --model_args=run_dir=runs/chat --tasks=hellaswag,arc_easy

takes every argument of `lm-eval run` (`--tasks`, `--num_fewshot`, `--limit`,
`--apply_chat_template`, `--include_path`, `--output_path`, ...); `--model` defaults to
`tfllm`, whose model_args are run_dir (a run directory, hf:DIR or gguf:FILE), checkpoint,
max_length, max_gen_toks and chat_template. Needs `pip install 'tfllm[eval]'`. lm-eval
downloads a task's dataset itself where the task names one on the Hub; tfllm downloads
nothing. See docs/evaluation.md.
"""

import json
import sys

from tfllm.errors import UserError
from tfllm.harness.tasks import check_task_files

SUBCOMMANDS = ("run", "ls", "validate")


def arguments(argv):
    """lm-eval's arguments for tfllm's: `run` and `--model tfllm` where not given, and
    UserError for a task file that does not exist."""
    argv = list(argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        argv.insert(0, "run")
    if argv[0] != "run":
        return argv
    if not any(a == "--model" or a.startswith("--model=") for a in argv):
        argv[1:1] = ["--model", "tfllm"]
    check_task_files(_value(argv, "--tasks"), "--tasks")
    if _value(argv, "--model") == "tfllm":
        _check_model(model_args(_value(argv, "--model_args")),
                     any(a.startswith("--apply_chat_template") for a in argv))
    return argv


def model_args(text):
    """--model_args as a dict: `key=value,...` (lm-eval's form) or a JSON object."""
    if not text:
        return {}
    if text.lstrip().startswith("{"):
        try:
            return dict(json.loads(text))
        except ValueError as e:
            raise UserError(f"--model_args is not a JSON object ({e}).") from None
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(text)


def _check_model(args, chat):
    """The tfllm model's arguments, its run and (with --apply_chat_template) its chat
    template, checked before lm-eval starts: UserError naming the fix."""
    from tfllm.harness.model import check_model_args
    from tfllm.runs.chat_template import chat_template_of
    from tfllm.runs.run_directory import find_run

    check_model_args(args)
    run_dir = str(args["run_dir"])
    find_run(run_dir, args.get("checkpoint"))
    if chat:
        chat_template_of(run_dir, args.get("chat_template"), "--apply_chat_template",
                         "--model_args=...,chat_template=FILE")


def _value(argv, name):
    for i, a in enumerate(argv):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def main(argv=None):
    from tfllm import native_logs

    native_logs.filter_stderr()  # TensorFlow's start-up chatter
    argv = sys.argv[1:] if argv is None else argv
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        _fail("lm-evaluation-harness is not installed; pip install 'tfllm[eval]'.")
    try:
        argv = arguments(argv)
        import tfllm.harness  # noqa: F401  (registers the model)
        from lm_eval.__main__ import cli_evaluate

        sys.argv = ["tfllm.lm_eval", *argv]
        cli_evaluate()
    except UserError as e:
        _fail(str(e))
    except ValueError as e:
        if not str(e).startswith("Tasks not found"):
            raise
        _fail(f"--tasks: {e}; pass --include_path=DIR for local task YAML files, or see "
              "`python -m tfllm.lm_eval ls tasks`.")
    except KeyboardInterrupt:
        _fail("interrupted.", 130)


def _fail(message, code=2):
    print(f"tfllm.lm_eval: error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
