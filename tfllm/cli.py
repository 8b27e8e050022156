"""What every tfllm command shares: config lookup by name, one-line errors, exit codes.

A user mistake (bad flag, config key or value, missing file) prints one line,
`<command>: error: <what is wrong and how to fix it>`, to stderr and exits 2; there is
no traceback. Ctrl-C prints `<command>: interrupted; <what was kept>` and exits 130.
Anything else is a bug and keeps its traceback.
"""

import os
import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from tfllm import native_logs
from tfllm.errors import Interrupted, UserError  # noqa: F401  (UserError: for the commands)

# The flags this module's helpers define belong to the command that calls them, so its
# --help lists them.
flags.disclaim_key_flags()


class _PathParser(flags.ArgumentParser):
    """A path with `~` expanded: the shell leaves the `~` of `--run_dir=~/runs` alone."""

    def parse(self, argument):
        return os.path.expanduser(argument) if isinstance(argument, str) else argument

    def flag_type(self):
        return "string"


def define_path(name, default, help_string, **kwargs):
    """A string flag for a file or directory; `~` and `~user` expand as in the shell."""
    flags.DEFINE(_PathParser(), name, default, help_string,
                 serializer=flags.ArgumentSerializer(), **kwargs)


def define_model_flags():
    """--run_dir (a trained run) and --model (a pretrained model used as it is); model_spec()
    is the one passed."""
    define_path("run_dir", None, "Run directory of a training run.")
    define_path("model", None, "A pretrained model used as it is, instead of --run_dir: "
                "hf:DIR (a Hugging Face checkpoint directory) or gguf:FILE (a GGUF file).")


def model_spec():
    """--run_dir, or --model's hf:DIR / gguf:FILE; UserError unless exactly one is given."""
    from tfllm.pretrained.checkpoint import pretrained_path

    run_dir, model = flags.FLAGS.run_dir, flags.FLAGS.model
    if bool(run_dir) == bool(model):
        raise UserError("pass one of --run_dir=DIR (a trained run) or --model=hf:DIR / "
                        "gguf:FILE (a pretrained model used as it is).")
    if model and pretrained_path(model) is None:
        raise UserError(f"--model={model} is not a pretrained model; pass hf:DIR or gguf:FILE "
                        "(or --run_dir=DIR for a trained run).")
    return run_dir or model


def packaged_configs():
    import tfllm.configs

    directory = os.path.dirname(tfllm.configs.__file__)
    return sorted(f[:-3] for f in os.listdir(directory)
                  if f.endswith(".py") and not f.startswith("_") and f != "base.py")


def config_path(name_or_path):
    """A config file path for `--config`: a path as is, or a packaged config's name."""
    name_or_path = os.path.expanduser(name_or_path)
    path = name_or_path.split(":")[0]
    if os.path.isfile(path) or path.endswith(".py") or "/" in path:
        return name_or_path
    import tfllm.configs

    path = os.path.join(os.path.dirname(tfllm.configs.__file__), name_or_path + ".py")
    if not os.path.exists(path):
        fail(f"no config {name_or_path!r}; pass a config file or one of {packaged_configs()}.")
    return path


def default_config_path(name="default"):
    import tfllm.configs

    return os.path.join(os.path.dirname(tfllm.configs.__file__), name + ".py")


_default_config = {}


def define_config_flag(default_name, help_string):
    """Defines `--config` (a packaged config's name or a file, with typed
    `--config.x.y=value` overrides), `default_name` when it is not given.

    The default is filled in when the command line is parsed (`run`), not here:
    ml_collections parses a flag's default, and applies the overrides it finds in
    sys.argv, as the flag is defined, so a mistyped key would raise at import time,
    before `run` can report it in one line."""
    _default_config["path"] = default_config_path(default_name)
    config_flags.DEFINE_config_file("config", None, help_string, lock_config=True)
    flags.declare_key_flag("config")  # the calling command's: its --help lists it
    flags.FLAGS["config"].default_as_str = repr(default_name)  # what --helpfull shows


def use_compilation_cache(directory):
    """Keeps XLA's compiled programs in `directory` ("" = off), so a later process that
    compiles the same step (same model, shapes and TensorFlow) loads it instead.
    Call before TensorFlow compiles anything: XLA reads TF_XLA_FLAGS once."""
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        fail(f"cannot create the compilation cache directory {directory}: {e.strerror}; "
             "pass a writable --compilation_cache or leave it empty.")
    flag = f"--tf_xla_persistent_cache_directory={os.path.abspath(directory)}"
    os.environ["TF_XLA_FLAGS"] = f"{os.environ.get('TF_XLA_FLAGS', '')} {flag}".strip()


def fail(message, code=2):
    print(f"{_command_name()}: error: {message}", file=sys.stderr)
    sys.exit(code)


def stop(message):
    """Ends a command the user interrupted: one line, exit code 130 (128 + SIGINT).

    Exits at once, without the interpreter's shutdown: after an interrupt, joining
    TensorFlow's threads there can block for good (a Ctrl-C'd tfllm.train hung in a futex
    after this line, in CI). What a run keeps is already on disk: checkpoints are written
    whole, metrics lines are closed as they are written, and the run lock is the kernel's."""
    print(f"{_command_name()}: {message}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _command_name():
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name  # python -m tfllm.train
    script = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ""))[0]
    return script or "tfllm"  # python tools/speedrun.py


def config_name():
    """The name of the parsed `--config` file, without directory or extension."""
    path = config_flags.get_config_filename(flags.FLAGS["config"])
    return os.path.splitext(os.path.basename(path))[0]


