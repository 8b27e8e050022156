"""The sampler a user asks for, checked without TensorFlow: named samplers and the bounds
every sampler's settings must keep. `tfllm.generate` checks them before loading a model."""

from tfllm.errors import UserError

# Samplers by name, as settings of the one sampler below (None: keep the caller's value).
SAMPLERS = {
    "greedy": dict(temperature=0.0, top_k=0, top_p=1.0),
    "temperature": dict(top_k=0, top_p=1.0),
    "top_k": dict(top_p=1.0),
    "top_p": dict(top_k=0),
}


def sampler_settings(name, temperature, top_k, top_p):
    """(temperature, top_k, top_p) of a named sampler, the others switched off.

    Example:
        >>> sampler_settings("top_k", 0.8, 40, 0.9)
        (0.8, 40, 1.0)
    """
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}; use one of {sorted(SAMPLERS)}.")
    if name == "top_k" and top_k < 1:
        raise UserError("the top_k sampler needs --top_k >= 1 (e.g. --top_k=40).")
    if name == "top_p" and not 0 < top_p < 1:
        raise UserError("the top_p sampler needs 0 < --top_p < 1 (e.g. --top_p=0.9).")
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    settings.update(SAMPLERS[name])
    return settings["temperature"], settings["top_k"], settings["top_p"]


def check_sampling_args(model, prompt_len, max_new_tokens, temperature, top_k, top_p):
    """Raises UserError for arguments no sampler can honour."""
    if prompt_len < 1:
        raise UserError("the prompt is empty; give at least one token of prompt.")
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens={max_new_tokens}; ask for at least 1 new token.")
    if not 0 < top_p <= 1:
        raise UserError(f"top_p={top_p} is outside (0, 1]; use e.g. 0.9, or 1 for no filtering.")
    if top_k < 0 or temperature < 0:
        raise UserError("top_k and temperature must be >= 0 (0 means off / greedy).")
    if top_k > getattr(model, "vocab_size", top_k):
        raise UserError(f"top_k={top_k} exceeds the vocabulary of {model.vocab_size}; use a smaller top_k.")
    limit = getattr(model, "max_length", None)
    learned = getattr(model, "position", None) == "learned"
    if learned and prompt_len + max_new_tokens > limit:
        raise UserError(f"prompt ({prompt_len}) + max_new_tokens ({max_new_tokens}) exceeds the "
                        f"model's context of {limit} learned positions; ask for at most "
                        f"{max(limit - prompt_len, 0)} new tokens or shorten the prompt "
                        "(a RoPE model, position='rope', generates past its context).")
