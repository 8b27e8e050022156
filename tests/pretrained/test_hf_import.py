"""Importing Hugging Face checkpoints: tfllm's GPT against transformers' own outputs.

The fixtures (tests/fixtures/hf/<arch>/) are tiny random checkpoints saved by transformers
with its logits, greedy continuation and tokenizer ids, made by tools/make_hf_fixtures.py;
these tests need neither torch nor transformers (one more compares live where they are
installed).
"""

import json
import os
import re
import shutil

import numpy as np
import pytest

from tfllm.errors import UserError
from tfllm.inference import generate
from tfllm.pretrained import check_checkpoint, from_pretrained

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf")
ARCHITECTURES = ("gpt2", "llama", "qwen2", "qwen3", "mistral")


@pytest.fixture(scope="module")
def imported():
    """{arch: (model, tokenizer, reference)}, each imported once."""
    out = {}
    for arch in ARCHITECTURES:
        path = os.path.join(FIXTURES, arch)
        out[arch] = (*from_pretrained(path), np.load(os.path.join(path, "reference.npz")))
    return out


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_logits_match_transformers(imported, arch):
    model, _, ref = imported[arch]
    np.testing.assert_allclose(model(ref["ids"]).numpy(), ref["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_greedy_continuation_matches_transformers(imported, arch):
    model, _, ref = imported[arch]
    tokens = generate(model, ref["greedy_prompt"], 32, temperature=0.0)[0]
    np.testing.assert_array_equal(tokens, ref["greedy"])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tokenizer_matches_transformers(imported, arch):
    _, tokenizer, ref = imported[arch]
    ids = tokenizer.encode(str(ref["sample"]))
    np.testing.assert_array_equal(ids, ref["sample_ids"])
    assert tokenizer.decode(ids) == str(ref["decoded"])


def test_weight_dtypes_are_read_as_saved(imported):
    """bfloat16 (llama) and float16 (qwen2) checkpoints load into float32 variables."""
    for arch, dtype in (("llama", "bfloat16"), ("qwen2", "float16"), ("gpt2", "float32")):
        with open(os.path.join(FIXTURES, arch, "config.json")) as f:
            assert json.load(f)["dtype"] == dtype
        assert all(w.dtype.name == "float32" for w in imported[arch][0].weights)


def test_end_of_text_is_the_document_separator(imported):
    _, tokenizer, _ = imported["gpt2"]
    assert tokenizer.decode(tokenizer.document_separator()) == "<|endoftext|>"
    _, tokenizer, _ = imported["llama"]
    assert tokenizer.decode(tokenizer.document_separator()) == "</s>"


def test_live_against_transformers(imported):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    for arch in ARCHITECTURES:
        model, _, ref = imported[arch]
        theirs = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.join(FIXTURES, arch), dtype=torch.float32).eval()
        with torch.no_grad():
            expected = theirs(torch.tensor(ref["ids"])).logits.numpy()
        np.testing.assert_allclose(model(ref["ids"]).numpy(), expected, atol=1e-4, rtol=0)


def _copy(arch, tmp_path):
    path = tmp_path / arch
    shutil.copytree(os.path.join(FIXTURES, arch), path)
    return path


def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("change, message", [
    (dict(model_type="falcon"), "model_type='falcon' is not supported: tfllm imports gpt2"),
    (dict(rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}),
     "rope_parameters.rope_type='llama3' is not supported"),
    (dict(hidden_act="gelu"), "hidden_act='gelu' is not supported"),
    (dict(attention_bias=True), "attention_bias=True is not supported"),
    (dict(mlp_bias=True), "mlp_bias=True is not supported"),
])
def test_unsupported_options_are_refused_by_name(tmp_path, change, message):
    path = _copy("llama", tmp_path)
    _edit_config(path, **change)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_checkpoint(str(path))


def test_sliding_window_shorter_than_the_context_is_refused(tmp_path):
    path = _copy("mistral", tmp_path)
    _edit_config(path, sliding_window=32)
    check_checkpoint(str(path), max_length=32)
    with pytest.raises(UserError, match="sliding_window=32 is not supported.*max_length=32"):
        check_checkpoint(str(path), max_length=64)


def test_learned_positions_bound_the_context(tmp_path):
    with pytest.raises(UserError, match="longer than the checkpoint's 128 learned positions"):
        check_checkpoint(os.path.join(FIXTURES, "gpt2"), max_length=256)


@pytest.mark.parametrize("remove, message", [
    ("config.json", "has no config.json"),
    ("model.safetensors", "has no model.safetensors"),
    ("tokenizer.json", "has no tokenizer.json"),
])
def test_incomplete_directories_are_refused(tmp_path, remove, message):
    path = _copy("gpt2", tmp_path)
    os.remove(path / remove)
    with pytest.raises(UserError, match=message):
        check_checkpoint(str(path))


def _rewrite_weights(path, edit):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(path / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(path / "model.safetensors"))


