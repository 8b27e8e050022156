"""Training, evaluation and benchmarking read a prepared dataset where it is: the run takes
its tokenizer and split, records its fingerprint, and refuses to resume on another."""

import json
import os

import numpy as np
import pytest

from tfllm.configs import tiny_test
from tfllm.data import DEFAULT_CORPUS
from tfllm.data.preparation import prepare
from tfllm.errors import UserError
from tfllm.api.evaluation import evaluate_run
from tfllm.training import Trainer


def quiet_train(config, run_dir):
    return Trainer(config, str(run_dir), print_fn=lambda *args: None).train()


def tiny(source, **train):
    config = tiny_test.get_config()
    config.sample.length = 0
    config.data.source = str(source)
    config.train.update(train)
    return config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    (root / "corpus.txt").write_text(open(DEFAULT_CORPUS).read()[:200_000])
    return prepare(str(root / "corpus.txt"), str(root / "data"), tokenizer="sentencepiece",
                   vocab_size=400, shard_chars=30_000, print_fn=None, progress=False)


@pytest.fixture(scope="module")
def prepared_run(dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "prepared"
    summary = quiet_train(tiny(dataset.directory, steps=10), run_dir)
    return run_dir, summary


def test_a_run_takes_the_datasets_tokenizer_and_reads_it_in_place(dataset, prepared_run):
    run_dir, summary = prepared_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["tokenizer"] == "sentencepiece" and config["data"]["vocab_size"] == 400
    recorded = json.loads((run_dir / "run.json").read_text())["dataset"]
    assert recorded == {"path": dataset.directory, "fingerprint": dataset.fingerprint}
    assert not (run_dir / "data").exists()  # nothing copied into the run
    result = evaluate_run(str(run_dir))
    assert result["tokens"] == len(dataset.val) - 1
    np.testing.assert_allclose(result["loss"], summary["final_val_loss"], rtol=1e-4)


def test_evaluation_budget_is_the_same_in_training_and_evaluate(dataset, tmp_path):
    config = tiny(dataset.directory, steps=10)
    config.eval.max_tokens = 1_000
    summary = quiet_train(config, tmp_path / "run")
    result = evaluate_run(str(tmp_path / "run"))
    assert result["tokens"] == 1_000 // 16 * 16
    np.testing.assert_allclose(result["loss"], summary["final_val_loss"], rtol=1e-4)
    assert evaluate_run(str(tmp_path / "run"), max_tokens=0)["tokens"] == len(dataset.val) - 1


def test_resuming_on_another_dataset_at_the_same_path_is_refused(dataset, prepared_run, tmp_path):
    import shutil

    run_dir, _ = prepared_run
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved)
    other = tmp_path / "other.txt"
    other.write_text(open(DEFAULT_CORPUS).read()[200_000:400_000])
    tokenizer = dataset.tokenizer
    original = dataset.directory + ".original"
    os.rename(dataset.directory, original)
    try:
        prepare(str(other), dataset.directory, tokenizer=tokenizer, print_fn=None,
                progress=False)
        with pytest.raises(UserError, match="was trained on the prepared dataset .* is another"):
            quiet_train(tiny(dataset.directory, steps=20), moved)
    finally:
        shutil.rmtree(dataset.directory, ignore_errors=True)
        os.rename(original, dataset.directory)
