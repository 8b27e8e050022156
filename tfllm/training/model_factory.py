"""Builds a model from the `model` section of a config."""

from tfllm.models import GPT, RecurrentLM


def build_model(model_cfg, vocab_size):
    """The GPT or RecurrentLM a `model` config section describes, for `vocab_size` tokens."""
    m = model_cfg
    if m.name == "gpt":
        return GPT(vocab_size=vocab_size, num_layers=m.num_layers, num_heads=m.num_heads,
                   hidden_dim=m.hidden_dim, max_length=m.max_length,
                   intermediate_dim=m.intermediate_dim or None,
                   num_kv_heads=m.num_kv_heads or None, position=m.position,
                   normalization=m.normalization, activation=m.activation, dropout=m.dropout,
                   use_bias=m.use_bias, tie_embeddings=m.tie_embeddings,
                   qk_norm=m.get("qk_norm", False),
                   attention_dropout=m.get("attention_dropout"),
                   head_dim=m.get("head_dim") or None, norm_epsilon=m.get("norm_epsilon") or None,
                   qkv_bias=True if m.get("qkv_bias") else None,
                   rope_max_wavelength=m.get("rope_max_wavelength", 10000.0),
                   remat=m.get("remat", "none") == "block", name="gpt")
    if m.name == "recurrent":
        return RecurrentLM(vocab_size=vocab_size, embedding_dim=m.embedding_dim, units=m.units,
                           num_layers=m.num_layers, cell=m.cell, dropout=m.dropout,
                           max_length=m.max_length, name="recurrent_lm")
    raise ValueError(f"unknown model {m.name!r}")
