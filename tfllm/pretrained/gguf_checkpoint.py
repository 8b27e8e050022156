"""A GGUF file (llama.cpp's format) as a checkpoint tfllm imports.

The file's metadata becomes the Hugging Face config.json its model came from (so the same
architecture checks and tfllm model section apply as for `hf:`), its tensors are
dequantized to float32 by the `gguf` package and named and laid out as that checkpoint's
(llama.cpp's converter reorders the query and key rows of Llama-family models for its
rotary embedding; GPT-2's projections are stored transposed), and its vocabulary, merges
and special tokens become a `tokenizers` tokenizer (gguf_tokenizer).

No TensorFlow here: checking a file answers in a second.
"""

import os

import numpy as np

from tfllm.errors import UserError

GGUF_MAGIC = b"GGUF"

# general.architecture -> the Hugging Face model_type it was converted from, and whether
# llama.cpp permuted its query and key rows (its Llama converter does; Qwen's does not).
ARCHITECTURES = {"llama": ("llama", True), "mistral": ("mistral", True),
                 "qwen2": ("qwen2", False), "qwen3": ("qwen3", False), "gpt2": ("gpt2", False)}
PERMUTED = {model_type: permuted for model_type, permuted in ARCHITECTURES.values()}
# Metadata keys that describe what a tfllm GPT does not compute: refused by name.
UNSUPPORTED_KEYS = ("rope.scaling.type", "rope.scaling.factor", "attention.sliding_window",
                    "expert_count", "attention.clamp_kqv", "attention.max_alibi_bias")


def open_reader(path):
    """A gguf.GGUFReader over the file at `path`; UserError naming the file for anything
    that is not a whole GGUF file."""
    if not os.path.isfile(path):
        raise UserError(f"{path} is not a file; pass a .gguf file (gguf:FILE).")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise UserError(f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); "
                        "pass a file llama.cpp's converter wrote.")
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    except (ValueError, IndexError, OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a whole GGUF file ({type(e).__name__}: "
                        f"{str(e)[:120]}); download it again.") from None


def field(reader, key, default=None):
    """The value of a metadata key (a scalar, string or list), or `default`. A float32 value
    comes back as the shortest decimal that rounds to it (1e-05, not 9.999999747e-06)."""
    found = reader.fields.get(key)
    if found is None:
        return default
    value = found.contents()
    if isinstance(value, float):
        return float(np.format_float_scientific(np.float32(value), unique=True))
    return value


class GGUFCheckpoint:
    """A GGUF file: its Hugging Face config (`config`), model section and context (as
    Checkpoint has them), its tensors (`tensors()`), tokenizer (`tokenizer()`) and chat
    template. Raises UserError for a file tfllm cannot import exactly.

    Example:
        >>> checkpoint = GGUFCheckpoint("SmolLM2-135M-Instruct.Q4_1.gguf")
        >>> checkpoint.config["num_hidden_layers"], checkpoint.chat_template[:20]
    """

    def __init__(self, path):
        from tfllm.pretrained import hf_config

        self.path = path
        self.reader = open_reader(path)
        self.gguf_architecture = field(self.reader, "general.architecture")
        if self.gguf_architecture not in ARCHITECTURES:
            raise UserError(f"{path}: general.architecture={self.gguf_architecture!r} is not "
                            f"supported: tfllm imports {', '.join(ARCHITECTURES)}.")
        self.config = hf_config_of(self.reader, path)
        self.model_section, self.context = hf_config.model_section(self.config)
        self.vocab_size = self.config["vocab_size"]
        self.chat_template = field(self.reader, "tokenizer.chat_template")

    @property
    def architecture(self):
        return self.config["model_type"]

    @property
    def eos_id(self):
        return self.config.get("eos_token_id")

    def tensors(self):
        return GGUFTensors(self)

    def tokenizer(self):
        """The file's tokenizer as a tfllm HFTokenizer; UserError if it has none or one tfllm
        cannot rebuild exactly."""
        from tfllm.pretrained.gguf_tokenizer import tokenizer_json
        from tfllm.tokenizers.hf_tokenizer import HFTokenizer

        return HFTokenizer(tokenizer_json(self.reader, self.path), self.vocab_size, self.eos_id,
                           self.config.get("bos_token_id"))


def hf_config_of(reader, path):
    """The Hugging Face config.json of the model a GGUF file holds, from its metadata."""
    arch = field(reader, "general.architecture")
    model_type, _ = ARCHITECTURES[arch]

    def key(name, default=None, required=False):
        value = field(reader, f"{arch}.{name}", default)
        if value is None and required:
            raise UserError(f"{path}: the metadata has no {arch}.{name}; the file is "
                            "incomplete.")
        return value

    for name in UNSUPPORTED_KEYS:
        value = key(name)
        if value not in (None, "none", 0):
            raise UserError(f"{path}: {arch}.{name}={value!r} is not supported: tfllm computes "
                            "plain causal attention with plain RoPE, exactly.")
    tokens = field(reader, "tokenizer.ggml.tokens")
    vocab = key("vocab_size") or (len(tokens) if tokens else None)
    if vocab is None:
        vocab = _tensor_rows(reader, "token_embd.weight")
    names = {t.name for t in reader.tensors}
    common = dict(model_type=model_type, vocab_size=int(vocab),
                  tie_word_embeddings="output.weight" not in names,
                  bos_token_id=field(reader, "tokenizer.ggml.bos_token_id"),
                  eos_token_id=field(reader, "tokenizer.ggml.eos_token_id"))
    layers, width = key("block_count", required=True), key("embedding_length", required=True)
    heads = key("attention.head_count", required=True)
    if model_type == "gpt2":
        return dict(common, n_layer=layers, n_embd=width, n_head=heads,
                    n_inner=key("feed_forward_length"), n_positions=key("context_length", 1024),
                    layer_norm_epsilon=float(key("attention.layer_norm_epsilon", 1e-5)),
                    activation_function="gelu_new")
    head_dim = key("attention.key_length") or width // heads
    rope_dims = key("rope.dimension_count", head_dim)
    if rope_dims != head_dim:
        raise UserError(f"{path}: {arch}.rope.dimension_count={rope_dims} is not supported: "
                        f"tfllm rotates every dimension of a head ({head_dim}).")
    config = dict(common, num_hidden_layers=layers, hidden_size=width,
                  num_attention_heads=heads,
                  num_key_value_heads=key("attention.head_count_kv", heads),
                  intermediate_size=key("feed_forward_length", required=True),
                  max_position_embeddings=key("context_length", 2048),
                  rms_norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-6)),
                  rope_theta=float(key("rope.freq_base", 10000.0)), head_dim=head_dim,
                  hidden_act="silu")
    if model_type == "llama":  # biases on every projection or none, as tfllm has them
        config["attention_bias"] = config["mlp_bias"] = "blk.0.attn_q.bias" in names
    return config


