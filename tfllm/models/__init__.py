"""Language models built from tfllm layers, and the registry of their names.

The models load lazily (TensorFlow with them): `tfllm.models.sizes`, which a command
checks its config with before TensorFlow loads, does not pay for it.
"""

from tfllm._lazy import lazy_getattr

_WHERE = {"GPT": "gpt", "RecurrentLM": "recurrent_lm"}
_lazy = lazy_getattr(__name__, _WHERE)


def __getattr__(name):
    if name == "MODELS":
        return {"gpt": _lazy("GPT"), "recurrent": _lazy("RecurrentLM")}
    return _lazy(name)


def build_model(name, preset, vocab_size, **overrides):
    """Builds the model registered as `name` ("gpt" or "recurrent") at a size preset.

    Example:
        >>> model = build_model("gpt", "tiny", vocab_size=65, position="rope")
    """
    models = __getattr__("MODELS")
    if name not in models:
        raise ValueError(f"Unknown model {name!r}; use one of {sorted(models)}.")
    return models[name].from_preset(preset, vocab_size=vocab_size, **overrides)


def from_pretrained(path, **options):
    """(GPT, tokenizer) of a Hugging Face checkpoint directory: tfllm.pretrained.from_pretrained.

    Example:
        >>> model, tokenizer = from_pretrained("checkpoints/gpt2")
    """
    from tfllm.pretrained.conversion import from_pretrained as load

    return load(path, **options)


__all__ = ["GPT", "RecurrentLM", "MODELS", "build_model", "from_pretrained"]
