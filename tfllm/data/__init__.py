"""Corpora, token caches and tf.data pipelines."""

from tfllm.data.corpus import (DEFAULT_CORPUS, CorpusError, describe_source, read_configured_corpus,
                               read_corpus)
from tfllm.data.pipeline import (ShapeWarmup, eval_dataset, eval_windows, train_dataset,
                                 window_starts)
from tfllm.data.token_store import TokenStore

__all__ = ["DEFAULT_CORPUS", "CorpusError", "describe_source", "read_configured_corpus",
           "read_corpus", "ShapeWarmup", "eval_dataset", "eval_windows", "train_dataset",
           "window_starts", "TokenStore"]
