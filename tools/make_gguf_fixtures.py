"""Makes the GGUF fixtures of tests/fixtures/gguf/ and their references with transformers.

tfllm never depends on PyTorch or transformers; this script does, in a side environment,
and what it writes is committed:

    python -m venv /tmp/side && /tmp/side/bin/pip install torch==2.13.0 transformers gguf
    /tmp/side/bin/python tools/make_gguf_fixtures.py            # tiny files and references
    /tmp/side/bin/python tools/make_gguf_fixtures.py --real=SmolLM2-135M-Instruct.Q4_1.gguf

Tiny files: each Hugging Face fixture of tests/fixtures/hf (gpt2, llama, qwen2, qwen3,
mistral) written as llama.cpp's converter writes it (its tensor names; the query and key
rows of Llama-family models permuted for llama.cpp's rotary embedding; GPT-2's projections
transposed; Mistral as architecture "llama", as llama.cpp writes it) in float32, with a
byte-level BPE tokenizer in its metadata; the llama fixture also in F16, BF16, Q8_0, Q4_0,
Q4_1, Q5_0 and Q5_1; and a wider Llama (rows of 256 values, which the K-quants need) with
random weights in Q2_K to Q6_K. References (reference.npz beside each file): the logits of
transformers' own GGUF loading (`from_pretrained(dir, gguf_file=...)`, which dequantizes
with the same gguf package) for fixed ids, and, for float32 files, proof that they equal
the Hugging Face fixture's own logits (the conversion here is checked, not trusted).

--real: the same references for a real file (1,024 tokens of text from this checkout's
bundled corpus, the greedy answer to a chat question), written to
tests/fixtures/gguf/real/<file name>.npz (kilobytes; the model itself is never committed).
"""

import argparse
import json
import os
import tempfile

import numpy as np
import torch
import transformers
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF = os.path.join(HERE, "tests", "fixtures", "hf")
OUT = os.path.join(HERE, "tests", "fixtures", "gguf")
IDS = (np.arange(48) * 7 + 3) % 384
SMALL_TYPES = ("F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")
K_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
QUESTION = "What is the capital of France? Answer in one word."


