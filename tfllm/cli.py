"""What every tfllm command shares: config lookup by name, one-line errors, exit codes.

A user mistake (bad flag, config key or value, missing file) prints one line,
`<command>: error: <what is wrong and how to fix it>`, to stderr and exits 2; there is
no traceback. Anything else is a bug and keeps its traceback.
"""

import os
import sys

from absl import app, flags, logging

from tfllm.errors import UserError  # noqa: F401  (re-exported for the commands)

def packaged_configs():
    import tfllm.configs

    directory = os.path.dirname(tfllm.configs.__file__)
    return sorted(f[:-3] for f in os.listdir(directory)
                  if f.endswith(".py") and not f.startswith("_") and f != "base.py")


def config_path(name_or_path):
    """A config file path for `--config`: a path as is, or a packaged config's name."""
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


def _command_name():
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else "tfllm"


def _resolve_config_flag(argv):
    """Rewrites `--config=<name>` to the packaged config file of that name."""
    out = []
    for arg in argv:
        if arg.startswith("--config="):
            arg = "--config=" + config_path(arg[len("--config="):])
        out.append(arg)
    return out


def _parse(argv):
    try:
        argv = flags.FLAGS(_resolve_config_flag(argv))
        if "config" in flags.FLAGS:
            list(flags.FLAGS.config.keys())  # config files load lazily: surface errors here
        return argv
    except OSError as e:
        reason = str(e).strip().splitlines()[-1].strip()  # ml_collections' last line says why
        fail(f"cannot load the config: {reason}; pass a config file or one of "
             f"{packaged_configs()}.")
    except flags.Error as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        fail(f"{message}; run with --helpfull to see the flags.")
    except (KeyError, AttributeError, TypeError, ValueError) as e:
        # ml_collections reports bad `--config.x.y=` overrides with these.
        fail(f"bad config override: {e}; see configs/base.py for every key and its type.")


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
    """absl's app.run with one-line errors for user mistakes, on the host allocator
    `select_host_allocator` picks for the command's --strategy."""

    def guarded(argv):
        logging.set_verbosity(logging.ERROR)  # Keras and checkpoint chatter; progress is ours
        select_host_allocator(flags.FLAGS["strategy"].value if "strategy" in flags.FLAGS
                              else None)
        try:
            main(argv)
        except UserError as e:
            fail(str(e))

    app.run(guarded, flags_parser=_parse)
