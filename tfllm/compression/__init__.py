"""Compression with tensorflow-model-optimization: quantization-aware training
(tfllm.compression.qat) and magnitude pruning (tfllm.compression.pruning); TFLite int8
export is in tfllm.inference.exporting.

Names load lazily: a run that neither quantizes nor prunes does not pay for importing
tensorflow-model-optimization (0.8 s of every command's start on a 2-core machine).
"""

from tfllm._lazy import lazy_getattr

_WHERE = {"MagnitudePruningCallback": "pruning", "is_pruned": "pruning", "prune_model": "pruning",
          "sparsity": "pruning", "strip_pruning": "pruning", "QuantizationAwareTraining": "qat",
          "is_quantized": "qat", "quantize_model": "qat"}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
