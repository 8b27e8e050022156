"""Generation from trained language models.

Names load lazily: `sampler_settings` and `check_sampling_args` (tfllm.inference.sampler_args)
check a request without TensorFlow; the decoders and samplers import it.
"""

from tfllm._lazy import lazy_getattr

_WHERE = {
    "Decoder": "decoding", "NaiveDecoder": "decoding", "decoder_for": "decoding",
    "generate": "decoding", "SAMPLERS": "sampler_args", "sampler_settings": "sampler_args",
    "check_sampling_args": "sampler_args", "filter_logits": "sampling",
    "sample_next": "sampling",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
