"""Corpus sources, the TFDS one through a dataset built here with real TFDS machinery."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfllm.data import CorpusError, TokenStore, read_corpus
from tfllm.tokenizers import CharTokenizer

DOCS = ["to be or not to be", "that is the question", "whether tis nobler in the mind"]


class TinyPlays(tfds.core.GeneratorBasedBuilder):
    """A three-document text dataset prepared locally (no download)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "id": np.int32}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(DOCS), "test": self._generate_examples(DOCS[:1])}

    def _generate_examples(self, docs):
        for i, doc in enumerate(docs):
            yield i, {"text": doc, "id": i}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    TinyPlays(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_tfds_dataset_by_name(tfds_dir):
    assert read_corpus("tfds:tiny_plays", data_dir=tfds_dir) == "\n".join(DOCS)
    assert read_corpus("tfds:tiny_plays", data_dir=tfds_dir, split="test") == DOCS[0]


def test_tfds_errors_say_what_to_do(tfds_dir, tmp_path):
    with pytest.raises(CorpusError, match="no split 'validation'"):
        read_corpus("tfds:tiny_plays", data_dir=tfds_dir, split="validation")
    with pytest.raises(CorpusError, match="not prepared"):
        read_corpus("tfds:tiny_plays", data_dir=str(tmp_path))
    with pytest.raises(CorpusError, match="not found"):
        read_corpus("tfds:no_such_dataset_xyz", data_dir=tfds_dir)


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


def test_token_store_split_and_cache(tmp_path):
    text = "abcdefghij" * 100
    tok = CharTokenizer.train(text)
    store = TokenStore(tok.encode_to_array(text), 0.1)
    assert len(store.val) == 100 and len(store.train) == 900
    key = TokenStore.cache_key("corpus-v1", tok)
    path = str(tmp_path / "tokens.npy")
    store.save(path, key)
    loaded = TokenStore.load(path, key, 0.1)
    np.testing.assert_array_equal(loaded.tokens, store.tokens)
    assert TokenStore.load(path, TokenStore.cache_key("corpus-v2", tok), 0.1) is None
