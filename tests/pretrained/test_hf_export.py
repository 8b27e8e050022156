"""Exporting tfllm GPTs to the Hugging Face layout.

tests/fixtures/hf_export/<name>/ holds tfllm exports (tools/make_hf_export_fixtures.py)
with transformers' logits and `tokenizers`' ids of them (transformers.npz, made by
transformers itself: tools/make_hf_fixtures.py --check-exports). The tests check that the
export still writes exactly those files, and that they compute what transformers computed.
"""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from tfllm.errors import UserError
from tfllm.models import GPT
from tfllm.pretrained import from_pretrained, save_pretrained
from tfllm.tokenizers import ByteTokenizer, CharTokenizer

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
EXPORTS = ("gpt2_char", "llama_byte", "llama_bias_char", "qwen3_char")


def _fixture(name):
    path = os.path.join(FIXTURES, "hf_export", name)
    return path, np.load(os.path.join(path, "tfllm.npz")), np.load(
        os.path.join(path, "transformers.npz"))


@pytest.mark.parametrize("name", EXPORTS)
def test_export_computes_what_transformers_computed(name, tmp_path):
    path, ours, theirs = _fixture(name)
    np.testing.assert_allclose(ours["logits"], theirs["logits"], atol=1e-4, rtol=0)
    model, _ = from_pretrained(path)
    np.testing.assert_allclose(model(ours["ids"]).numpy(), theirs["logits"], atol=1e-4, rtol=0)
    # Exported again, the files are those transformers read: same config, same tensors.
    text = str(ours["text"])
    tokenizer = ByteTokenizer() if name.endswith("byte") else CharTokenizer.train(text)
    save_pretrained(model, tokenizer, str(tmp_path))
    for file in ("config.json", "tokenizer.json"):
        with open(os.path.join(path, file)) as a, open(tmp_path / file) as b:
            assert json.load(a) == json.load(b), file
    written, committed = (load_file(os.path.join(p, "model.safetensors"))
                          for p in (str(tmp_path), path))
    assert sorted(written) == sorted(committed)
    for key in committed:
        np.testing.assert_array_equal(written[key], committed[key], err_msg=key)


@pytest.mark.parametrize("name", EXPORTS)
def test_exported_tokenizer_encodes_as_tfllm(name):
    _, ours, theirs = _fixture(name)
    np.testing.assert_array_equal(theirs["text_ids"], ours["text_ids"])
    assert str(theirs["decoded"]) == str(ours["text"])


def test_imported_checkpoint_round_trips(tmp_path):
    """import -> export gives back the checkpoint's tensors (float32) and its logits."""
    source = os.path.join(FIXTURES, "hf", "llama")
    model, tokenizer = from_pretrained(source)
    assert save_pretrained(model, tokenizer, str(tmp_path))[0] == "llama"
    original = load_file(os.path.join(source, "model.safetensors"))
    exported = load_file(str(tmp_path / "model.safetensors"))
    assert sorted(original) == sorted(exported)
    for key, value in original.items():
        np.testing.assert_array_equal(exported[key], value.astype(np.float32), err_msg=key)
    again, _ = from_pretrained(str(tmp_path))
    ids = np.load(os.path.join(source, "reference.npz"))["ids"]
    np.testing.assert_array_equal(again(ids).numpy(), model(ids).numpy())


def test_gpt2_export_writes_zero_biases_for_a_model_without_them(tmp_path):
    model = GPT(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, max_length=16,
                use_bias=False)
    save_pretrained(model, None, str(tmp_path))
    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert not tensors["transformer.h.0.attn.c_attn.bias"].any()
    rebuilt, tokenizer = from_pretrained(str(tmp_path))
    assert tokenizer is None
    ids = np.arange(10)[None]
    np.testing.assert_allclose(rebuilt(ids).numpy(), model(ids).numpy(), atol=1e-6)


@pytest.mark.parametrize("arguments, message", [
    (dict(position="learned", normalization="rms"), "no Hugging Face architecture has "
     "position=learned, normalization=rms"),
    (dict(position="rope", normalization="rms", activation="swiglu", qk_norm=True,
          use_bias=True), "Qwen3 \\(QK norm\\) has no biases"),
    (dict(num_kv_heads=1), "GPT-2 .* has no grouped-query attention"),
])
def test_models_no_architecture_computes_are_refused(tmp_path, arguments, message):
    model = GPT(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, max_length=16,
                **arguments)
    with pytest.raises(UserError, match=message):
        save_pretrained(model, None, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
