"""Chat templates render and tokenize as transformers does (fixtures made by transformers:
tools/make_chat_fixtures.py), for SmolLM2's, Llama 3's, Qwen2.5's, Qwen3's and Mistral's
own templates and tfllm's built-in ChatML."""

import json
import pathlib

import numpy as np
import pytest

from tfllm.chat.encoding import ChatEncoder
from tfllm.chat.template import CHATML, ChatTemplate, ChatTemplateError
from tfllm.tokenizers.hf_tokenizer import HFTokenizer

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "chat"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text(encoding="utf-8"))["templates"]
CONVERSATIONS = json.loads((FIXTURES / "conversations.json").read_text(encoding="utf-8"))
CASES = [(t, c) for t in REFERENCE for c in CONVERSATIONS]
INJECTED = "special_strings_in_content"


@pytest.fixture(scope="module")
def tokenizer():
    text = (FIXTURES / "tokenizer.json").read_text(encoding="utf-8")
    return HFTokenizer(text, vocab_size=len(json.loads(text)["model"]["vocab"]) + 64)


def encoder(name, tokenizer, train_on="assistant"):
    ref = REFERENCE[name]
    source = (FIXTURES / "templates" / ref["template"]).read_text(encoding="utf-8")
    template = ChatTemplate(source, {"bos_token": ref["bos_token"], "eos_token": ref["eos_token"]},
                            name=f"{name} template")
    return ChatEncoder(tokenizer, template, train_on, template_kwargs=ref["options"])


def test_the_built_in_template_is_the_one_checked():
    assert (FIXTURES / "templates" / "chatml_generation.jinja").read_text() == CHATML


@pytest.mark.parametrize("name,conversation", CASES)
def test_rendering_and_ids_equal_transformers(tokenizer, name, conversation):
    ref = REFERENCE[name]["conversations"][conversation]
    enc = encoder(name, tokenizer, train_on="all")
    conv = CONVERSATIONS[conversation]
    text = enc.template.render(conv["messages"], tools=conv.get("tools"), **enc.kwargs).text
    assert text == ref["text"]
    ids, _ = enc.encode(conv["messages"], conv.get("tools"))
    if conversation != INJECTED:
        assert ids.tolist() == ref["ids"]
    else:  # the same text, but what the user typed stays text: fewer special tokens
        specials = set(enc.special.values())
        assert tokenizer.decode(ids) == ref["text"]
        typed = sum(text.count(s) for m in conv["messages"] for s in enc.special
                    for text in [m["content"]])
        assert typed > 0
        assert (sum(i in specials for i in ids)
                == sum(i in specials for i in ref["ids"]) - typed)
    last_user = max(i for i, m in enumerate(conv["messages"]) if m["role"] == "user")
    prompt = enc.prompt(conv["messages"][:last_user + 1], conv.get("tools"))
    if conversation != INJECTED:
        assert prompt.tolist() == ref["prompt_ids"]


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_generation_tags_give_transformers_assistant_mask(tokenizer, conversation):
    ref = REFERENCE["chatml_generation"]["conversations"][conversation]
    conv = CONVERSATIONS[conversation]
    ids, mask = encoder("chatml_generation", tokenizer).encode(conv["messages"], conv.get("tools"))
    if conversation != INJECTED:
        assert mask.tolist() == ref["assistant_masks"]
    assert mask.any()


MULTI_TURN = CONVERSATIONS["system_multi_turn"]["messages"]


@pytest.mark.parametrize("name,messages", [
    ("smollm2", MULTI_TURN), ("llama3", MULTI_TURN), ("qwen2.5", MULTI_TURN),
    ("mistral", MULTI_TURN[1:]),  # Mistral's moves a system prompt to the last user turn
    ("qwen3", MULTI_TURN[:3]),  # Qwen3's writes <think></think> into the last answer only
])
def test_turn_by_turn_mask_trains_each_answer_and_its_end_of_turn(tokenizer, name, messages):
    enc = encoder(name, tokenizer)
    ids, mask = enc.encode(messages)
    trained = tokenizer.decode(ids[mask == 1])
    eot = enc.end_of_turn()
    assert eot is not None and eot in ids[mask == 1]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    # Trained: exactly the answers and what closes each turn (and Qwen3's empty thinking
    # block: after the generation prompt, the model writes it itself).
    parts = [part.replace("<think>\n\n</think>", "").strip()
             for part in trained.split(tokenizer.decode([eot]))]
    assert [p for p in parts if p] == answers
    assert ids[mask == 1].tolist().count(eot) == len(answers)


@pytest.mark.parametrize("name,messages", [("qwen3", MULTI_TURN), ("mistral", MULTI_TURN)])
def test_a_template_whose_renderings_are_not_prefixes_is_refused_in_one_line(
        tokenizer, name, messages):
    with pytest.raises(ChatTemplateError, match="does not begin its rendering") as e:
        encoder(name, tokenizer).encode(messages)
    assert "\n" not in str(e.value) and "--config.data.train_on=all" in str(e.value)


def test_a_template_error_is_one_line():
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        ChatTemplate("{% for m in messages %}")
    template = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(ChatTemplateError, match="cannot render this conversation: roles must"):
        template.render([{"role": "user", "content": "x"}])


def test_a_template_cannot_reach_python_internals():
    template = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(ChatTemplateError):
        template.render([{"role": "user", "content": "x"}])
