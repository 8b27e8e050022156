"""Every config tfllm ships is one a user can run: it loads and passes validation."""

import importlib

import pytest

from tfllm.cli import packaged_configs
from tfllm.config import precision_choice, validate


@pytest.mark.parametrize("name", packaged_configs())
def test_packaged_config_validates(name):
    config = importlib.import_module(f"tfllm.configs.{name}").get_config()
    frozen = validate(config)
    expected = config.to_dict()
    if expected["train"]["precision"] == "auto":  # resolved for this CPU (tests/test_hardware.py)
        precision, xla, _ = precision_choice(config)
        expected["train"].update(precision=precision, xla=xla)
    assert frozen.to_dict() == expected
    with pytest.raises(AttributeError, match="immutable"):
        frozen.train.steps = 1


def test_the_configs_the_docs_name_are_packaged():
    assert {"default", "lstm", "bench_tiny", "bench_small", "bench_lstm", "speedrun_shakespeare_char",
            "shakespeare_char_30min", "tiny_test", "bench_gpt2"} <= set(packaged_configs())
