"""LoRA adapters in PEFT's format, checked against adapters PEFT itself saved
(tools/make_peft_fixtures.py): tfllm computes PEFT's logits with them and writes them back
tensor for tensor."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from tfllm.adapt.peft_format import (CONFIG_FILE, WEIGHTS_FILE, _target_key, load_peft_adapter,
                                     read_peft_config, save_peft_adapter)
from tfllm.errors import UserError
from tfllm.pretrained import from_pretrained

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


@pytest.mark.parametrize("name, base", [("llama_attention_mlp", "llama"),
                                        ("qwen3_query_value", "qwen3")])
def test_pefts_adapter_gives_pefts_logits_and_is_written_back_unchanged(name, base, tmp_path):
    adapter_dir = os.path.join(FIXTURES, "peft", name)
    model, _ = from_pretrained(os.path.join(FIXTURES, "hf", base))
    reference = np.load(os.path.join(adapter_dir, "reference.npz"))
    plain = model(reference["ids"]).numpy()
    load_peft_adapter(model, adapter_dir)
    logits = model(reference["ids"]).numpy()
    assert np.abs(logits - plain).max() > 0.1  # the adapters change the model
    np.testing.assert_allclose(logits, reference["logits"], atol=1e-5, rtol=0)  # 1.1e-6 seen

    config = read_peft_config(adapter_dir)
    save_peft_adapter(model, str(tmp_path), _target_key(config["target_modules"]),
                      config["base_model_name_or_path"])
    theirs, ours = load_file(os.path.join(adapter_dir, WEIGHTS_FILE)), \
        load_file(str(tmp_path / WEIGHTS_FILE))
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
    with open(tmp_path / CONFIG_FILE) as f:
        written = json.load(f)
    for key in ("peft_type", "task_type", "base_model_name_or_path", "r", "lora_alpha",
                "lora_dropout", "bias", "fan_in_fan_out"):
        assert written[key] == config[key], key
    assert sorted(written["target_modules"]) == sorted(config["target_modules"])


def test_adapters_tfllm_cannot_compute_are_refused(tmp_path):
    adapter_dir = tmp_path / "dora"
    adapter_dir.mkdir()
    with open(os.path.join(FIXTURES, "peft", "qwen3_query_value", CONFIG_FILE)) as f:
        config = json.load(f)
    (adapter_dir / CONFIG_FILE).write_text(json.dumps(dict(config, use_dora=True)))
    with pytest.raises(UserError, match="tfllm loads plain LoRA adapters.* has use_dora"):
        read_peft_config(str(adapter_dir))
    with pytest.raises(UserError, match=r"are not one of tfllm's LoRA target sets"):
        _target_key(["q_proj", "o_proj"])
    with pytest.raises(UserError, match="holds no adapter_config.json"):
        read_peft_config(str(tmp_path))
