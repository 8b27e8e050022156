"""Size presets: named argument sets a model class offers through `from_preset`."""


class PresetMixin:
    """Gives a model class `from_preset(name, vocab_size, **overrides)` over `cls.presets`."""

    presets = {}

    @classmethod
    def from_preset(cls, preset, vocab_size, **overrides):
        """A model of the named size (`cls.presets`), with any argument overridden."""
        if preset not in cls.presets:
            raise ValueError(f"Unknown {cls.__name__} preset {preset!r}; "
                             f"use one of {sorted(cls.presets)}.")
        return cls(vocab_size=vocab_size, **{**cls.presets[preset], **overrides})
