"""Hugging Face safetensors tensors <-> a tfllm GPT's variables, strictly both ways.

Dimensions: D width, H query heads, K key/value heads, hs head size, F MLP width,
V vocabulary, P positions. PyTorch's Linear stores (out, in), GPT-2's Conv1D (in, out);
tfllm's projections keep an explicit head axis: query (D, H, hs), attention_output
(H, hs, D), Dense kernels (in, out).
"""

import json
import os

import numpy as np

from tfllm.errors import UserError

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# Non-parameter buffers some checkpoints carry (GPT-2's causal masks, old Llamas' RoPE
# frequencies): recomputed by tfllm, so skipped.
BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


def check_weight_files(path):
    """UserError naming a weights file of the checkpoint at `path` that is not a whole
    safetensors file: its header unreadable, or its tensors past the end of the file (a
    download cut short). Reads the headers only; no TensorFlow."""
    single, index = os.path.join(path, WEIGHTS_FILE), os.path.join(path, INDEX_FILE)
    files = [single]
    if os.path.exists(index):
        try:
            with open(index) as f:
                files = sorted({os.path.join(path, name)
                                for name in json.load(f)["weight_map"].values()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{index} is not a safetensors index ({type(e).__name__}: {e}); "
                            "download the checkpoint again.") from None
    for file in files:
        if os.path.exists(file):
            problem = _safetensors_problem(file)
            if problem:
                raise UserError(f"{file} is not a whole safetensors file ({problem}); download "
                                "it again.")


def _safetensors_problem(file):
    """Why `file` is not a whole safetensors file (its layout: an 8-byte little-endian
    header length, a JSON header, then the tensors' bytes), or None."""
    size = os.path.getsize(file)
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a header"
        length = int.from_bytes(head, "little")
        if length > size - 8:
            return f"its header claims {length:,} bytes, the file has {size:,}"
        try:
            header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for name, t in header.items()
                       if name != "__metadata__"), default=0)
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError,
                AttributeError):
            return "its header is not safetensors JSON"
    if 8 + length + end > size:
        return f"its tensors end at byte {8 + length + end:,}, the file has {size:,}"
    return None


class CheckpointTensors:
    """The tensors of model.safetensors, or of the shards model.safetensors.index.json
    lists, read one at a time (a checkpoint is never all in memory twice)."""

    def __init__(self, path):
        single, index = os.path.join(path, WEIGHTS_FILE), os.path.join(path, INDEX_FILE)
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            self.files = {name: os.path.join(path, file) for name, file in weight_map.items()}
        elif os.path.exists(single):
            from safetensors import safe_open

            with safe_open(single, "numpy") as f:
                self.files = {name: single for name in f.keys()}
        else:
            raise UserError(f"{path} has no {WEIGHTS_FILE} or {INDEX_FILE}; tfllm reads "
                            "safetensors weights (convert a pytorch_model.bin with transformers' "
                            "save_pretrained(safe_serialization=True)).")
        missing = sorted({f for f in self.files.values() if not os.path.exists(f)})
        if missing:
            raise UserError(f"{INDEX_FILE} lists {os.path.basename(missing[0])}, which is not in "
                            f"{path}; download the checkpoint's every shard.")
        self.path = path
        self.used = set()

    def names(self):
        return set(self.files)

    def get(self, name):
        """The tensor `name` as float32 numpy; UserError if the checkpoint lacks it."""
        if name not in self.files:
            raise UserError(f"{self.path}: the weights have no tensor {name!r}, which config.json's "
                            "architecture needs; the checkpoint is incomplete or of another model.")
        from safetensors import safe_open

        with safe_open(self.files[name], "numpy") as f:
            value = f.get_tensor(name)
        self.used.add(name)
        value = np.asarray(value, dtype=np.float32)  # bfloat16 arrives as ml_dtypes.bfloat16
        if not np.isfinite(value).all():  # else training would stop as "diverged" at step 1
            raise UserError(f"{self.files[name]}: tensor {name!r} holds NaN or infinite values; "
                            "the checkpoint is damaged: download it again.")
        return value

    def check_all_used(self):
        extra = sorted(n for n in self.names() - self.used if not n.endswith(BUFFER_SUFFIXES))
        if extra:
            more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
            raise UserError(f"{self.path}: the weights hold tensors config.json's architecture "
                            f"has no place for ({', '.join(extra[:3])}{more}); the config and "
                            "weights are of different models.")


