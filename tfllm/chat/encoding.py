"""Conversations to token ids and a loss mask, as transformers tokenizes a rendered chat.

The rendered text is split at the special tokens the template wrote, which become their
ids; the text between is encoded as text. A special-token string inside a message (a user
typing "<|im_end|>") is not a special token: before rendering, such strings in the messages
are swapped for characters of the same length from a private-use plane, and swapped back
after, so character offsets never move (transformers, which parses special-token strings
anywhere in the rendered text, differs from tfllm only there).

The loss mask marks the tokens an assistant wrote, end-of-turn token included: the
template's {% generation %} spans where it has them, else the characters each assistant
turn adds when the conversation is rendered one message more at a time (refused in one
line where a template's renderings are not prefixes of each other).
"""

import re

import numpy as np

from tfllm.chat.template import ChatTemplateError

TRAIN_ON = ("assistant", "all")
_SHIFT = 0xF0000  # Unicode plane 15 (private use): where escaped characters go
_ESCAPED = re.compile("[\U000F0000-\U000FFFFD]")


def _unescape(text):
    return _ESCAPED.sub(lambda m: chr(ord(m.group()) - _SHIFT), text)


class ChatEncoder:
    """Encodes conversations for one tokenizer and template.

    `tokenizer` must offer `special_tokens()` ({text: id}) and `encode_with_offsets(text)`
    (tfllm's HFTokenizer does: the tokenizer of every hf: and gguf: checkpoint).

    Example:
        >>> enc = ChatEncoder(tokenizer, ChatTemplate(CHATML))
        >>> ids, mask = enc.encode([{"role": "user", "content": "Hi"},
        ...                         {"role": "assistant", "content": "Hello!"}])
    """

    def __init__(self, tokenizer, template, train_on="assistant", template_kwargs=None):
        if not hasattr(tokenizer, "special_tokens"):
            raise ChatTemplateError(
                f"chat data needs a pretrained model's tokenizer, not {type(tokenizer).__name__}; "
                "start from one with --init_from=hf:DIR or --init_from=gguf:FILE.")
        if train_on not in TRAIN_ON:
            raise ChatTemplateError(f"data.train_on={train_on!r} is not allowed: use one of "
                                    + ", ".join(TRAIN_ON) + ".")
        self.tokenizer, self.template, self.train_on = tokenizer, template, train_on
        self.kwargs = dict(template_kwargs or {})
        self.special = tokenizer.special_tokens()
        names = sorted(self.special, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None

    def _escape(self, value):
        """`value` (messages, tools) with special-token strings in its strings escaped."""
        if isinstance(value, str):
            if self._split is None:
                return value
            return self._split.sub(lambda m: "".join(chr(_SHIFT + ord(c)) for c in m.group()),
                                   value)
        if isinstance(value, dict):
            return {k: self._escape(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._escape(v) for v in value]
        return value

    def render(self, messages, tools=None, add_generation_prompt=False, escaped=False):
        """The template's rendering of the escaped conversation (offsets as in the text);
        `escaped`: the messages and tools are escaped already."""
        if not escaped:
            messages, tools = self._escape(messages), self._escape(tools)
        return self.template.render(messages, tools=tools,
                                    add_generation_prompt=add_generation_prompt, **self.kwargs)

    def tokens(self, text):
        """(ids, offsets) of rendered text: special tokens where the template wrote them."""
        pieces = self._split.split(text) if self._split else [text]
        ids, offsets, at = [], [], 0
        for i, piece in enumerate(pieces):
            if i % 2:  # a special token the template wrote
                ids.append(self.special[piece])
                offsets.append((at, at + len(piece)))
            elif piece:
                piece_ids, piece_offsets = self.tokenizer.encode_with_offsets(_unescape(piece))
                ids.extend(piece_ids)
                offsets.extend((at + s, at + e) for s, e in piece_offsets)
            at += len(piece)
        return ids, offsets

    def encode(self, messages, tools=None, trained=None):
        """(ids, mask) of a whole conversation; mask 1 on the tokens the loss is taken on.
        `trained`: indices of the messages to train on (default: every assistant message;
        a prompt/completion row trains on its completion's)."""
        messages, tools = self._escape(messages), self._escape(tools)  # once, for every render
        rendered = self.render(messages, tools, escaped=True)
        ids, offsets = self.tokens(rendered.text)
        if self.train_on == "all":
            return np.asarray(ids, np.int32), np.ones(len(ids), np.int8)
        if trained is None and self.template.has_generation_spans:
            spans = rendered.spans
        else:
            if trained is None:
                trained = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
            spans = [self._turn_span(messages, tools, rendered.text, i) for i in trained]
        return np.asarray(ids, np.int32), _mask(offsets, spans)

    def _turn_span(self, messages, tools, full, i):
        """The characters message i adds to the rendering of the messages before it
        (`messages` and `tools` escaped; `full`: the rendering of them all)."""
        before = self.render(messages[:i], tools, add_generation_prompt=True, escaped=True).text
        through = (full if i == len(messages) - 1 else
                   self.render(messages[:i + 1], tools, escaped=True).text)
        if not (full.startswith(through) and through.startswith(before)):
            raise ChatTemplateError(
                f"the {self.template.name} renders a conversation's first {i} messages as "
                f"text that does not begin its rendering of {i + 1} (Qwen3's does so around "
                "thinking), so the assistant's tokens cannot be found; pass a template with "
                "{% generation %} tags as --config.data.chat_template=FILE, or train on every "
                "token with --config.data.train_on=all.")
        return len(before), len(through)

    def prompt(self, messages, tools=None):
        """The ids that ask the model for the next assistant message."""
        return np.asarray(self.tokens(self.render(messages, tools, True).text)[0], np.int32)

    def end_of_turn(self):
        """The special token that ends an assistant's turn (<|im_end|>, <|eot_id|>, </s>):
        the first special token after the answer in a probe conversation; None if none."""
        probe = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
        start = len(self.render(probe[:1], add_generation_prompt=True).text)
        text = self.render(probe).text
        if not self._split:
            return None
        for match in self._split.finditer(text, start):
            return self.special[match.group()]
        return None


def _mask(offsets, spans):
    """1 on each token whose characters overlap a span (transformers marks a token for
    each character of a generation span)."""
    mask = np.zeros(len(offsets), np.int8)
    if not spans or not offsets:
        return mask
    starts = np.array([s for s, _ in offsets])
    ends = np.array([e for _, e in offsets])
    for s, e in spans:
        if e > s:
            mask[(starts < e) & (ends > s)] = 1
    return mask
