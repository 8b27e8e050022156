"""Makes the Hugging Face reference fixtures of tests/fixtures/hf/ with transformers itself.

tfllm never depends on PyTorch or transformers; this script does, and what it writes is
committed, so the tests compare tfllm's import with an implementation nobody here wrote:

    python -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers tokenizers
    /tmp/ref/bin/python tools/make_hf_fixtures.py   # writes tests/fixtures/hf/<arch>/

For each architecture tfllm imports (gpt2, llama, qwen2, qwen3, mistral) it creates a tiny
model with random weights and `save_pretrained`s it (float32, bfloat16 or float16 weights,
one architecture each), with a tokenizer.json trained here (byte-level BPE as GPT-2 and
Qwen ship it; Metaspace BPE with byte fallback as Llama and Mistral ship it), and records
in reference.npz: transformers' float32 logits for fixed ids, its greedy continuation of
32 tokens, and AutoTokenizer's ids of a multilingual sample (SAMPLE).
"""

import json
import os
import sys

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf")
CORPUS = os.path.join(os.path.dirname(__file__), "..", "tfllm", "data", "tinyshakespeare.txt")
SAMPLE = ("To be, or not to be: that is the question.\n"
          "Être ou ne pas être, voilà la question. Sein oder Nichtsein, das ist hier die Frage.\n"
          "生存还是毁灭，这是一个问题。 Быть или не быть, вот в чём вопрос. ¿Ser o no ser? 🙂\n"
          "def f(x):\n    return x ** 2  # 42\n")
VOCAB = 384
WIDTH = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=4, max_position_embeddings=128)


def byte_level_tokenizer(text):
    """A byte-level BPE as GPT-2 and Qwen ship it, with <|endoftext|> as its end of text."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok, "<|endoftext|>"


def metaspace_tokenizer(text):
    """A BPE over "▁"-marked words with byte fallback, as Llama and Mistral ship it."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"]
                                  + byte_pieces, limit_alphabet=100)
    tok.train_from_iterator([text[:200_000]], trainer)
    return tok, "</s>"


ARCHITECTURES = {
    # name: (config class, extra config, weight dtype, tokenizer)
    "gpt2": (transformers.GPT2Config,
             dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, n_inner=None,
                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
             torch.float32, byte_level_tokenizer),
    "llama": (transformers.LlamaConfig,
              dict(WIDTH, num_key_value_heads=2, tie_word_embeddings=False, rms_norm_eps=1e-5,
                   rope_theta=10000.0),
              torch.bfloat16, metaspace_tokenizer),
    "qwen2": (transformers.Qwen2Config,
              dict(WIDTH, num_key_value_heads=2, tie_word_embeddings=True, rms_norm_eps=1e-6,
                   rope_theta=1000000.0),
              torch.float16, byte_level_tokenizer),
    "qwen3": (transformers.Qwen3Config,
              dict(WIDTH, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
                   rms_norm_eps=1e-6, rope_theta=1000000.0),
              torch.float32, byte_level_tokenizer),
    "mistral": (transformers.MistralConfig,
                dict(WIDTH, num_key_value_heads=1, tie_word_embeddings=False, sliding_window=None,
                     rms_norm_eps=1e-5, rope_theta=10000.0),
                torch.float32, metaspace_tokenizer),
}


def make(arch, text):
    config_class, extra, dtype, make_tokenizer = ARCHITECTURES[arch]
    out = os.path.join(OUT, arch)
    os.makedirs(out, exist_ok=True)
    tok, eos = make_tokenizer(text)
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos}, f)
    eos_id = tok.token_to_id(eos)
    torch.manual_seed(sum(map(ord, arch)))
    config = config_class(vocab_size=VOCAB, eos_token_id=eos_id, bos_token_id=eos_id, **extra)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # larger weights than the init's 0.02, so differences show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.to(dtype).save_pretrained(out)
    # The reference runs in float32 on the weights as saved (rounded to their dtype).
    model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.tensor(np.random.RandomState(0).randint(0, VOCAB, size=(2, 24)))
    with torch.no_grad():
        logits = model(ids).logits.numpy()
        prompt = ids[:1, :8]
        greedy = model.generate(prompt, max_new_tokens=32, do_sample=False, min_new_tokens=32,
                                pad_token_id=eos_id)[0, 8:].numpy()
    auto = transformers.AutoTokenizer.from_pretrained(out)
    sample_ids = np.asarray(auto(SAMPLE, add_special_tokens=False)["input_ids"])
    np.savez(os.path.join(out, "reference.npz"), ids=ids.numpy(), logits=logits,
             greedy_prompt=prompt[0].numpy(), greedy=greedy, sample=np.array(SAMPLE),
             sample_ids=sample_ids, decoded=np.array(auto.decode(sample_ids)))
    for name in ("generation_config.json",):
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    print(f"{arch}: {dtype}, logits {logits.shape}, {len(sample_ids)} sample ids -> {out}")


def check_exports():
    """transformers' logits and tokenizers' ids of tfllm's exports (tests/fixtures/hf_export)."""
    from tokenizers import Tokenizer as HFTokenizer

    root = os.path.join(OUT, "..", "hf_export")
    for name in sorted(os.listdir(root)):
        out = os.path.join(root, name)
        ours = np.load(os.path.join(out, "tfllm.npz"))
        model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = model(torch.tensor(ours["ids"])).logits.numpy()
        tok = HFTokenizer.from_file(os.path.join(out, "tokenizer.json"))
        ids = np.asarray(tok.encode(str(ours["text"])).ids)
        np.savez(os.path.join(out, "transformers.npz"), logits=logits, text_ids=ids,
                 decoded=np.array(tok.decode(ids.tolist())))
        print(f"{name}: {type(model).__name__}, max |logits - tfllm's| "
              f"{np.abs(logits - ours['logits']).max():.2e}, ids equal: "
              f"{np.array_equal(ids, ours['text_ids'])}")


def main():
    if sys.argv[1:] == ["--check-exports"]:
        return check_exports()
    with open(CORPUS) as f:
        text = f.read() + SAMPLE * 3
    for arch in sys.argv[1:] or ARCHITECTURES:
        make(arch, text)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
