"""Text datasets prepared here through real TFDS machinery (tfllm downloads nothing)."""

import numpy as np
import tensorflow_datasets as tfds

from tfllm.data import DEFAULT_CORPUS

DOCS = ["to be or not to be", "that is the question", "whether tis nobler in the mind"]


class TinyPlays(tfds.core.GeneratorBasedBuilder):
    """Three short documents in "train", the first of them in "test"."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "id": np.int32}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(DOCS), "test": self._generate_examples(DOCS[:1])}

    def _generate_examples(self, docs):
        for i, doc in enumerate(docs):
            yield i, {"text": doc, "id": i}


class ShakespeareScenes(tfds.core.GeneratorBasedBuilder):
    """The bundled corpus's first 40,000 characters, one document per speech: enough text
    for a tiny model to train and validate on."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"speech": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        with open(DEFAULT_CORPUS, encoding="utf-8") as f:
            speeches = f.read(40_000).split("\n\n")
        for i, speech in enumerate(speeches):
            yield i, {"speech": speech}


def prepare(builder_class, data_dir):
    """Prepares `builder_class`'s dataset under `data_dir`; returns data_dir."""
    builder_class(data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)
