"""tfllm -> GGUF, checked against the two programs that read GGUF: transformers' loading of
the file computes tfllm's logits, and llama.cpp itself computes them too and continues the
ids greedily as tfllm does (references made by tools/check_gguf_export.py from the same
exports, committed in tests/fixtures/gguf_export/)."""

import os

import numpy as np
import pytest

from tfllm.api.export import export_run
from tfllm.errors import UserError
from tfllm.inference import generate
from tfllm.pretrained import from_pretrained

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCES = os.path.join(REPO, "tests", "fixtures", "gguf_export")
# One reference per export tools/check_gguf_export.py made: its source and type are in it.
EXPORTS = sorted(name[:-4] for name in os.listdir(REFERENCES) if name.endswith(".npz"))
# llama.cpp's own kernels: GPT-2's GELU is its tanh approximation in a table; q8_0 matrix
# products quantize the activations to 8 bits too.
LLAMA_CPP_TOLERANCE = {"gpt2-f32": 1e-3, "llama-q8_0": 0.05}


def test_every_architecture_and_a_quantized_type_are_checked():
    assert set(EXPORTS) >= {"gpt2-f32", "qwen2-f32", "qwen3-f32", "llama-f32", "llama-q8_0"}


@pytest.mark.parametrize("name", EXPORTS)
def test_transformers_and_llama_cpp_compute_the_exported_model(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    ref = np.load(os.path.join(REFERENCES, name + ".npz"))
    source, gguf_type = str(ref["source"]), str(ref["gguf_type"])
    result = export_run(source, "gguf", output=str(tmp_path), gguf_type=gguf_type)
    path = os.path.join(result["path"], f"model-{gguf_type}.gguf")
    assert os.path.getsize(path) == int(ref["size"])
    model, _ = from_pretrained(path)
    logits = model(ref["ids"][None]).numpy()[0]
    np.testing.assert_allclose(logits, ref["transformers_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, ref["llama_cpp_logits"],
                               atol=LLAMA_CPP_TOLERANCE.get(name, 1e-5), rtol=0)
    greedy = generate(model, ref["ids"], len(ref["llama_cpp_greedy"]), temperature=0.0)[0]
    assert np.asarray(greedy).tolist() == ref["llama_cpp_greedy"].tolist()


def test_an_lstm_run_is_refused_for_gguf(tmp_path):
    from tfllm.configs import lstm
    from tfllm.runs.run_directory import write_json

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_json(str(run_dir / "config.json"), lstm.get_config().to_dict())
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "ckpt-1.index").write_text("")
    (run_dir / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    from tfllm.tokenizers import CharTokenizer

    CharTokenizer(["a", "b"]).save(str(run_dir))
    with pytest.raises(UserError, match="--format=gguf exports GPT runs; a recurrent model"):
        export_run(str(run_dir), "gguf")
    assert not (run_dir / "export").exists()
