"""Writes tests/fixtures/hf_export/<name>/: tfllm GPTs with random weights exported with
`tfllm.pretrained.save_pretrained` (what `python -m tfllm.export --format=hf` writes), one
per architecture the export chooses, plus the ids whose logits transformers computes:

    python tools/make_hf_export_fixtures.py                       # tfllm's venv
    /tmp/ref/bin/python tools/make_hf_fixtures.py --check-exports  # torch + transformers

The second command loads each export with `transformers.AutoModelForCausalLM` and its
tokenizer.json with `tokenizers`, and records transformers' float32 logits and token ids
(transformers.npz); tests/pretrained/test_hf_export.py checks tfllm against them.
"""

import os

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from tfllm.models import GPT  # noqa: E402
from tfllm.pretrained import save_pretrained  # noqa: E402
from tfllm.tokenizers import ByteTokenizer, CharTokenizer  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf_export")
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\nÉtre 🙂"
MODELS = {
    # name: (GPT arguments, tokenizer)
    "gpt2_char": (dict(position="learned", normalization="layer", activation="gelu",
                       use_bias=True, tie_embeddings=True), "char"),
    "llama_byte": (dict(position="rope", normalization="rms", activation="swiglu",
                        use_bias=False, tie_embeddings=False, num_kv_heads=2,
                        rope_max_wavelength=500.0, norm_epsilon=1e-6), "byte"),
    "llama_bias_char": (dict(position="rope", normalization="rms", activation="swiglu",
                             use_bias=True, tie_embeddings=True), "char"),  # tfllm's default
    "qwen3_char": (dict(position="rope", normalization="rms", activation="swiglu",
                        use_bias=False, tie_embeddings=True, qk_norm=True, head_dim=8,
                        norm_epsilon=1e-6), "char"),
}


def make(name):
    arguments, kind = MODELS[name]
    tokenizer = CharTokenizer.train(TEXT) if kind == "char" else ByteTokenizer()
    tf.keras.utils.set_random_seed(sum(map(ord, name)))
    model = GPT(vocab_size=tokenizer.vocab_size, num_layers=2, num_heads=4, hidden_dim=32,
                max_length=48, **arguments)
    for variable in model.weights:  # norms' gains away from 1 so they are tested too
        variable.assign(variable + tf.random.normal(variable.shape, stddev=0.05))
    out = os.path.join(OUT, name)
    arch, _ = save_pretrained(model, tokenizer, out)
    ids = tokenizer.encode(TEXT)[None, :40]
    np.savez(os.path.join(out, "tfllm.npz"), ids=ids, logits=model(ids).numpy(),
             text=np.array(TEXT), text_ids=tokenizer.encode(TEXT))
    print(f"{name}: {arch} -> {out}")


if __name__ == "__main__":
    for name in MODELS:
        make(name)
