"""A run directory written by an older tfllm still resumes, evaluates, generates and
exports. tests/fixtures/old_run was trained by the code before config.json had a version
(commit c34111c, in the checkout: `python -m tfllm.train --config=tiny_test
--run_dir=tests/fixtures/old_run --config.data.source=tests/fixtures/old_corpus.txt
--config.train.steps=10 --config.eval.every=10 --config.checkpoint.every=10
--config.sample.length=0`), so its config lacks the keys added since."""

import json
import os
import shutil

import pytest

from tfllm import config as config_lib
from tfllm.errors import UserError
from tfllm.runs.run_directory import load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "old_run")
OLD_SOURCE = "tests/fixtures/old_corpus.txt"


@pytest.fixture
def old_run(tmp_path):
    run_dir = tmp_path / "old_run"
    shutil.copytree(FIXTURE, run_dir)
    return str(run_dir)


def test_the_fixture_is_an_old_run():
    with open(os.path.join(FIXTURE, "config.json")) as f:
        saved = json.load(f)
    assert config_lib.VERSION_KEY not in saved and "init_std" not in saved["model"]


def test_an_old_config_is_upgraded_to_every_key(old_run):
    config = load_config(old_run)
    config_lib.validate(config)  # every key of configs/base.py, of its type
    assert config.model.init_std == 0.02 and config.model.remat == "none"


def test_a_config_from_a_newer_tfllm_is_refused(old_run):
    path = os.path.join(old_run, "config.json")
    with open(path) as f:
        saved = json.load(f)
    saved[config_lib.VERSION_KEY] = config_lib.CONFIG_VERSION + 1
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.raises(UserError, match="newer than this tfllm"):
        load_config(old_run)


def test_an_old_run_evaluates_generates_exports_and_resumes(old_run, tmp_path, monkeypatch):
    import tfllm
    from tfllm.configs import tiny_test

    monkeypatch.chdir(REPO)  # the run's data.source is relative to the checkout, as trained

    before = tfllm.evaluate_run(old_run)
    assert before["tokens"] > 0 and before["loss"] < 5
    text = tfllm.generate_text(old_run, "ROMEO:", max_new_tokens=8, seed=1)[0]
    assert len(text) == 8
    exported = tfllm.export_run(old_run, "hf", output=str(tmp_path / "hf"))
    assert "model.safetensors" in exported["files"]
    config = tiny_test.get_config()
    config.train.steps = 20
    config.eval.every = config.checkpoint.every = 10
    config.sample.length = 0
    config.data.source = OLD_SOURCE
    summary = tfllm.Trainer(config, old_run, print_fn=lambda *args: None).train()
    assert summary["step"] == 20
    with open(os.path.join(old_run, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == sorted(steps) and steps[0] <= 10 < steps[-1] == 20
