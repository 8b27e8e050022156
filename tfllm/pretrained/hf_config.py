"""A Hugging Face `config.json` <-> the `model` section of a tfllm config. No TensorFlow.

Each architecture tfllm imports is a tfllm GPT with some options set: GPT-2 is learned
positions, LayerNorm, tanh-GELU and biases; Llama, Mistral and the Qwens are RoPE (rotate
half, as tfllm's RotaryEmbedding), RMSNorm, SwiGLU and grouped-query attention, Qwen2 with
query/key/value biases, Qwen3 with per-head query/key RMSNorm. A config key whose value the
model cannot express is refused, naming the key: never silently approximated.
"""

import json
import os

from tfllm.errors import UserError
from tfllm.models.sizes import default_intermediate_dim

CONFIG_FILE = "config.json"
ARCHITECTURES = ("gpt2", "llama", "mistral", "qwen2", "qwen3")
CLASS_NAMES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
               "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
               "qwen3": "Qwen3ForCausalLM"}
# Config keys whose other values change what the model computes, with the values tfllm
# computes exactly (a key absent from config.json takes transformers' default, listed first).
GPT2_EXACT = {"activation_function": ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"),
              "scale_attn_weights": (True,), "scale_attn_by_inverse_layer_idx": (False,),
              "add_cross_attention": (False,)}
ROPE_EXACT = {"hidden_act": ("silu",), "rope_scaling": (None,)}


def read_config(path):
    """The parsed config.json of a checkpoint directory; UserError if there is none."""
    file = os.path.join(path, CONFIG_FILE)
    if not os.path.isdir(path):
        raise UserError(f"{path} is not a directory; pass a Hugging Face checkpoint directory "
                        "(config.json, model.safetensors, tokenizer.json), e.g. one downloaded "
                        "with `huggingface-cli download gpt2 --local-dir DIR`.")
    if not os.path.exists(file):
        raise UserError(f"{path} has no {CONFIG_FILE}; pass a Hugging Face checkpoint directory "
                        "(config.json, model.safetensors, tokenizer.json).")
    try:
        with open(file) as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{file} is not valid JSON ({e}); download the checkpoint again.") from None
    if not isinstance(config, dict):
        raise UserError(f"{file} holds a JSON {type(config).__name__}, not the object of a "
                        "model config; download the checkpoint again.")
    if "model_type" not in config and {"model", "train", "data"} <= set(config):
        raise UserError(f"{path} is a tfllm run directory, not a Hugging Face checkpoint; pass "
                        f"it without hf: (e.g. --init_from={path}).")
    return config


def _refuse(key, value, why):
    raise UserError(f"config.json: {key}={value!r} is not supported: {why}.")


def _check_exact(hf, exact):
    for key, allowed in exact.items():
        value = hf.get(key, allowed[0])
        if value not in allowed:
            _refuse(key, value, f"tfllm computes {', '.join(map(repr, allowed))} exactly and "
                    "approximates nothing")


def _rope_theta(hf):
    """rope_theta of a config of either generation (transformers 5 nests it, with the kind
    of RoPE, in rope_parameters)."""
    params = hf.get("rope_parameters") or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        _refuse("rope_parameters.rope_type", kind, "tfllm has plain RoPE only (no scaling)")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def _sliding_window(hf, arch):
    """The attention window, or None for full causal attention."""
    if arch == "mistral":
        return hf.get("sliding_window")
    if arch in ("qwen2", "qwen3") and hf.get("use_sliding_window"):
        return hf.get("sliding_window")
    return None


def model_section(hf):
    """The tfllm `model` config keys (configs/base.py's gpt_model) of a HF config, and
    the checkpoint's context length: (dict, context). UserError for anything the GPT
    cannot express."""
    arch = hf.get("model_type")
    if arch not in ARCHITECTURES:
        _refuse("model_type", arch, f"tfllm imports {', '.join(ARCHITECTURES)}")
    if arch == "gpt2":
        return _gpt2_section(hf), hf.get("n_positions", 1024)
    return _rope_section(hf, arch), hf.get("max_position_embeddings", 2048)


def _gpt2_section(hf):
    _check_exact(hf, GPT2_EXACT)
    width = hf.get("n_embd", 768)
    return dict(name="gpt", num_layers=hf.get("n_layer", 12), num_heads=hf.get("n_head", 12),
                num_kv_heads=0, hidden_dim=width, intermediate_dim=hf.get("n_inner") or 4 * width,
                position="learned", normalization="layer", activation="gelu", use_bias=True,
                tie_embeddings=hf.get("tie_word_embeddings", True), qk_norm=False, head_dim=0,
                norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-5)), qkv_bias=False,
                rope_max_wavelength=10000.0)


def _biases(hf, arch):
    """model.use_bias of a Llama-family config: its attention_bias (query, key, value and
    output) and mlp_bias, both on or both off, as tfllm's use_bias puts them."""
    attention, mlp = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
    if attention != mlp or (attention and arch != "llama"):
        key = "attention_bias" if attention else "mlp_bias"
        _refuse(key, True, "tfllm has biases on every projection or on none (Llama with both "
                "attention_bias and mlp_bias), and none in Mistral or Qwen3 attention")
    return attention


