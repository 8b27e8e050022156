"""Chat data at scale: preparing .jsonl conversations once (1 vs N workers) and what a run
then pays to start on them (time, peak memory), against encoding them at every start.

The conversations are made from text on this machine: every documented function and class
of the installed packages (site-packages), asked about in two ways (what it does; its
docstring's first line, then a follow-up turn), the length mix of real instruction data.

    python tools/chat_prepare_benchmark.py --model=gguf:SmolLM2-135M-Instruct.Q4_1.gguf \
        [--examples=200000 --rounds=2 --workers=2 --window=512 --work=/tmp/chatbench]
    # the start of a run on the same rows with another checkout's code (e.g. before):
    python tools/chat_prepare_benchmark.py ... --start_only --code=/path/to/checkout

Prints one JSON object: the rows, each preparation's wall time (alternating 1 and N
workers), and each start's seconds and peak RSS, measured in fresh processes.
"""

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def docstrings():
    """(name, signature, docstring) of every documented function and class of the
    installed packages, in a stable order."""
    root = sysconfig.get_paths()["purelib"]
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(n for n in names if n.endswith(".py")):
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    doc = ast.get_docstring(node)
                    if doc and len(doc) > 40:
                        args = ast.unparse(node.args) if isinstance(node, ast.FunctionDef) else ""
                        yield node.name, args, doc[:3000]


def conversations(limit):
    """Up to `limit` rows: one single-turn and one two-turn conversation per docstring."""
    for name, args, doc in docstrings():
        first = doc.split("\n\n")[0]
        yield {"messages": [{"role": "user", "content": f"What does `{name}({args})` do?"},
                            {"role": "assistant", "content": doc}]}
        yield {"messages": [{"role": "system", "content": "Answer in one sentence."},
                            {"role": "user", "content": f"Summarize `{name}`."},
                            {"role": "assistant", "content": first},
                            {"role": "user", "content": "And its name again?"},
                            {"role": "assistant", "content": name}]}
        limit -= 2
        if limit <= 0:
            return


def write_rows(path, limit):
    if os.path.isfile(path):
        return
    count = 0
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for row in conversations(limit):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(path + ".tmp", path)


def prepare(rows, output, model, workers):
    """Wall seconds of `tfllm.prepare` into a new `output`."""
    subprocess.run(["rm", "-rf", output], check=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tfllm.prepare", f"--data={rows}",
                           f"--tokenizer_from={model}", f"--output={output}",
                           f"--workers={workers}", "--noprogress"],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return time.perf_counter() - start


START = """
import json, resource, sys, time
started = time.perf_counter()
import ml_collections
from tfllm.data.chat_data import load_chat_dataset
from tfllm.pretrained.checkpoint import check_checkpoint, pretrained_path
checkpoint = check_checkpoint(pretrained_path(sys.argv[2]))
tokenizer, template = checkpoint.tokenizer(), checkpoint.chat_template
data = ml_collections.ConfigDict(dict(source=sys.argv[1], chat_template="", train_on="assistant",
                                      chat_fields="", val_fraction=0.1, packing=True))
loaded = time.perf_counter()
dataset = load_chat_dataset(data, tokenizer, template, int(sys.argv[3]), 1337, True)
ready = time.perf_counter()
x, y, w = dataset.train.batch(list(range(8))) if hasattr(dataset.train, "batch") else (
    dataset.train.inputs(list(range(8))), dataset.train.targets(list(range(8))),
    dataset.train.weights(list(range(8))))
print(json.dumps({"seconds": ready - loaded, "tokenizer_s": loaded - started,
                  "first_batch_s": time.perf_counter() - ready,
                  "windows": len(dataset.train), "examples": dataset.rows,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def start(source, model, window, code):
    """A fresh process's seconds and peak RSS to get the ChatDataset of `source`."""
    env = {**os.environ, "PYTHONPATH": code}
    # In `code`'s directory: `python -c` puts the working directory ahead of PYTHONPATH.
    proc = subprocess.run([sys.executable, "-c", START, source, model, str(window)],
                          capture_output=True, text=True, env=env, cwd=code)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="gguf:FILE or hf:DIR")
    parser.add_argument("--examples", type=int, default=200000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--work", default="/tmp/chatbench")
    parser.add_argument("--code", default=ROOT, help="the checkout whose start is measured")
    parser.add_argument("--start_only", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows = os.path.join(args.work, f"rows-{args.examples}.jsonl")
    write_rows(rows, args.examples)
    result = {"rows": sum(1 for _ in open(rows, encoding="utf-8")),
              "mb": os.path.getsize(rows) / 1e6, "window": args.window,
              "cpu": _cpu()}
    prepared = os.path.join(args.work, "prepared")
    if not args.start_only:
        times = {1: [], args.workers: []}
        for _ in range(args.rounds):
            for workers in times:
                times[workers].append(prepare(rows, prepared, args.model, workers))
        result["prepare_s"] = {str(k): [round(t, 1) for t in v] for k, v in times.items()}
        result["prepare_speedup"] = (statistics.median(times[1])
                                     / statistics.median(times[args.workers]))
        result["prepared"] = start(prepared, args.model, args.window, args.code)
    result["jsonl"] = start(rows, args.model, args.window, args.code)
    print(json.dumps(result, indent=1))


def _cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()
