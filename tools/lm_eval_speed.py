"""Requests per second of an lm-eval task, tfllm's model or lm-eval's own `hf` model
(transformers, float32), on the same GGUF checkpoint, same task and batch size. Runs in
either environment (the hf side needs lm-eval[hf]); prints one JSON line. Alternate the two
and compare medians:

    for i in 1 2 3; do
      /tmp/side/bin/python tools/lm_eval_speed.py --backend=hf --gguf=$GGUF
      python tools/lm_eval_speed.py --backend=tfllm --gguf=$GGUF
    done

The task is multiple choice over lines of the bundled Tiny Shakespeare (which of four
words ends the line), --docs questions, written to --dir.
"""

import argparse
import json
import os
import random
import re
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "tfllm", "data", "tinyshakespeare.txt")
YAML = """task: speed_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def write_task(folder, docs):
    with open(CORPUS, encoding="utf-8") as f:
        verse = sorted({l.strip() for l in f if len(l.split()) >= 5})
    rng = random.Random(0)
    rng.shuffle(verse)
    words = sorted({w for l in verse for w in re.findall(r"[A-Za-z]+", l)})
    os.makedirs(folder, exist_ok=True)
    data = os.path.join(folder, "speed_mc.jsonl")
    with open(data, "w", encoding="utf-8") as f:
        for line in verse[:docs]:
            head, last = line.rsplit(" ", 1)
            choices = [last] + rng.sample(words, 3)
            rng.shuffle(choices)
            f.write(json.dumps({"question": head, "choices": choices,
                                "answer": choices.index(last)}) + "\n")
    with open(os.path.join(folder, "speed_mc.yaml"), "w", encoding="utf-8") as f:
        f.write(YAML.format(data=data))


def model(backend, gguf, batch):
    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        return HFLM(pretrained=os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                    dtype="float32", batch_size=batch, device="cpu")
    import tfllm.harness

    return tfllm.harness.TfllmLM(run_dir=f"gguf:{gguf}", batch_size=batch)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["hf", "tfllm"], required=True)
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dir", default="/tmp/lm_eval_speed")
    args = parser.parse_args()
    write_task(args.dir, args.docs)
    import lm_eval

    lm = model(args.backend, args.gguf, args.batch)
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=args.dir, include_defaults=False)
    start = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=["speed_mc"], task_manager=manager,
                                      bootstrap_iters=0)
    seconds = time.perf_counter() - start
    requests = 4 * args.docs
    print(json.dumps({"backend": args.backend, "requests": requests, "batch": args.batch,
                      "seconds": round(seconds, 2), "requests_per_s": round(requests / seconds, 2),
                      "acc": results["results"]["speed_mc"]["acc,none"]}))


if __name__ == "__main__":
    main()
