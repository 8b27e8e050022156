"""Corpus sources, the TFDS one through a dataset built here with real TFDS machinery."""

import os

import pytest

from tests.tfds_datasets import DOCS, TinyPlays, prepare
from tfllm.data import CorpusError, read_corpus


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return prepare(TinyPlays, tmp_path_factory.mktemp("tfds"))


def test_tfds_dataset_by_name(tfds_dir):
    assert read_corpus("tfds:tiny_plays", data_dir=tfds_dir) == "\n".join(DOCS)
    assert read_corpus("tfds:tiny_plays", data_dir=tfds_dir, split="test") == DOCS[0]


def test_tfds_errors_say_what_to_do(tfds_dir, tmp_path):
    with pytest.raises(CorpusError, match=r"no split 'validation'; set --config.data.split to one "
                                          r"of \['test', 'train'\]"):
        read_corpus("tfds:tiny_plays", data_dir=tfds_dir, split="validation")
    with pytest.raises(CorpusError, match="not prepared .* or set --config.data.data_dir to where"):
        read_corpus("tfds:tiny_plays", data_dir=str(tmp_path))
    with pytest.raises(CorpusError, match="not found"):
        read_corpus("tfds:no_such_dataset_xyz", data_dir=tfds_dir)


def test_errors_name_the_flags_of_the_command(tfds_dir, tmp_path):
    flags = {"source": "--data", "data_dir": "--tfds_data_dir", "split": "--tfds_split"}
    with pytest.raises(CorpusError, match="set --tfds_split to one of"):
        read_corpus("tfds:tiny_plays", data_dir=tfds_dir, split="validation", flags=flags)
    with pytest.raises(CorpusError, match="or set --tfds_data_dir to where"):
        read_corpus("tfds:tiny_plays", data_dir=str(tmp_path), flags=flags)
    with pytest.raises(CorpusError, match="as --data, or tfds:"):
        read_corpus(str(tmp_path / "nope.txt"), flags=flags)


def test_paths_starting_with_a_tilde_are_under_home(tfds_dir, tmp_path, monkeypatch):
    # No shell expands the ~ of `--config.data.source=~/plays.txt`.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "plays.txt").write_text("alpha")
    assert read_corpus("~/plays.txt") == "alpha"
    os.symlink(tfds_dir, tmp_path / "tfds")
    assert read_corpus("tfds:tiny_plays", data_dir="~/tfds", split="test") == DOCS[0]


def test_file_folder_and_glob(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("beta")
    assert read_corpus(str(tmp_path / "a.txt")) == "alpha"
    assert read_corpus(str(tmp_path)) == "alpha\nbeta"
    assert read_corpus(str(tmp_path / "**" / "*.txt")) == "alpha\nbeta"


def test_missing_and_empty(tmp_path):
    with pytest.raises(CorpusError, match="names no file"):
        read_corpus(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(CorpusError, match="is empty"):
        read_corpus(str(tmp_path / "empty.txt"))


def test_tfds_examples_prepare_as_documents(tfds_dir, tmp_path):
    from tfllm.data.preparation import prepare

    data = prepare("tfds:tiny_plays", str(tmp_path / "out"), data_dir=tfds_dir,
                   print_fn=None, progress=False)
    assert data.manifest["documents"] == len(DOCS)
    assert data.tokenizer.decode(data.tokens[:]) == "\n".join(DOCS)