def _tensor_rows(reader, name):
    for tensor in reader.tensors:
        if tensor.name == name:
            return int(tensor.shape[-1])  # GGUF lists the fastest-varying size first
    return None


def _layer_names(i, gpt2):
    """{Hugging Face tensor name: GGUF tensor name} of block `i`."""
    if gpt2:
        p, g = f"h.{i}.", f"blk.{i}."
        return {f"{p}ln_1.weight": f"{g}attn_norm.weight", f"{p}ln_1.bias": f"{g}attn_norm.bias",
                f"{p}attn.c_attn.weight": f"{g}attn_qkv.weight",
                f"{p}attn.c_attn.bias": f"{g}attn_qkv.bias",
                f"{p}attn.c_proj.weight": f"{g}attn_output.weight",
                f"{p}attn.c_proj.bias": f"{g}attn_output.bias",
                f"{p}ln_2.weight": f"{g}ffn_norm.weight", f"{p}ln_2.bias": f"{g}ffn_norm.bias",
                f"{p}mlp.c_fc.weight": f"{g}ffn_up.weight", f"{p}mlp.c_fc.bias": f"{g}ffn_up.bias",
                f"{p}mlp.c_proj.weight": f"{g}ffn_down.weight",
                f"{p}mlp.c_proj.bias": f"{g}ffn_down.bias"}
    p, g = f"model.layers.{i}.", f"blk.{i}."
    names = {f"{p}input_layernorm.weight": f"{g}attn_norm.weight",
             f"{p}post_attention_layernorm.weight": f"{g}ffn_norm.weight",
             f"{p}self_attn.o_proj.weight": f"{g}attn_output.weight",
             f"{p}self_attn.o_proj.bias": f"{g}attn_output.bias",
             f"{p}self_attn.q_norm.weight": f"{g}attn_q_norm.weight",
             f"{p}self_attn.k_norm.weight": f"{g}attn_k_norm.weight"}
    for short in ("q", "k", "v"):
        for kind in ("weight", "bias"):
            names[f"{p}self_attn.{short}_proj.{kind}"] = f"{g}attn_{short}.{kind}"
    for short, gguf_name in (("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down")):
        for kind in ("weight", "bias"):
            names[f"{p}mlp.{short}_proj.{kind}"] = f"{g}{gguf_name}.{kind}"
    return names