def test_missing_tensor_is_named(tmp_path):
    path = _copy("qwen2", tmp_path)
    _rewrite_weights(path, lambda t: t.pop("model.layers.1.self_attn.k_proj.bias"))
    with pytest.raises(UserError, match="no tensor 'model.layers.1.self_attn.k_proj.bias'"):
        from_pretrained(str(path))


def test_wrong_shape_is_named(tmp_path):
    path = _copy("gpt2", tmp_path)

    def widen(tensors):
        tensors["transformer.h.0.mlp.c_fc.weight"] = np.zeros((64, 128), np.float32)

    _rewrite_weights(path, widen)
    with pytest.raises(UserError, match=r"'transformer.h.0.mlp.c_fc.weight' has shape \[64, 128\], "
                                        r"config.json implies \[64, 256\]"):
        from_pretrained(str(path))


def test_extra_tensors_are_refused(tmp_path):
    path = _copy("llama", tmp_path)
    _edit_config(path, num_hidden_layers=1)
    with pytest.raises(UserError, match="tensors config.json's architecture has no place for "
                                        r"\(model.layers.1"):
        from_pretrained(str(path))


def test_sharded_checkpoints_load(tmp_path, imported):
    """model.safetensors.index.json and its shards, as large checkpoints ship."""
    from safetensors.numpy import load_file, save_file

    path = _copy("qwen3", tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    os.remove(path / "model.safetensors")
    names = sorted(tensors)
    weight_map = {}
    for k, part in enumerate((names[::2], names[1::2])):
        file = f"model-0000{k + 1}-of-00002.safetensors"
        save_file({n: tensors[n] for n in part}, str(path / file))
        weight_map.update({n: file for n in part})
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    model, _ = from_pretrained(str(path))
    ref = imported["qwen3"][2]
    np.testing.assert_allclose(model(ref["ids"]).numpy(), ref["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_prepared_shards_equal_one_piece_for_byte_level_bpe(arch, tmp_path):
    """tfllm.prepare cuts a corpus after newlines and encodes the pieces apart: with a
    byte-level BPE (GPT-2, Qwen) the shards joined are the corpus encoded whole, runs of
    newlines at the cuts included."""
    from tfllm.data import DEFAULT_CORPUS, prepare

    with open(DEFAULT_CORPUS) as f:
        text = f.read()[:200_000].replace("\n\n", "\n\n\n", 40)
    source = tmp_path / "corpus.txt"
    source.write_text(text)
    tokenizer = check_checkpoint(os.path.join(FIXTURES, arch)).tokenizer()
    dataset = prepare(str(source), str(tmp_path / "prepared"), tokenizer, shard_chars=20_000,
                      workers=1, print_fn=lambda *a: None, progress=False)
    assert len(dataset.manifest["shards"]) > 5
    np.testing.assert_array_equal(np.asarray(dataset.tokens[:]), tokenizer.encode(text))


# Damaged downloads: one line naming the file, before TensorFlow ---------------------------

@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "config.json").write_text("[1, 2]"), "holds a JSON list, not the object"),
    (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:5000]),
     "model.safetensors is not a whole safetensors file (its tensors end at byte"),
    (lambda p: (p / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!"
                                                      b"garbage!" + b"\x00" * 64),
     "model.safetensors is not a whole safetensors file (its header is not safetensors JSON)"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, damage, message):
    path = _copy("llama", tmp_path)
    damage(path)
    with pytest.raises(UserError, match=re.escape(message)):
        check_checkpoint(str(path))


def test_a_tokenizer_with_more_ids_than_the_embedding_is_refused(tmp_path):
    from tfllm.pretrained.checkpoint import Checkpoint

    path = _copy("llama", tmp_path)
    vocab = json.loads((path / "config.json").read_text())["vocab_size"]
    _edit_config(path, vocab_size=vocab - 10)
    _rewrite_weights(path, lambda t: t.update(
        {k: v[:vocab - 10] for k, v in t.items() if v.shape[0] == vocab}))
    with pytest.raises(UserError, match=f"tokenizer.json has {vocab:,} ids, more than the "
                                        f"{vocab - 10:,} rows"):
        Checkpoint(str(path)).tokenizer()


def test_nan_in_the_weights_is_named_not_trained_as_divergence(tmp_path):
    from tfllm.pretrained.hf_weights import CheckpointTensors

    path = _copy("llama", tmp_path)
    name = "model.norm.weight"
    _rewrite_weights(path, lambda t: t[name].__setitem__(0, np.nan))
    with pytest.raises(UserError, match=f"tensor '{name}' holds NaN or infinite values; the "
                                        "checkpoint is damaged"):
        CheckpointTensors(str(path)).get(name)


def test_a_tfllm_run_given_as_hf_says_which_prefix(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"model": {}, "train": {}, "data": {}}))
    with pytest.raises(UserError, match=r"is a tfllm run directory, not a Hugging Face "
                                        r"checkpoint; pass it without hf:"):
        check_checkpoint(str(run_dir))
