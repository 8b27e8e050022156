"""Rows of chat and instruction data (JSON Lines) as examples to train on.

Each line of a .jsonl file is one example, in one of these shapes:

- `{"messages": [{"role": "user", "content": ...}, ...], "tools": [...]}`: a
  conversation (roles system, user, assistant, tool); the assistant turns are trained;
- `{"prompt": ..., "completion": ...}`: strings (the completion trained, appended to the
  prompt as text) or message lists (the completion's messages trained);
- `{"text": ...}`: plain text, every token trained;
- Alpaca's `{"instruction": ..., "input": ..., "output": ...}`: one user turn (the
  instruction, then the input after a blank line) and the output as the answer;
- ShareGPT's `{"conversations": [{"from": "human", "value": ...}, ...]}`.

Other field names map onto these with `data.chat_fields`, e.g.
"messages=dialog,role=speaker,content=text,user=customer,assistant=agent".
"""

import json

from tfllm.errors import UserError

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT = {"messages": "conversations", "role": "from", "content": "value",
            "user": "human", "assistant": "gpt", "system": "system", "tool": "tool"}
MAPPABLE = ("messages", "role", "content") + ROLES


class Example:
    """One row: `kind` is "chat" (messages, tools, trained message indices or None for
    every assistant turn), "completion" (prompt and completion strings) or "text"."""

    def __init__(self, kind, messages=None, tools=None, trained=None, prompt=None,
                 completion=None, text=None):
        self.kind, self.messages, self.tools, self.trained = kind, messages, tools, trained
        self.prompt, self.completion, self.text = prompt, completion, text


def parse_fields(spec):
    """data.chat_fields ("messages=dialog,role=speaker,...") as a dict; UserError if bad."""
    fields = {}
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in MAPPABLE or not value.strip():
            raise UserError(f"--config.data.chat_fields: {item!r} is not NAME=FIELD with NAME one "
                            f"of {', '.join(MAPPABLE)}; e.g. messages=dialog,role=speaker.")
        fields[key.strip()] = value.strip()
    return fields


def read_examples(path, fields=None):
    """Yields (line number, Example) for each non-blank line of a .jsonl file; UserError
    naming the file, the line and what is wrong."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, parse_line(path, number, line, fields)


def parse_line(path, number, line, fields=None):
    """The Example of line `number` of the file `path`; UserError naming both and what is
    wrong."""
    try:
        row = json.loads(line)
    except ValueError as e:
        raise _bad(path, number, f"is not JSON ({e.msg})") from None
    try:
        return example(row, fields)
    except _RowError as e:
        raise _bad(path, number, str(e)) from None


class _RowError(Exception):
    pass


def _bad(path, number, what):
    return UserError(f"{path}:{number}: the row {what}; each line must be one JSON object with "
                     "\"messages\", \"prompt\"/\"completion\", \"text\", Alpaca's "
                     "\"instruction\"/\"output\" or ShareGPT's \"conversations\" (docs/chat.md).")


def example(row, fields=None):
    """The Example a parsed row holds; _RowError saying what is wrong."""
    if not isinstance(row, dict):
        raise _RowError(f"is a JSON {type(row).__name__}, not an object")
    names = {**{k: k for k in MAPPABLE}, **(fields or {})}
    if names["messages"] in row:
        return Example("chat", _messages(row[names["messages"]], names), row.get("tools"))
    if "conversations" in row:
        return Example("chat", _messages(row["conversations"], SHAREGPT), row.get("tools"))
    if "prompt" in row or "completion" in row:
        return _prompt_completion(row, names)
    if "instruction" in row or "output" in row:
        return _alpaca(row)
    if "text" in row:
        return Example("text", text=_string(row["text"], "\"text\""))
    raise _RowError(f"has none of the known fields (it has {', '.join(sorted(row)) or 'none'})")


def _string(value, what, empty_ok=False):
    if not isinstance(value, str):
        raise _RowError(f"has {what} of type {type(value).__name__}, not a string")
    if not value.strip() and not empty_ok:
        raise _RowError(f"has an empty {what}")
    return value


def _messages(value, names):
    if not isinstance(value, list) or not value:
        raise _RowError(f"has \"{names['messages']}\" that is not a non-empty list of messages")
    role_of = {names[r]: r for r in ROLES}
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise _RowError(f"has message {i} that is not an object")
        role = role_of.get(message.get(names["role"]))
        if role is None:
            raise _RowError(f"has message {i} with role {message.get(names['role'])!r}; use one "
                            f"of {', '.join(role_of)}")
        content = message.get(names["content"])
        if content is None and not message.get("tool_calls"):
            raise _RowError(f"has message {i} ({role}) without \"{names['content']}\"")
        if content is not None:
            _string(content, f"message {i} content", empty_ok=role != "user")
        extra = {k: v for k, v in message.items() if k not in (names["role"], names["content"])}
        out.append({**extra, "role": role, "content": content})
    return out


def _prompt_completion(row, names):
    prompt, completion = row.get("prompt"), row.get("completion")
    if prompt is None or completion is None:
        raise _RowError("has \"prompt\" or \"completion\" without the other")
    if isinstance(prompt, list) and isinstance(completion, list):
        messages = _messages(prompt, names) + _messages(completion, names)
        trained = [i for i in range(len(prompt), len(messages))
                   if messages[i]["role"] == "assistant"]
        if not trained:
            raise _RowError("has a completion with no assistant message")
        return Example("chat", messages, row.get("tools"), trained)
    return Example("completion", prompt=_string(prompt, "\"prompt\"", empty_ok=True),
                   completion=_string(completion, "\"completion\""))


def _alpaca(row):
    instruction = _string(row.get("instruction"), "\"instruction\"")
    extra = row.get("input") or ""
    user = instruction + ("\n\n" + _string(extra, "\"input\"") if extra else "")
    return Example("chat", [{"role": "user", "content": user},
                            {"role": "assistant", "content": _string(row.get("output"),
                                                                     "\"output\"")}])
