"""Sizes of a GPT that configs are checked against, without TensorFlow (a command
answers a config that cannot work before paying for TensorFlow's import)."""

import math


def default_intermediate_dim(hidden_dim, activation):
    """The MLP width when none is given: 4 D, or 8/3 D rounded up to 64 for SwiGLU."""
    return 64 * math.ceil(8 * hidden_dim / 3 / 64) if activation == "swiglu" else 4 * hidden_dim


def check_model_axis(config, parts, axis="model"):
    """Raises ValueError unless the sizes a layout map splits (heads, key/value heads,
    MLP units, width) of a GPT config (its get_config(), or a config's model section)
    divide by `parts`, the size of the mesh's model axis."""
    heads = config["num_heads"]
    sizes = [("num_heads", heads), ("num_kv_heads", config.get("num_kv_heads") or heads),
             ("intermediate_dim", config.get("intermediate_dim") or default_intermediate_dim(
                 config["hidden_dim"], config.get("activation", "gelu"))),
             ("hidden_dim", config["hidden_dim"])]
    for key, size in sizes:
        if size % parts:
            raise ValueError(f"model.{key}={size} does not split over the mesh's {axis} axis "
                             f"of {parts}; use a multiple of {parts}.")
