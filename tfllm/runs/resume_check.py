"""Whether a run directory can be resumed by a config, decided without TensorFlow:
`tfllm.train` answers a config that does not fit its run in a second, and the Trainer
checks the same way."""

import os

from tfllm import config as config_lib
from tfllm.errors import UserError
from tfllm.pretrained.checkpoint import (PRETRAINED_PREFIXES, adopt_model_section,
                                         pretrained_path, spec_prefix)
from tfllm.runs.run_directory import load_config, load_run_file


def init_from_record(init_from):
    """What run.json records as --init_from: an absolute path, hf: kept for a checkpoint."""
    path = pretrained_path(init_from)
    if path is not None:
        return spec_prefix(init_from) + os.path.abspath(path)
    return os.path.abspath(init_from) if init_from else None


def adopt_resumed_import(config, run_dir, init_from):
    """A run started from a Hugging Face checkpoint resumes without --init_from too: its
    saved config's architecture stands for the checkpoint's."""
    record = load_run_file(run_dir).get("init_from") or ""
    saved = load_config(run_dir)
    if init_from or not record.startswith(PRETRAINED_PREFIXES) or saved is None:
        return config
    config, _ = adopt_model_section(config, saved.model.to_dict())
    return config_lib.validate(config)


def check_resume(run_dir, config, init_from):
    """Whether `run_dir` holds a run to resume; UserError when `config` (as the run
    trains it: adopted from a checkpoint or prepared dataset) or --init_from do not fit."""
    saved = load_config(run_dir)
    if saved is None:
        return False
    mismatch = config_lib.identity_mismatch(saved.to_dict(), config.to_dict())
    if mismatch:
        key, old, new = mismatch
        raise UserError(f"{run_dir} holds a run with {key}={old!r}, not {new!r}; rerun "
                        "with the same config to resume, or pass a new --run_dir.")
    started_from = load_run_file(run_dir).get("init_from")
    if init_from and started_from != init_from_record(init_from):
        origin = f"--init_from={started_from}" if started_from else "scratch"
        raise UserError(f"{run_dir} already holds a run, started from {origin}; "
                        f"--init_from starts a new run: pass a new --run_dir, or rerun "
                        "without --init_from to resume this one.")
    return True