def hf_names(config):
    """{Hugging Face tensor name: GGUF tensor name} of every tensor a model may have."""
    gpt2 = config["model_type"] == "gpt2"
    layers = config["n_layer"] if gpt2 else config["num_hidden_layers"]
    if gpt2:
        names = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
                 "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}
    else:
        names = {"model.embed_tokens.weight": "token_embd.weight",
                 "model.norm.weight": "output_norm.weight"}
    names["lm_head.weight"] = "output.weight"
    for i in range(layers):
        names.update(_layer_names(i, gpt2))
    return names


# GPT-2's Conv1D projections are (in, out) in Hugging Face's layout, (out, in) in GGUF's.
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                   "mlp.c_proj.weight")


def permute_rows(weights, heads):
    """llama.cpp's reordering of a query or key projection's rows for its rotary embedding
    (each head's two rotated halves interleaved): (heads * hs, ...) -> same shape."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


_QUERY = ("self_attn.q_proj.weight", "self_attn.q_proj.bias")
_KEY = ("self_attn.k_proj.weight", "self_attn.k_proj.bias")


def gguf_layout(name, value, config, to_gguf=False):
    """The tensor a Hugging Face `name` holds, turned from llama.cpp's layout into the
    checkpoint's (or, `to_gguf`, back): GPT-2's Conv1D projections transposed; the query and
    key rows of the architectures llama.cpp permutes (PERMUTED) reordered."""
    arch = config["model_type"]
    if arch == "gpt2":
        return value.T if name.endswith(GPT2_TRANSPOSED) else value
    if PERMUTED[arch] and name.endswith(_QUERY + _KEY):
        heads = config["num_attention_heads" if name.endswith(_QUERY) else "num_key_value_heads"]
        return (permute_rows if to_gguf else unpermute_rows)(value, heads)
    return value


def unpermute_rows(weights, heads):
    """The inverse of permute_rows: the rows back in the Hugging Face checkpoint's order."""
    return (weights.reshape(heads, weights.shape[0] // heads // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


class GGUFTensors:
    """The tensors of a GGUF file under their Hugging Face names, float32, in that layout:
    what hf_weights.load_weights reads (`names()`, `get(name)`, `used`)."""

    def __init__(self, checkpoint):
        self.path = checkpoint.path
        self.config = checkpoint.config
        self._tensors = {t.name: t for t in checkpoint.reader.tensors}
        self._names = {hf: g for hf, g in hf_names(self.config).items() if g in self._tensors}
        extra = sorted(set(self._tensors) - set(self._names.values()) - {"rope_freqs.weight"})
        if extra:
            raise UserError(f"{self.path}: tensors {', '.join(extra[:3])} have no place in a "
                            f"tfllm GPT of its architecture ({self.config['model_type']}).")
        self.used = set()

    def names(self):
        return set(self._names)

    def get(self, name):
        if name not in self._names:
            raise UserError(f"{self.path}: the file has no tensor for {name!r} (GGUF "
                            f"{hf_names(self.config).get(name)}), which its architecture needs.")
        tensor = self._tensors[self._names[name]]
        value = dequantized(tensor, self.path)
        value = gguf_layout(name, value, self.config)
        if not np.isfinite(value).all():
            raise UserError(f"{self.path}: tensor {tensor.name!r} holds NaN or infinite values; "
                            "the file is damaged: download it again.")
        self.used.add(name)
        return value

    def check_all_used(self):
        extra = sorted(self.names() - self.used)
        if extra:
            raise UserError(f"{self.path}: tensors {', '.join(extra[:3])} have no place in the "
                            "model its metadata describes.")


def dequantized(tensor, path):
    """A GGUF tensor as float32 numpy in its row-major shape (the slowest-varying size
    first); UserError naming a type the gguf package cannot dequantize."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    kind = GGMLQuantizationType(tensor.tensor_type)
    shape = tuple(int(n) for n in reversed(tensor.shape))
    if kind == GGMLQuantizationType.F32:
        return np.asarray(tensor.data, np.float32).reshape(shape)
    try:
        return np.asarray(dequantize(tensor.data, kind), np.float32).reshape(shape)
    except NotImplementedError:
        raise UserError(f"{path}: tensor {tensor.name!r} is of type {kind.name}, which the gguf "
                        "package cannot dequantize; convert the file to another type (e.g. "
                        "Q8_0 or F16) with llama.cpp's llama-quantize.") from None
