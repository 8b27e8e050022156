"""Language models built from tfllm layers, and the registry of their names."""

from tfllm.models.gpt import GPT
from tfllm.models.recurrent_lm import RecurrentLM

MODELS = {"gpt": GPT, "recurrent": RecurrentLM}


def build_model(name, preset, vocab_size, **overrides):
    """Builds the model registered as `name` ("gpt" or "recurrent") at a size preset.

    Example:
        >>> model = build_model("gpt", "tiny", vocab_size=65, position="rope")
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; use one of {sorted(MODELS)}.")
    return MODELS[name].from_preset(preset, vocab_size=vocab_size, **overrides)


def from_pretrained(path, **options):
    """(GPT, tokenizer) of a Hugging Face checkpoint directory: tfllm.pretrained.from_pretrained.

    Example:
        >>> model, tokenizer = from_pretrained("checkpoints/gpt2")
    """
    from tfllm.pretrained.conversion import from_pretrained as load

    return load(path, **options)


__all__ = ["GPT", "RecurrentLM", "MODELS", "build_model", "from_pretrained"]
