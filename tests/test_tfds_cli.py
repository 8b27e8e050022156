"""A TFDS corpus through the commands, as a user names it: `tfds:<name>` with a data_dir,
and paths written `~/...`, which no shell expands after `--flag=`."""

import json
import os

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, metrics, run
from tests.tfds_datasets import DOCS, ShakespeareScenes, TinyPlays, prepare

pytestmark = pytest.mark.slow  # trains in subprocesses


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home directory holding two prepared TFDS datasets in ~/tfds and a run trained on
    one of them into ~/runs/scenes, trained from an empty working directory."""
    home = tmp_path_factory.mktemp("home")
    prepare(ShakespeareScenes, home / "tfds")
    prepare(TinyPlays, home / "tfds")
    cwd = tmp_path_factory.mktemp("cwd")
    proc = run("tfllm.train", "--config=tiny_test", "--config.data.source=tfds:shakespeare_scenes",
               "--config.data.data_dir=~/tfds", "--run_dir=~/runs/scenes",
               "--config.sample.length=0", cwd=cwd, env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(cwd) == []  # no directory named "~" in the working directory
    return home


def evaluate(home, *args):
    proc = run("tfllm.evaluate", "--run_dir=~/runs/scenes", "--json", *args,
               env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_and_evaluate_on_a_tfds_dataset(home):
    records = metrics(home / "runs" / "scenes")
    assert records[-1]["val_loss"] < records[1]["val_loss"]
    # Evaluate reads the run's own corpus from its TFDS settings ...
    own = evaluate(home, "--batch_size=16")
    np.testing.assert_allclose(own["loss"], records[-1]["val_loss"], rtol=1e-4)
    # ... or another dataset, with another split.
    other = evaluate(home, "--data=tfds:tiny_plays", "--tfds_split=test", "--split=all")
    assert other["tokens"] == len(DOCS[0]) - 1
    assert np.isfinite(other["loss"]) and other["loss"] != own["loss"]


@pytest.mark.parametrize("case", ["data_dir", "split"])
def test_evaluate_tfds_errors_name_evaluate_flags(home, tmp_path, case):
    args, phrase = {
        "data_dir": ([f"--tfds_data_dir={tmp_path}"], "or set --tfds_data_dir to where it is "
                                                      "prepared"),
        "split": (["--tfds_split=validation"], "no split 'validation'; set --tfds_split to one "
                                               "of ['test', 'train']"),
    }[case]
    proc = run("tfllm.evaluate", "--run_dir=~/runs/scenes", "--data=tfds:tiny_plays", *args,
               env={"HOME": str(home)})
    assert_one_line_error(proc, phrase)