def permute(weights, heads):
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (as in its LlamaModel)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(arch, config, tensors):
    """{GGUF name: float32 array} of a Hugging Face state dict, as llama.cpp names it."""
    out = {}
    if arch == "gpt2":
        prefix = "transformer." if "transformer.wte.weight" in tensors else ""
        out["token_embd.weight"] = tensors[f"{prefix}wte.weight"]
        out["position_embd.weight"] = tensors[f"{prefix}wpe.weight"]
        out["output_norm.weight"] = tensors[f"{prefix}ln_f.weight"]
        out["output_norm.bias"] = tensors[f"{prefix}ln_f.bias"]
        names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
                 "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
        for i in range(config["n_layer"]):
            for hf_name, g in names.items():
                for kind in ("weight", "bias"):
                    value = tensors[f"{prefix}h.{i}.{hf_name}.{kind}"]
                    if kind == "weight" and hf_name not in ("ln_1", "ln_2"):
                        value = value.T  # Conv1D (in, out) -> (out, in)
                    out[f"blk.{i}.{g}.{kind}"] = value
        if "lm_head.weight" in tensors and not config.get("tie_word_embeddings", True):
            out["output.weight"] = tensors["lm_head.weight"]
        return out
    out["token_embd.weight"] = tensors["model.embed_tokens.weight"]
    out["output_norm.weight"] = tensors["model.norm.weight"]
    if "lm_head.weight" in tensors and not config.get("tie_word_embeddings"):
        out["output.weight"] = tensors["lm_head.weight"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    permuted = arch in ("llama", "mistral")
    for i in range(config["num_hidden_layers"]):
        p, g = f"model.layers.{i}.", f"blk.{i}."
        for short, n in (("q", heads), ("k", kv), ("v", None)):
            for kind in ("weight", "bias"):
                name = f"{p}self_attn.{short}_proj.{kind}"
                if name in tensors:
                    value = tensors[name]
                    out[f"{g}attn_{short}.{kind}"] = permute(value, n) if permuted and n else value
        out[f"{g}attn_output.weight"] = tensors[f"{p}self_attn.o_proj.weight"]
        for short in ("q", "k"):
            if f"{p}self_attn.{short}_norm.weight" in tensors:
                out[f"{g}attn_{short}_norm.weight"] = tensors[f"{p}self_attn.{short}_norm.weight"]
        out[f"{g}attn_norm.weight"] = tensors[f"{p}input_layernorm.weight"]
        out[f"{g}ffn_norm.weight"] = tensors[f"{p}post_attention_layernorm.weight"]
        for short, gname in (("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down")):
            out[f"{g}{gname}.weight"] = tensors[f"{p}mlp.{short}_proj.weight"]
    return out


def add_metadata(writer, arch, config):
    """The hyperparameters, under the names llama.cpp's converter writes."""
    if arch == "gpt2":
        writer.add_block_count(config["n_layer"])
        writer.add_context_length(config["n_positions"])
        writer.add_embedding_length(config["n_embd"])
        writer.add_feed_forward_length(config.get("n_inner") or 4 * config["n_embd"])
        writer.add_head_count(config["n_head"])
        writer.add_layer_norm_eps(config["layer_norm_epsilon"])
        return
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    params = config.get("rope_parameters") or {}
    writer.add_rope_freq_base(float(params.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])


def add_tokenizer(writer, tokenizer_file, eos):
    """A byte-level BPE tokenizer.json as llama.cpp writes it (model "gpt2")."""
    with open(tokenizer_file) as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    tokens = [None] * len(vocab)
    for token, i in vocab.items():
        tokens[i] = token
    specials = {a["id"] for a in tok["added_tokens"] if a["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in specials else 1 for i in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(eos)
    writer.add_bos_token_id(eos)


def write_gguf(path, arch, config, tensors, qtype, tokenizer_file):
    gguf_arch = "llama" if arch == "mistral" else arch
    writer = GGUFWriter(path, gguf_arch)
    add_metadata(writer, arch, config)
    add_tokenizer(writer, tokenizer_file, 0)
    kind = GGMLQuantizationType[qtype]
    for name, value in gguf_tensors(arch, config, tensors).items():
        value = np.ascontiguousarray(value, np.float32)
        # Norms and biases stay float32, as llama.cpp keeps 1-D tensors.
        if value.ndim == 1 or kind == GGMLQuantizationType.F32:
            writer.add_tensor(name, value)
        else:
            writer.add_tensor(name, quantize(value, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def transformers_logits(path, ids, **config):
    """Logits of transformers' own loading of a GGUF file (float32). `config`: settings its
    GGUF loader does not read (GPT-2's n_positions: it maps context_length to n_ctx)."""
    directory, name = os.path.split(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name,
                                                              dtype=torch.float32, **config)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(np.asarray(ids)[None], dtype=torch.long)).logits[0].numpy()


def tiny_files():
    byte_level = os.path.join(HF, "qwen2", "tokenizer.json")
    for arch in ("gpt2", "llama", "qwen2", "qwen3", "mistral"):
        source = os.path.join(HF, arch)
        with open(os.path.join(source, "config.json")) as f:
            config = json.load(f)
        tensors = {k: v.float().numpy() for k, v in
                   load_file(os.path.join(source, "model.safetensors")).items()}
        own = os.path.join(source, "tokenizer.json")
        tokenizer = own if arch in ("gpt2", "qwen2", "qwen3") else byte_level
        types = ("F32",) + (SMALL_TYPES if arch == "llama" else ())
        hf_logits = np.load(os.path.join(source, "reference.npz"))
        for qtype in types:
            path = os.path.join(OUT, f"{arch}-{qtype.lower()}.gguf")
            write_gguf(path, arch, config, tensors, qtype, tokenizer)
            logits = transformers_logits(path, IDS, **unread_settings(arch, config))
            if qtype == "F32":
                check_against_hf(arch, source, logits)
            np.savez(path[:-5] + ".npz", ids=IDS, logits=logits)
            print(path, os.path.getsize(path), "bytes")
        del hf_logits
    wide_files(byte_level)


def unread_settings(arch, config):
    """What transformers' GGUF loader does not read from the metadata llama.cpp writes:
    GPT-2's n_positions (it maps context_length to n_ctx), Qwen3's head_dim (its
    attention.key_length)."""
    if arch == "gpt2":
        return {"n_positions": config["n_positions"]}
    if arch == "qwen3" and config.get("head_dim"):
        return {"head_dim": config["head_dim"]}
    return {}


def check_against_hf(arch, source, gguf_logits):
    """transformers on the float32 GGUF computes what it computes on the checkpoint."""
    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        hf = model(torch.tensor(IDS[None], dtype=torch.long)).logits[0].numpy()
    error = np.abs(hf - gguf_logits).max()
    assert error < 1e-4, (arch, error)


def wide_files(tokenizer_file):
    """A one-block Llama whose rows hold 256 values (the K-quants' block), random weights,
    quantized to each K type by llama.cpp itself (the gguf package dequantizes K-quants but
    does not quantize them): needs llama-cpp-python, which builds llama.cpp from source."""
    try:
        import llama_cpp
    except ImportError:
        print("llama_cpp not installed: no K-quant files (pip install llama-cpp-python)")
        return
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=384, hidden_size=256, intermediate_size=512,
                                      num_hidden_layers=1, num_attention_heads=4,
                                      num_key_value_heads=2, max_position_embeddings=128,
                                      tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(config)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            saved = json.load(f)
        tensors = {k: v.float().numpy()
                   for k, v in load_file(os.path.join(tmp, "model.safetensors")).items()}
        source = os.path.join(tmp, "llama256-f32.gguf")
        write_gguf(source, "llama", saved, tensors, "F32", tokenizer_file)
        for qtype in K_TYPES:
            path = os.path.join(OUT, f"llama256-{qtype.lower()}.gguf")
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype}_M"
                                   if qtype in ("Q3_K", "Q4_K", "Q5_K") else
                                   f"LLAMA_FTYPE_MOSTLY_{qtype}")
            params.pure = True  # every matrix in this type (llama.cpp mixes types otherwise)
            code = llama_cpp.llama_model_quantize(source.encode(), path.encode(), params)
            assert code == 0, (qtype, code)
            np.savez(path[:-5] + ".npz", ids=IDS, logits=transformers_logits(path, IDS))
            print(path, os.path.getsize(path), "bytes")


def real_file(path):
    """References of a real GGUF file: logits on 1,024 tokens of text, the greedy answer."""
    directory, name = os.path.split(os.path.abspath(path))
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    with open(os.path.join(HERE, "tfllm", "data", "tinyshakespeare.txt")) as f:
        text = f.read()[:8000]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:1024]
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=name,
                                                              dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy()
        chat = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}],
                                             add_generation_prompt=True, tokenize=False)
        prompt = tokenizer(chat, add_special_tokens=False)["input_ids"]
        answer = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)
    targets = np.asarray(ids[1:])
    shifted = logits[:-1] - logits[:-1].max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    loss = -logp[np.arange(len(targets)), targets].mean()
    os.makedirs(os.path.join(OUT, "real"), exist_ok=True)
    out = os.path.join(OUT, "real", name + ".npz")
    # 1,024 x 49,152 logits are 200 MB: kept are every position's top 8 ids and logits, four
    # whole rows spread over the text, and the mean loss.
    rows = np.linspace(0, len(ids) - 1, 4).astype(np.int32)
    top = np.argsort(-logits, axis=-1)[:, :8]
    np.savez_compressed(
        out, ids=np.asarray(ids, np.int32), prompt=np.asarray(prompt, np.int32),
        answer=answer[0, len(prompt):].numpy().astype(np.int32), rows=rows,
        row_logits=logits[rows], top_ids=top.astype(np.int32),
        top_logits=np.take_along_axis(logits, top, -1), loss=loss,
        transformers_sample_ids=np.asarray(
            tokenizer(SAMPLE, add_special_tokens=False)["input_ids"], np.int32),
        llama_cpp_sample_ids=np.asarray(llama_cpp_tokens(path, SAMPLE), np.int32))
    print(out, "loss", loss, "answer", tokenizer.decode(answer[0, len(prompt):]))


def llama_cpp_tokens(path, text):
    """llama.cpp's own tokenization of `text` with the file's vocabulary (special tokens
    parsed as special), or [] without llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError:
        return []
    vocab_only = llama_cpp.Llama(model_path=os.path.abspath(path), vocab_only=True, verbose=False)
    return vocab_only.tokenize(text.encode("utf-8"), add_bos=False, special=True)


SAMPLE = ("To be, or not to be: that is the question. 2024-12-07, 3.14159\n"
          "Être ou ne pas être, voilà la question. Sein oder Nichtsein, das ist hier die Frage.\n"
          "生存还是毁灭，这是一个问题。 Быть или не быть, вот в чём вопрос. ¿Ser o no ser? 🙂\n"
          "<|im_start|>user\ndef f(x):\n    return x ** 2  # 42<|im_end|>\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", help="a real GGUF file to make references of")
    args = parser.parse_args()
    if args.real:
        real_file(args.real)
        return
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):  # the tiny files are made anew; real/ is kept
        if name.endswith((".gguf", ".npz")):
            os.remove(os.path.join(OUT, name))
    tiny_files()


if __name__ == "__main__":
    main()