def _resolve_config_flag(argv):
    """Rewrites `--config=<name>` to the packaged config file of that name, and adds the
    command's default config when there is no `--config=`."""
    if "path" not in _default_config:  # the command has no define_config_flag --config
        return argv
    out = []
    for arg in argv:
        if arg.startswith("--config="):
            arg = "--config=" + config_path(arg[len("--config="):])
        out.append(arg)
    if not any(a.startswith("--config=") for a in out):
        out.insert(1, "--config=" + _default_for(out))
    return out


def _default_for(argv):
    """The command's default config; for a start from a pretrained model (--init_from=hf:
    or gguf:) without --config, `finetune` instead of the from-scratch `default`."""
    path = _default_config["path"]
    pretrained = any(a.startswith(("--init_from=hf:", "--init_from=gguf:")) for a in argv)
    if pretrained and os.path.basename(path) == "default.py":
        return config_path("finetune")
    return path


def _override_error(error, argv):
    """One line for an exception ml_collections raised on a `--config.x.y=` override."""
    while error.args and isinstance(error.args[0], Exception):
        error = error.args[0]  # ml_collections wraps a KeyError in an AttributeError
    lines = [line.strip() for line in str(error.args[0] if error.args else error).splitlines()]
    if isinstance(error, KeyError) and lines:  # an unknown key; ml_collections may suggest one
        key = lines[0].strip("'\"")
        for arg in argv:
            name = arg.split("=")[0]
            if name.startswith("--config.") and key in name.split("."):
                hint = f" ({lines[1][0].lower()}{lines[1][1:]})" if len(lines) > 1 else ""
                return (f"{name}: the config has no key {key!r}{hint}; configs/base.py lists "
                        "every key and its type.")
    return f"bad config override: {' '.join(lines)}; configs/base.py lists every key and its type."


def _config_file_error(error, argv):
    """One line for an exception raised while a `--config=FILE` ran (a syntax error, a bad
    value, a raise), naming the file and line, or None when the file did not raise it."""
    path = next((a.split("=", 1)[1].split(":")[0] for a in argv if a.startswith("--config=")), None)
    if path is None:
        return None
    path = os.path.abspath(path)
    while error is not None:
        if isinstance(error, SyntaxError) and error.filename and os.path.abspath(error.filename) == path:
            return f"config file {path}: line {error.lineno}: {error.msg}; fix the file."
        lines = [line for frame, line in traceback.walk_tb(error.__traceback__)
                 if os.path.abspath(frame.f_code.co_filename) == path]
        if lines:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return (f"config file {path}: line {lines[-1]}: {type(error).__name__}"
                    f"{': ' + message if message else ''}; fix the file.")
        error = error.__cause__ or error.__context__
    return None


def _parse(argv):
    try:
        argv = _resolve_config_flag(argv)
        parsed = flags.FLAGS(argv)
        if "path" in _default_config:  # the command has a define_config_flag --config
            list(flags.FLAGS.config.keys())  # config files load lazily: surface errors here
        return parsed
    except SystemExit as e:  # absl's --help/--helpfull print the help, then exit 1
        if e.code == 1 and any(a.split("=")[0] in HELP_FLAGS for a in argv[1:]):
            sys.exit(0)
        raise
    except Exception as e:
        message = _config_file_error(e, argv)
        if message:
            fail(message)
        _parse_error(e, argv)


HELP_FLAGS = ("--help", "-help", "-h", "--helpfull", "--helpshort", "--helpxml", "-?")


def _parse_error(e, argv):
    """One line for a flag or config error that `_parse` caught (re-raises anything else)."""
    if isinstance(e, OSError):
        reason = str(e).strip().splitlines()[-1].strip()  # ml_collections' last line says why
        fail(f"cannot load the config: {reason}; pass a config file or one of "
             f"{packaged_configs()}.")
    if isinstance(e, flags.Error):
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        fail(f"{message}; run with --helpfull to see the flags.")
    if isinstance(e, (KeyError, AttributeError, TypeError, ValueError)):
        # ml_collections reports bad `--config.x.y=` overrides with these.
        fail(_override_error(e, argv))
    raise e


def select_host_allocator(strategy):
    """Host memory from TensorFlow's BFC allocator, which keeps freed blocks for reuse,
    unless the command runs DTensor or the environment already chose.

    The default CPU allocator hands large blocks back to the system, so every XLA step
    faulted its working memory in again: 6,900-9,400 page faults per `bench_tiny` step,
    which took 54 ms against 40 ms on BFC (docs/benchmarks.md). DTensor fails on BFC (its
    empty tensors get no data pointer: "TF_TensorData returned nullptr"), so it keeps the
    default even when a parent process chose BFC. TensorFlow reads the variable when it
    first places a tensor on the CPU: call this before that.
    """
    if strategy == "dtensor":
        os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "false"
    else:
        os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")


def run(main):
    """absl's app.run with one-line errors for user mistakes and for Ctrl-C, on the host
    allocator `select_host_allocator` picks for the command's --strategy, with TensorFlow's
    native start-up chatter kept off stderr (tfllm.native_logs)."""
    native_logs.filter_stderr()

    def guarded(argv):
        logging.set_verbosity(logging.ERROR)  # Keras and checkpoint chatter; progress is ours
        select_host_allocator(flags.FLAGS["strategy"].value if "strategy" in flags.FLAGS
                              else None)
        try:
            main(argv)
        except UserError as e:
            fail(str(e))
        except Interrupted as e:
            stop(str(e))
        except KeyboardInterrupt:
            stop("interrupted.")

    app.run(guarded, flags_parser=_parse)
