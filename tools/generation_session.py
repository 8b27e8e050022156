"""A 3-prompt chat session, timed as a user feels it, in tfllm or in transformers: the time
to each answer's first token and the decoding rate after it, one process per backend run
(issue 43's generation start-up; docs/generation.md).

    python tools/generation_session.py tfllm FILE.gguf
    /tmp/side/bin/python tools/generation_session.py transformers FILE.gguf

Greedy, batch 1, float32, ChatML prompts of three lengths and three `max_new_tokens`;
prints one JSON line. The clock starts once the model is loaded (import and load are
reported apart). transformers is not a dependency of tfllm: run it in a side environment.
"""

import json
import sys
import time

QUESTIONS = ("What is the capital of France?",
             "Name three colours of the rainbow and say which one is between the other two.",
             "Write one sentence about the sea, then one about the mountains, and a last one "
             "about how the two of them differ for someone who lives near them.")
MAX_NEW = (24, 40, 64)


def chat(question):
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def tfllm_session(path):
    t0 = time.time()
    from tfllm.inference.decoding import generate
    from tfllm.runs.run_directory import load_run

    t1 = time.time()
    _, tokenizer, model = load_run("gguf:" + path)
    t2 = time.time()
    answers = []
    for question, max_new in zip(QUESTIONS, MAX_NEW):
        start, first = time.time(), []
        ids = generate(model, tokenizer.encode(chat(question)), max_new, temperature=0.0,
                       end_token=tokenizer.eos_id, stream=lambda new: first.append(time.time()) and False)[0]
        answers.append(_answer(start, first[0], time.time(), len(ids), tokenizer.decode(ids)))
    return _report("tfllm", t1 - t0, t2 - t1, answers)


def transformers_session(path):
    t0 = time.time()
    import os

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    t1 = time.time()
    folder, name = os.path.split(os.path.abspath(path))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    t2 = time.time()

    class FirstToken(BaseStreamer):
        def __init__(self):
            self.calls = []

        def put(self, value):  # the prompt first, then each new token
            self.calls.append(time.time())

        def end(self):
            pass

    answers = []
    for question, max_new in zip(QUESTIONS, MAX_NEW):
        streamer = FirstToken()
        start = time.time()
        inputs = tokenizer(chat(question), return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new, do_sample=False,
                                 streamer=streamer)
        ids = out[0, inputs["input_ids"].shape[1]:].tolist()
        answers.append(_answer(start, streamer.calls[1], time.time(), len(ids),
                               tokenizer.decode(ids)))
    return _report("transformers", t1 - t0, t2 - t1, answers)


def _answer(start, first, end, tokens, text):
    return {"first_token_s": round(first - start, 3), "total_s": round(end - start, 3),
            "tokens": tokens,
            "tokens_per_s_after_first": round((tokens - 1) / max(end - first, 1e-9), 1),
            "text": text}


def _report(backend, import_s, load_s, answers):
    return {"backend": backend, "import_s": round(import_s, 2), "load_s": round(load_s, 2),
            "first_token_s": [a["first_token_s"] for a in answers],
            "session_s": round(sum(a["total_s"] for a in answers), 2),
            "tokens": sum(a["tokens"] for a in answers),
            "tokens_per_s_after_first": [a["tokens_per_s_after_first"] for a in answers],
            "texts": [a["text"] for a in answers]}


if __name__ == "__main__":
    backend, path = sys.argv[1:3]
    session = tfllm_session if backend == "tfllm" else transformers_session
    print(json.dumps(session(path)))
