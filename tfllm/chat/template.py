"""Chat templates: a conversation rendered to text exactly as transformers renders it.

Hugging Face checkpoints ship their prompt format as a Jinja template
(`tokenizer_config.json`'s `chat_template`, or `chat_template.jinja`; GGUF files carry it
as `tokenizer.chat_template`). The text a model was trained on is what transformers'
`apply_chat_template` renders from it, so tfllm renders with the same environment: a
sandboxed jinja2 environment with trim_blocks and lstrip_blocks, loop controls, a `tojson`
that does not escape HTML, `raise_exception`, `strftime_now`, and the `{% generation %}`
tag, whose spans say which characters an assistant wrote (the loss mask where a template
has them). Written here because no well-kept library renders chat templates without
transformers (a tfllm dependency it must not have); the behaviour is checked against
transformers on committed fixtures (tools/make_chat_fixtures.py).
"""

import contextvars
import datetime
import json

from tfllm.errors import UserError

# tfllm's template for a model that has none: ChatML (SmolLM2's and Qwen's format), with
# {% generation %} around each answer and its end-of-turn token, as TRL writes it.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


class ChatTemplateError(UserError):
    """A template that cannot render a conversation (its own raise_exception included)."""


def _environment():
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationSpans(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}`: records where its output starts and ends
        in the text rendered so far (the chunks `Template.generate` has yielded)."""

        tags = {"generation"}
        tracking = contextvars.ContextVar("tfllm_generation_spans", default=None)

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_span"), [], [], body).set_lineno(
                lineno)

        def _span(self, caller):
            text = caller()
            tracked = self.tracking.get()
            if tracked is not None:
                chunks, spans = tracked
                start = sum(len(c) for c in chunks)
                spans.append((start, start + len(text)))
            return text

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationSpans, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env, GenerationSpans.tracking


class ChatTemplate:
    """A compiled chat template and the special tokens it may name (`bos_token`, ...).

    Example:
        >>> t = ChatTemplate(CHATML)
        >>> t.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True).text
        '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
    """

    def __init__(self, source, special_tokens=None, name="chat template"):
        import jinja2

        if not isinstance(source, str) or not source.strip():
            raise ChatTemplateError(f"the {name} is empty; pass a Jinja chat template.")
        self.source, self.name = source, name
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if v is not None}
        env, self._tracking = _environment()
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise ChatTemplateError(f"the {name} is not valid Jinja (line {e.lineno}: {e.message}); "
                                    "fix the template.") from None

    @property
    def has_generation_spans(self):
        return "generation" in self.source and "endgeneration" in self.source

    def render(self, messages, tools=None, add_generation_prompt=False, **kwargs):
        """`Rendered(text, spans)`: the text, and the (start, end) character spans of its
        {% generation %} blocks. `kwargs` are the template's own options (e.g.
        enable_thinking=False, date_string=...)."""
        import jinja2

        chunks, spans = [], []
        values = {**self.special_tokens, **kwargs}
        token = self._tracking.set((chunks, spans))
        try:
            for chunk in self._template.generate(
                    messages=messages, tools=tools, documents=None,
                    add_generation_prompt=add_generation_prompt, **values):
                chunks.append(chunk)
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"the {self.name} cannot render this conversation: {e}") \
                from None
        finally:
            self._tracking.reset(token)
        return Rendered("".join(chunks), spans)


# What transformers appends to the final message to find where it ends once rendered
# (`continue_final_message`): the text is cut there, so the model continues that message.
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def render_continuing(template, messages, **kwargs):
    """The conversation's text ending inside its final message, for the model to continue
    it (transformers' `continue_final_message=True`): the template's end-of-turn after
    that message is left out."""
    if not messages or not isinstance(messages[-1].get("content"), str):
        raise ChatTemplateError("continue_final_message needs a conversation whose final "
                                "message has text content.")
    final = messages[-1]["content"]
    tagged = [*messages[:-1], {**messages[-1], "content": final + _CONTINUE_TAG}]
    text = template.render(tagged, **kwargs).text
    tag = _CONTINUE_TAG.strip()
    if final.strip() not in text or tag not in text:
        raise ChatTemplateError(f"the {template.name} drops part of the final message, so it "
                                "cannot be continued; use a template that keeps it.")
    at = text.rindex(tag)
    return text[:at] if text[at:at + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:at].rstrip()


class Rendered:
    """A rendered conversation: its text and its generation spans."""

    def __init__(self, text, spans):
        self.text, self.spans = text, list(spans)

    def __repr__(self):
        return f"Rendered({self.text!r}, {self.spans})"
