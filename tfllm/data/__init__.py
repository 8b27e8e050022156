"""Corpora, prepared token datasets and tf.data pipelines.

Names load lazily: reading and preparing a corpus (`tfllm.prepare`, its worker
processes) never imports TensorFlow; only the tf.data pipelines do.
"""

from tfllm._lazy import lazy_getattr

_WHERE = {
    "DEFAULT_CORPUS": "corpus", "CorpusError": "corpus", "describe_source": "corpus",
    "read_corpus": "corpus", "iter_pieces": "corpus",
    "ShapeWarmup": "pipeline", "eval_dataset": "pipeline", "eval_windows": "pipeline",
    "train_dataset": "pipeline", "window_starts": "pipeline",
    "PreparedDataset": "prepared_dataset", "is_prepared": "prepared_dataset",
    "prepare": "preparation", "configured_dataset": "sources",
    "prepare_chat": "chat_preparation", "PreparedChatDataset": "prepared_chat",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