def _rope_section(hf, arch):
    _check_exact(hf, ROPE_EXACT)
    use_bias = _biases(hf, arch)
    theta = _rope_theta(hf)
    heads = hf.get("num_attention_heads", 32)
    width = hf.get("hidden_size", 4096)
    head_dim = hf.get("head_dim") or width // heads
    return dict(name="gpt", num_layers=hf.get("num_hidden_layers", 32), num_heads=heads,
                num_kv_heads=hf.get("num_key_value_heads") or heads, hidden_dim=width,
                intermediate_dim=hf.get("intermediate_size", 11008), position="rope",
                normalization="rms", activation="swiglu", use_bias=use_bias,
                tie_embeddings=hf.get("tie_word_embeddings", arch in ("qwen2", "qwen3")),
                qk_norm=arch == "qwen3", head_dim=head_dim if head_dim * heads != width else 0,
                norm_epsilon=float(hf.get("rms_norm_eps", 1e-6)), qkv_bias=arch == "qwen2",
                rope_max_wavelength=theta)


def check_context(hf, max_length):
    """UserError unless the checkpoint computes exactly at a training window of
    `max_length`: learned positions have that many rows, a sliding window is no shorter."""
    arch = hf.get("model_type")
    _, context = model_section(hf)
    if arch == "gpt2" and max_length > context:
        raise UserError(f"--config.model.max_length={max_length} is longer than the "
                        f"checkpoint's {context} learned positions (n_positions); use at "
                        f"most {context}.")
    window = _sliding_window(hf, arch)
    if window is not None and max_length > window:
        _refuse("sliding_window", window, f"tfllm trains full causal attention, which equals "
                f"it only up to {window} positions: use --config.model.max_length={window} or less")


def hf_config(gpt_config, eos_token_id=None):
    """The config.json of a tfllm GPT (its `get_config()`), in the architecture that
    computes it exactly: GPT-2 for learned positions, LayerNorm and GELU; Llama, Qwen2
    (q/k/v biases only) or Qwen3 (QK norm) for RoPE, RMSNorm and SwiGLU. UserError for a
    combination no architecture has."""
    m = dict(gpt_config)
    m["intermediate_dim"] = m["intermediate_dim"] or default_intermediate_dim(
        m["hidden_dim"], m["activation"])
    arch = export_architecture(m)
    eps = m.get("norm_epsilon") or 1e-5
    heads = m["num_heads"]
    common = dict(architectures=[CLASS_NAMES[arch]], model_type=arch,
                  vocab_size=m["vocab_size"], tie_word_embeddings=m["tie_embeddings"],
                  eos_token_id=eos_token_id, bos_token_id=eos_token_id, torch_dtype="float32",
                  use_cache=True)
    if arch == "gpt2":
        return dict(common, n_embd=m["hidden_dim"], n_layer=m["num_layers"], n_head=heads,
                    n_inner=m["intermediate_dim"], n_positions=m["max_length"],
                    activation_function="gelu_new", layer_norm_epsilon=eps, resid_pdrop=0.0,
                    embd_pdrop=0.0, attn_pdrop=0.0)
    return dict(common, hidden_size=m["hidden_dim"], num_hidden_layers=m["num_layers"],
                num_attention_heads=heads, num_key_value_heads=m.get("num_kv_heads") or heads,
                head_dim=m.get("head_dim") or m["hidden_dim"] // heads,
                intermediate_size=m["intermediate_dim"], hidden_act="silu",
                max_position_embeddings=m["max_length"], rms_norm_eps=eps,
                rope_theta=float(m.get("rope_max_wavelength", 10000.0)), rope_scaling=None,
                attention_bias=bool(m["use_bias"]) if arch == "llama" else False,
                mlp_bias=bool(m["use_bias"]) if arch == "llama" else False,
                attention_dropout=0.0, use_sliding_window=False, sliding_window=None)


def export_architecture(m):
    """The HF architecture that computes a tfllm GPT config section exactly; UserError if none."""
    if "num_heads" not in m:
        raise UserError("--format=hf exports GPT runs; a recurrent model has no Hugging Face "
                        "architecture.")
    kind = (m["position"], m["normalization"], m["activation"])
    heads = m["num_heads"]
    if kind == ("learned", "layer", "gelu"):
        if (m.get("num_kv_heads") or heads) != heads or m.get("qk_norm") or m.get("head_dim"):
            raise UserError("--format=hf: GPT-2 (learned positions, LayerNorm, GELU) has no "
                            "grouped-query attention, QK norm or head_dim; train without them.")
        return "gpt2"
    if kind == ("rope", "rms", "swiglu"):
        if m.get("qk_norm"):
            if m["use_bias"] or m.get("qkv_bias"):
                raise UserError("--format=hf: Qwen3 (QK norm) has no biases; train with "
                                "--config.model.use_bias=false.")
            return "qwen3"
        if m.get("qkv_bias") and not m["use_bias"]:
            return "qwen2"
        return "llama"
    raise UserError(f"--format=hf: no Hugging Face architecture has position={m['position']}, "
                    f"normalization={m['normalization']}, activation={m['activation']}; it "
                    "exports learned/layer/gelu (GPT-2) or rope/rms/swiglu (Llama, Qwen).")
