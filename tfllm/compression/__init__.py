"""Compression with tensorflow-model-optimization: quantization-aware training
(tfllm.compression.qat) and magnitude pruning (tfllm.compression.pruning); TFLite int8
export is in tfllm.inference.exporting."""

from tfllm.compression.pruning import (MagnitudePruningCallback, is_pruned, prune_model, sparsity,
                                       strip_pruning)
from tfllm.compression.qat import QuantizationAwareTraining, is_quantized, quantize_model

__all__ = ["MagnitudePruningCallback", "QuantizationAwareTraining", "is_pruned", "is_quantized",
           "prune_model", "quantize_model", "sparsity", "strip_pruning"]
