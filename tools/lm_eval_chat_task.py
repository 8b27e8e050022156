"""The chat fine-tuning demo's held-out prompts (tools/chat_finetune_demo.py, the same split)
as a local lm-eval generation task, `chat_json`: the user sends a line of verse with the
instruction, the answer must equal the JSON exactly (exact_match, greedy). Scores a model
before and after fine-tuning through lm-eval's own CLI:

    python tools/lm_eval_chat_task.py /tmp/chat_task
    python -m tfllm.lm_eval --model_args=run_dir=gguf:$GGUF --tasks=chat_json \
        --include_path=/tmp/chat_task --apply_chat_template
    python -m tfllm.lm_eval --model_args=run_dir=/tmp/chat_demo/run --tasks=chat_json \
        --include_path=/tmp/chat_task --apply_chat_template
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_finetune_demo import INSTRUCTION, answer, lines_of_verse  # noqa: E402

YAML = """task: chat_json
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: ""
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 40
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--train", type=int, default=300, help="as the demo's --train")
    parser.add_argument("--heldout", type=int, default=30, help="as the demo's --heldout")
    args = parser.parse_args()
    lines = lines_of_verse()
    random.Random(0).shuffle(lines)
    heldout = lines[args.train:args.train + args.heldout]
    os.makedirs(args.folder, exist_ok=True)
    data = os.path.abspath(os.path.join(args.folder, "chat_json.jsonl"))
    with open(data, "w", encoding="utf-8") as f:
        for line in heldout:
            f.write(json.dumps({"prompt": f"{INSTRUCTION}\n{line}", "answer": answer(line)}) + "\n")
    with open(os.path.join(args.folder, "chat_json.yaml"), "w", encoding="utf-8") as f:
        f.write(YAML.format(data=data))
    print(f"wrote task chat_json ({len(heldout)} prompts) to {args.folder}")


if __name__ == "__main__":
    main()
