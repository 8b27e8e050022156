"""Encoded chat examples laid end to end: what packing cuts windows from.

An `ExampleStore` holds each example's token ids and loss mask, in memory (a few thousand
conversations encoded at a run's start) or through the memory maps of a prepared chat
dataset (`tfllm.prepare` on .jsonl files: millions of them, never all in memory). Beside
them, three numbers per example are enough to plan windows without reading the tokens:
its length, its first trained position and how many of its targets are trained.
"""

import numpy as np

from tfllm.chat.encoding import ChatEncoder
from tfllm.chat.template import ChatTemplate, ChatTemplateError

# Per example, in a prepared chat dataset's index files: length, first trained position
# (>= 1; the length if none), trained targets. Little-endian uint32 each.
INDEX_FIELDS = 3
INDEX_DTYPE = np.dtype("<u4")


def example_index(mask):
    """(length, first trained position >= 1 or the length, trained targets) of an
    example's loss mask: a target t >= 1 is trained where mask[t] is 1."""
    trained = np.flatnonzero(np.asarray(mask[1:]) > 0)
    first = int(trained[0]) + 1 if trained.size else len(mask)
    return len(mask), first, int(trained.size)


class ExampleStore:
    """Examples end to end: example i is ids[starts[i]:starts[i + 1]] with its mask alike.

    Args:
        ids, mask: 1-D sequences sliceable with step 1 (numpy arrays, or the TokenViews of
            a prepared dataset's memory maps).
        index: (N, 3) array of example_index() rows.

    Example:
        >>> store = ExampleStore.from_examples([(ids, mask), ...])
        >>> store.span(0, 10)  # the first 10 ids and mask values of example 0
    """

    def __init__(self, ids, mask, index):
        self.ids, self.mask = ids, mask
        index = np.asarray(index, np.int64).reshape(-1, INDEX_FIELDS)
        self.lengths, self.first_trained, self.trained = index.T
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @classmethod
    def from_examples(cls, examples):
        """A store in memory of (ids, mask) pairs."""
        examples = list(examples)
        if not examples:
            return cls(np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros((0, 3)))
        ids = np.concatenate([np.asarray(i, np.int32) for i, _ in examples])
        mask = np.concatenate([np.asarray(m, np.int8) for _, m in examples])
        return cls(ids, mask, [example_index(m) for _, m in examples])

    def __len__(self):
        return len(self.lengths)

    def span(self, i, take):
        """(ids, mask) of the first `take` tokens of example i."""
        start = int(self.starts[i])
        return (np.asarray(self.ids[start:start + take]),
                np.asarray(self.mask[start:start + take]))

    def trained_within(self, i, take):
        """Trained targets among example i's first `take` tokens."""
        if take >= self.lengths[i]:
            return int(self.trained[i])
        return int(np.count_nonzero(self.span(i, take)[1][1:]))


def split_examples(count, val_fraction, seed):
    """(training, validation) example indices: a seeded shuffle of whole examples, the
    first round(count * val_fraction) of it (at least one when val_fraction > 0, never all)
    held out, so no example is cut by the split."""
    order = np.random.default_rng(seed).permutation(count)
    n_val = int(round(count * val_fraction)) if count > 1 else 0
    n_val = min(max(n_val, 1 if count > 1 and val_fraction > 0 else 0), max(count - 1, 0))
    return order[n_val:], order[:n_val]


def chat_encoder(train_on, tokenizer, template_text, origin="chat template"):
    """The ChatEncoder of a template with the tokenizer's special tokens; ChatTemplateError
    if an answer would end with no special token (generation could not stop at it)."""
    template = ChatTemplate(template_text, special_token_strings(tokenizer), name=origin)
    encoder = ChatEncoder(tokenizer, template, train_on)
    if encoder.end_of_turn() is None:
        raise ChatTemplateError(
            f"the {origin} chat template ends an answer with no special token of the "
            "tokenizer (ChatML needs <|im_end|>), so generation could not stop at the end of "
            "a turn; pass the model's own template as --config.data.chat_template=FILE.")
    return encoder


def special_token_strings(tokenizer):
    """bos_token / eos_token as templates name them, from the tokenizer's ids."""
    out = {}
    for name, token in (("eos_token", getattr(tokenizer, "eos_id", None)),
                        ("bos_token", getattr(tokenizer, "bos_id", None))):
        if token is not None:
            out[name] = tokenizer.decode([token])
    return out


def encode_example(encoder, tokenizer, example):
    """(ids, mask) of one tfllm.chat.records.Example: a conversation as the template renders
    it; a prompt/completion pair with the completion and the end-of-text token trained; a
    text row with every token (and the end-of-text token) trained."""
    eos = getattr(tokenizer, "eos_id", None)
    end = [eos] if eos is not None else []
    if example.kind == "chat":
        return encoder.encode(example.messages, example.tools, example.trained)
    if example.kind == "completion":
        prompt = tokenizer.encode(example.prompt).tolist() if example.prompt else []
        answer = tokenizer.encode(example.completion).tolist() + end
        return (np.asarray(prompt + answer, np.int32),
                np.asarray([0] * len(prompt) + [1] * len(answer), np.int8))
    ids = tokenizer.encode(example.text).tolist() + end
    return np.asarray(ids, np.int32), np.ones(len(ids), np.int8)