def _assign(variable, value, name):
    if tuple(variable.shape) != value.shape:
        raise UserError(f"tensor {name!r} has shape {list(value.shape)}, config.json implies "
                        f"{list(variable.shape)}; the config and weights are of different models.")
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def _gpt2_map(model, prefix):
    """(HF name, variable, from HF, to HF) for every GPT-2 tensor."""
    H, hs = model.num_heads, model.hidden_dim // model.num_heads
    D = model.hidden_dim
    entries = [(f"{prefix}wte.weight", model.token_embedding.embeddings, None, None)]
    wpe = model.position_embedding.position_embeddings
    entries.append((f"{prefix}wpe.weight", wpe,
                    lambda w, rows=wpe.shape[0]: w[:rows], None))
    for i, block in enumerate(model.blocks):
        p = f"{prefix}h.{i}."
        att, mlp = block.attention, block.mlp
        for j, proj in enumerate((att.query, att.key, att.value)):
            # c_attn packs q|k|v along its output axis: (D, 3D) and (3D,).
            entries.append((f"{p}attn.c_attn.weight", proj.kernel,
                            lambda w, j=j: w[:, j * D:(j + 1) * D].reshape(D, H, hs), "qkv"))
            entries.append((f"{p}attn.c_attn.bias", proj.bias,
                            lambda b, j=j: b[j * D:(j + 1) * D].reshape(H, hs), "qkv"))
        entries += [
            (f"{p}attn.c_proj.weight", att.attention_output.kernel, lambda w: w.reshape(H, hs, D), None),
            (f"{p}attn.c_proj.bias", att.attention_output.bias, None, None),
            (f"{p}ln_1.weight", block.attention_norm.gamma, None, None),
            (f"{p}ln_1.bias", block.attention_norm.beta, None, None),
            (f"{p}ln_2.weight", block.mlp_norm.gamma, None, None),
            (f"{p}ln_2.bias", block.mlp_norm.beta, None, None),
            (f"{p}mlp.c_fc.weight", mlp.mlp_in.kernel, None, None),
            (f"{p}mlp.c_fc.bias", mlp.mlp_in.bias, None, None),
            (f"{p}mlp.c_proj.weight", mlp.mlp_out.kernel, None, None),
            (f"{p}mlp.c_proj.bias", mlp.mlp_out.bias, None, None)]
    entries += [(f"{prefix}ln_f.weight", model.final_norm.gamma, None, None),
                (f"{prefix}ln_f.bias", model.final_norm.beta, None, None)]
    if model.lm_head is not None:
        entries.append(("lm_head.weight", model.lm_head.kernel, np.transpose, None))
    return entries


