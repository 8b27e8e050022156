"""Generation from a run: a prompt in, continuations out, streamed if asked. The request is
checked (tokenizer, stop token, sampler, window) before TensorFlow loads. `tfllm.generate`
is this with flags; `tfllm.generate_text` in Python."""

import types

from tfllm.errors import UserError


def check_request(run_dir, prompt, max_new_tokens=200, temperature=0.8, top_k=0, top_p=1.0,
                  stop_at=None, sampler=None, checkpoint=None, stop_at_end=True):
    """The run's (tokenizer, prompt ids, end token id or None, (temperature, top_k, top_p))
    for a request, without TensorFlow. Raises UserError naming what does not fit. Without
    `stop_at`, a sample ends at the tokenizer's end-of-text token where it has one (a
    pretrained model's), unless `stop_at_end` is False."""
    from tfllm.inference.sampler_args import check_sampling_args, sampler_settings
    from tfllm.runs.run_directory import find_run

    if not prompt:
        raise UserError("the prompt is empty; pass --prompt=<text> (or leave it out for a "
                        "newline).")
    if sampler:
        temperature, top_k, top_p = sampler_settings(sampler, temperature, top_k, top_p)
    config, tokenizer, _ = find_run(run_dir, checkpoint)
    try:
        prompt_ids = tokenizer.encode(prompt)
    except ValueError as e:
        raise UserError(f"the prompt does not fit the run's tokenizer: {e}") from None
    end_token = getattr(tokenizer, "eos_id", None) if stop_at_end else None
    if stop_at is not None:
        end_token = tokenizer.token_id(stop_at)
        if end_token is None:
            raise UserError(f"--stop_at={stop_at!r} is not a single token of the run's "
                            "tokenizer; pass one character (char tokenizer) or one piece.")
    shape = types.SimpleNamespace(vocab_size=tokenizer.vocab_size,
                                  max_length=config.model.max_length,
                                  position=config.model.get("position"))  # none: recurrent
    check_sampling_args(shape, len(prompt_ids), max_new_tokens, temperature, top_k, top_p)
    return tokenizer, prompt_ids, end_token, (temperature, top_k, top_p)


def generate_text(run_dir, prompt="\n", max_new_tokens=200, temperature=0.8, top_k=0,
                  top_p=1.0, seed=0, num_samples=1, stop_at=None, sampler=None,
                  checkpoint=None, on_text=None, chunk_size=8, stop_at_end=True):
    """Continuations of `prompt` by the run's newest checkpoint (or `checkpoint`): a list of
    `num_samples` strings, without the prompt. The same seed gives the same text.

    Args:
        stop_at: a single token of the run's tokenizer that ends a sample (kept in the
            text); without it a sample ends at the end-of-text token of a tokenizer that
            has one (not kept), unless `stop_at_end` is False.
        sampler: "greedy", "temperature", "top_k" or "top_p"; None = the settings given.
        on_text: called with the continuation so far each `chunk_size` tokens (one sample
            only), holding back a character a later token may still complete.

    Example:
        >>> import tfllm
        >>> print(tfllm.generate_text("runs/default", "ROMEO:", max_new_tokens=50)[0])
    """
    tokenizer, prompt_ids, end_token, settings = check_request(
        run_dir, prompt, max_new_tokens, temperature, top_k, top_p, stop_at, sampler, checkpoint,
        stop_at_end)
    hidden = end_token if stop_at is None else None  # the end of text is not printed
    from tfllm.inference import generate
    from tfllm.runs.run_directory import load_run

    model = load_run(run_dir, checkpoint)[2]
    stream = _TextStream(tokenizer, on_text, hidden) if on_text and num_samples == 1 else None
    samples = generate(model, prompt_ids, max_new_tokens, *settings, seed, num_samples,
                       end_token=end_token, stream=stream, chunk_size=max(chunk_size, 1))
    return [tokenizer.decode([i for i in sample if hidden is None or int(i) != hidden])
            for sample in samples]


class _TextStream:
    """Decodes one sample's ids as they arrive and passes the text so far on."""

    def __init__(self, tokenizer, on_text, hidden=None):
        self.tokenizer, self.on_text, self.ids, self.hidden = tokenizer, on_text, [], hidden

    def __call__(self, chunk):
        self.ids.extend(int(i) for i in chunk[0] if int(i) != self.hidden)
        text = self.tokenizer.decode(self.ids)
        # Hold back a character a later token may still complete (a partial UTF-8 sequence).
        self.on_text(text[:-1] if text.endswith("\ufffd") else text)
