"""Training configs (ml_collections). Installed as `tfllm.configs`; pass one with
`--config=configs/<name>.py` or by name, `--config=<name>`."""

import ml_collections


def editable(config):
    """A mutable copy of a config (tfllm.config.validate freezes configs): for the code
    that adopts a checkpoint's or dataset's settings, which then validates the copy again."""
    if isinstance(config, ml_collections.FrozenConfigDict):
        return ml_collections.ConfigDict(config.as_configdict())
    return config.copy_and_resolve_references()
