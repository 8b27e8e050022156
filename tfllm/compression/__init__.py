"""Compression: quantization-aware training (tfllm.compression.qat) with
tensorflow-model-optimization; TFLite int8 export is in tfllm.inference.exporting."""

from tfllm.compression.qat import QuantizationAwareTraining, is_quantized, quantize_model

__all__ = ["QuantizationAwareTraining", "is_quantized", "quantize_model"]
