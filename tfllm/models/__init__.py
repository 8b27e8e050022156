"""Language models built from tfllm layers, and the registry of their names.

A config's `model` section is the model's `get_config()` without `vocab_size` (which
the tokenizer gives): `build_model(section, vocab_size)` builds it, and a run's
config.json rebuilds its model alone.

The models load lazily (TensorFlow with them): `tfllm.models.sizes`, which a command
checks its config with before TensorFlow loads, does not pay for it.
"""

from tfllm._lazy import lazy_getattr

_WHERE = {"GPT": "gpt", "RecurrentLM": "recurrent_lm"}
# model.name -> the class it builds. TensorFlow-free: the config check's choices.
MODEL_CLASSES = {"gpt": "GPT", "recurrent": "RecurrentLM"}
_lazy = lazy_getattr(__name__, _WHERE)


def __getattr__(name):
    if name == "MODELS":
        return {key: _lazy(cls) for key, cls in MODEL_CLASSES.items()}
    return _lazy(name)


def model_class(name):
    """The class registered as `name` ("gpt" or "recurrent"); ValueError naming the choices."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"Unknown model {name!r}; use one of {sorted(MODEL_CLASSES)}.")
    return _lazy(MODEL_CLASSES[name])


def build_model(section, vocab_size):
    """The model a config's `model` section describes (its get_config() without
    vocab_size), for `vocab_size` tokens.

    Example:
        >>> from tfllm.configs import base
        >>> model = build_model(base.gpt_model(), vocab_size=65)
    """
    section = dict(section.to_dict() if hasattr(section, "to_dict") else section)
    return model_class(section["name"]).from_config({**section, "vocab_size": vocab_size})


def build_preset(name, preset, vocab_size, **overrides):
    """The model registered as `name` at a size preset.

    Example:
        >>> model = build_preset("gpt", "tiny", vocab_size=65, position="rope")
    """
    return model_class(name).from_preset(preset, vocab_size=vocab_size, **overrides)


__all__ = ["GPT", "RecurrentLM", "MODELS", "MODEL_CLASSES", "build_model", "build_preset",
           "model_class"]
