"""References for tfllm's GGUF export from llama.cpp and transformers, committed as
tests/fixtures/gguf_export/<name>.npz (tests/pretrained/test_gguf_export.py compares
tfllm's own export of the same source with them).

Run in a side environment with torch, transformers, gguf and llama-cpp-python (which
builds llama.cpp from its PyPI source package), pointing at tfllm's interpreter:

    /tmp/side/bin/pip install torch==2.13.0 transformers gguf accelerate llama-cpp-python
    /tmp/side/bin/python tools/check_gguf_export.py --tfllm_python=.venv/bin/python

For each EXPORTS entry it runs `python -m tfllm.export --model=<source> --format=gguf`
with tfllm's interpreter, then records transformers' logits of the file for fixed ids
(`from_pretrained(dir, gguf_file=...)`), llama.cpp's logits for the same ids and its
greedy continuation of them (`llama_cpp.Llama`, float32 K/V cache), and the file's size.
"""

import argparse
import os
import subprocess
import tempfile

import numpy as np
import torch
import transformers

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(HERE, "tests", "fixtures", "gguf_export")
# name -> (source model, GGUF type)
EXPORTS = {"gpt2-f32": ("hf:tests/fixtures/hf/gpt2", "f32"),
           "qwen2-f32": ("hf:tests/fixtures/hf/qwen2", "f32"),
           "qwen3-f32": ("hf:tests/fixtures/hf/qwen3", "f32"),
           "llama-f32": ("gguf:tests/fixtures/gguf/llama-f32.gguf", "f32"),
           "llama-q8_0": ("gguf:tests/fixtures/gguf/llama-f32.gguf", "q8_0")}
IDS = (np.arange(24) * 11 + 5) % 384
NEW_TOKENS = 16


def export(python, source, gguf_type, out):
    subprocess.run([python, "-m", "tfllm.export", f"--model={source}", "--format=gguf",
                    f"--gguf_type={gguf_type}", f"--output={out}"], cwd=HERE, check=True)
    return os.path.join(out, f"model-{gguf_type}.gguf")


def transformers_logits(path, export_name):
    directory, name = os.path.split(path)
    extra = {}
    if export_name.startswith("gpt2"):  # its GGUF loader maps context_length to n_ctx
        extra["n_positions"] = 128
    if export_name.startswith("qwen3"):  # and reads no attention.key_length
        extra["head_dim"] = 32
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name,
                                                              dtype=torch.float32, **extra)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(IDS[None], dtype=torch.long)).logits[0].numpy()


def llama_cpp_run(path):
    """llama.cpp's logits for IDS and its greedy continuation of them."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=128, logits_all=True, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    llm.eval(IDS.tolist())
    logits = np.array(llm.scores[:len(IDS)], np.float32)
    tokens = []
    for _ in range(NEW_TOKENS):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        tokens.append(token)
        llm.eval([token])
    return logits, np.asarray(tokens, np.int32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tfllm_python", required=True)
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name, (source, gguf_type) in EXPORTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = export(args.tfllm_python, source, gguf_type, tmp)
            hf = transformers_logits(path, name)
            cpp, greedy = llama_cpp_run(path)
            np.savez(os.path.join(OUT, name + ".npz"), ids=IDS, transformers_logits=hf,
                     llama_cpp_logits=cpp, llama_cpp_greedy=greedy,
                     size=os.path.getsize(path), source=source, gguf_type=gguf_type)
            print(name, os.path.getsize(path), "bytes; transformers vs llama.cpp logits",
                  float(np.abs(hf - cpp).max()), "greedy", greedy.tolist())


if __name__ == "__main__":
    main()
