"""Generation from trained language models."""

from tfllm.inference.decoding import Decoder, NaiveDecoder, decoder_for, generate
from tfllm.inference.sampling import SAMPLERS, filter_logits, sample_next, sampler_settings

__all__ = ["Decoder", "NaiveDecoder", "SAMPLERS", "decoder_for", "filter_logits", "generate",
           "sample_next", "sampler_settings"]
