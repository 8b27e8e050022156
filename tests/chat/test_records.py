"""Rows of chat and instruction data: every documented shape, and one line per bad row."""

import json

import pytest

from tfllm.chat.records import example, parse_fields, read_examples
from tfllm.errors import UserError

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_each_documented_shape():
    e = example({"messages": CHAT, "tools": [{"type": "function"}]})
    assert (e.kind, e.messages, e.tools, e.trained) == ("chat", CHAT, [{"type": "function"}], None)
    e = example({"prompt": "2+2=", "completion": "4"})
    assert (e.kind, e.prompt, e.completion) == ("completion", "2+2=", "4")
    e = example({"prompt": CHAT[:1], "completion": CHAT[1:]})
    assert (e.kind, e.messages, e.trained) == ("chat", CHAT, [1])
    assert example({"text": "plain"}).text == "plain"
    e = example({"instruction": "Add", "input": "2, 2", "output": "4"})
    assert e.messages == [{"role": "user", "content": "Add\n\n2, 2"},
                          {"role": "assistant", "content": "4"}]
    e = example({"conversations": [{"from": "human", "value": "Hi"},
                                   {"from": "gpt", "value": "Hello"}]})
    assert e.messages == CHAT
    fields = parse_fields("messages=dialog,role=speaker,content=text,user=customer,assistant=agent")
    e = example({"dialog": [{"speaker": "customer", "text": "Hi"},
                            {"speaker": "agent", "text": "Hello"}]}, fields)
    assert e.messages == CHAT


def test_an_assistant_message_may_hold_only_tool_calls():
    calls = [{"type": "function", "function": {"name": "f", "arguments": {}}}]
    e = example({"messages": [CHAT[0], {"role": "assistant", "content": None,
                                        "tool_calls": calls}]})
    assert e.messages[1]["tool_calls"] == calls


@pytest.mark.parametrize("line,phrase", [
    ("{not json", "is not JSON"),
    ("[1, 2]", "is a JSON list, not an object"),
    ('{"foo": 1}', "has none of the known fields (it has foo)"),
    ('{"messages": []}', "not a non-empty list of messages"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "role 'robot'; use one of"),
    ('{"messages": [{"role": "user"}]}', "message 0 (user) without \\\"content\\\""),
    ('{"messages": [{"role": "user", "content": 3}]}', "content of type int"),
    ('{"prompt": "x"}', "without the other"),
    ('{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "user", '
     '"content": "y"}]}', "completion with no assistant message"),
    ('{"text": ""}', "has an empty \\\"text\\\""),
])
def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path, line, phrase):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n\n" + line + "\n")
    with pytest.raises(UserError) as e:
        list(read_examples(str(path)))
    message = str(e.value)
    assert message.startswith(f"{path}:3: the row ") and phrase.replace("\\", "") in message
    assert "\n" not in message


def test_a_bad_field_mapping_is_one_line():
    with pytest.raises(UserError, match="is not NAME=FIELD"):
        parse_fields("messages")
    with pytest.raises(UserError, match="is not NAME=FIELD"):
        parse_fields("speaker=role")