def _rope_map(model):
    """(HF name, variable, from HF) for every Llama / Mistral / Qwen tensor."""
    H, K, D = model.num_heads, model.num_kv_heads, model.hidden_dim
    hs = model.head_dim or D // H
    entries = [("model.embed_tokens.weight", model.token_embedding.embeddings, None)]
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        att, mlp = block.attention, block.mlp
        for short, proj, heads in (("q", att.query, H), ("k", att.key, K), ("v", att.value, K)):
            # Linear (heads * hs, D) -> (D, heads, hs)
            entries.append((f"{p}self_attn.{short}_proj.weight", proj.kernel,
                            lambda w, n=heads: w.T.reshape(D, n, hs)))
            if proj.bias is not None:
                entries.append((f"{p}self_attn.{short}_proj.bias", proj.bias,
                                lambda b, n=heads: b.reshape(n, hs)))
        entries.append((f"{p}self_attn.o_proj.weight", att.attention_output.kernel,
                        lambda w: w.T.reshape(H, hs, D)))
        if att.attention_output.bias is not None:
            entries.append((f"{p}self_attn.o_proj.bias", att.attention_output.bias, None))
        if att.query_norm is not None:
            entries += [(f"{p}self_attn.q_norm.weight", att.query_norm.gamma, None),
                        (f"{p}self_attn.k_norm.weight", att.key_norm.gamma, None)]
        entries += [(f"{p}input_layernorm.weight", block.attention_norm.gamma, None),
                    (f"{p}post_attention_layernorm.weight", block.mlp_norm.gamma, None)]
        for short, dense in (("up", mlp.mlp_in), ("gate", mlp.mlp_gate), ("down", mlp.mlp_out)):
            entries.append((f"{p}mlp.{short}_proj.weight", dense.kernel, np.transpose))
            if dense.bias is not None:
                entries.append((f"{p}mlp.{short}_proj.bias", dense.bias, None))
    entries.append(("model.norm.weight", model.final_norm.gamma, None))
    if model.lm_head is not None:
        entries.append(("lm_head.weight", model.lm_head.kernel, np.transpose))
    return entries


def _gpt2_prefix(names):
    """GPT-2 as transformers saves it ("transformer.h.0...") or as the original hub
    checkpoint has it ("h.0...")."""
    return "transformer." if "transformer.wte.weight" in names else ""


def load_weights(model, arch, tensors):
    """Assigns every tensor of `tensors` (CheckpointTensors) to the variable it maps to;
    UserError for a missing, extra or misshapen tensor."""
    if arch == "gpt2":
        entries = [e[:3] for e in _gpt2_map(model, _gpt2_prefix(tensors.names()))]
    else:
        entries = _rope_map(model)
    cache = {}
    for name, variable, convert in entries:
        if name not in cache:  # c_attn feeds three variables: read once
            cache = {name: tensors.get(name)}
        value = cache[name] if convert is None else convert(cache[name])
        _assign(variable, np.ascontiguousarray(value), name)
    if arch == "gpt2" and model.lm_head is None:
        tensors.used.add("lm_head.weight")  # a tied head some files carry as a copy
    tensors.check_all_used()


def export_tensors(model, arch):
    """{HF name: float32 numpy} of a tfllm GPT in architecture `arch`."""
    out = {}
    if arch == "gpt2":
        D = model.hidden_dim
        qkv = {}
        for name, variable, _, role in _gpt2_map(model, "transformer."):
            # GPT-2 has every bias: a tfllm GPT without them exports zeros, the same model.
            value = (variable.numpy() if variable is not None else
                     np.zeros(model.intermediate_dim if ".c_fc." in name else D, np.float32))
            if role == "qkv":
                qkv.setdefault(name, []).append(value.reshape(D, -1) if name.endswith("weight")
                                                else value.reshape(-1))
                continue
            if name.endswith("wpe.weight"):
                out[name] = value
            elif name == "lm_head.weight":
                out[name] = value.T
            else:
                out[name] = value.reshape(-1, D) if name.endswith("attn.c_proj.weight") else value
        for name, parts in qkv.items():
            out[name] = np.concatenate(parts, axis=-1)
    else:
        for name, variable, convert in _rope_map(model):
            value = variable.numpy()
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
                value = value.reshape(value.shape[0], -1).T  # (D, n, hs) -> (n hs, D)
            elif name.endswith("o_proj.weight"):
                value = value.reshape(-1, value.shape[-1]).T  # (H, hs, D) -> (D, H hs)
            elif name.endswith("_proj.bias") and value.ndim == 2:
                value = value.reshape(-1)
            elif convert is np.transpose:
                value = value.T
            out[name] = value
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in out.items()}
