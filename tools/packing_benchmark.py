"""Useful tokens per second of chat training, packed vs one example per padded window.

The examples are conversations made from text on this machine: a user asks what a Python
function of an installed package does (its signature), the assistant answers with its
docstring, the length mix of real instruction data (many short answers, a long tail).
Both layouts train the same model with the same step (the same shapes), alternating
rounds in one process; "useful" tokens are the trained (answer) tokens.

    python tools/packing_benchmark.py [--window=512 --batch=8 --steps=6 --rounds=3]
"""

import argparse
import ast
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "chat")


def conversations(limit):
    """(signature question, docstring answer) pairs from the sources of numpy and absl."""
    import absl
    import numpy

    out = []
    for package in (numpy, absl):
        root = os.path.dirname(package.__file__)
        for folder, _, names in sorted(os.walk(root)):
            for name in sorted(n for n in names if n.endswith(".py")):
                try:
                    tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
                except (SyntaxError, UnicodeDecodeError):
                    continue
                for node in ast.walk(tree):
                    doc = (ast.get_docstring(node) if isinstance(node, ast.FunctionDef)
                           else None)
                    if doc and len(doc) > 40:
                        question = f"What does `{node.name}({ast.unparse(node.args)})` do?"
                        out.append([{"role": "user", "content": question},
                                    {"role": "assistant", "content": doc[:3000]}])
                        if len(out) >= limit:
                            return out
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    import tensorflow as tf

    from tfllm.chat.encoding import ChatEncoder
    from tfllm.chat.template import CHATML, ChatTemplate
    from tfllm.data.chat_data import chat_train_dataset
    from tfllm.data.packing import pack
    from tfllm.models import GPT
    from tfllm.tokenizers.hf_tokenizer import HFTokenizer
    from tfllm.training.training_model import TrainingModel
    from tfllm._keras import keras

    tokenizer = HFTokenizer(open(os.path.join(FIXTURES, "tokenizer.json"), encoding="utf-8").read(), 640)
    encoder = ChatEncoder(tokenizer, ChatTemplate(CHATML))
    examples = [encoder.encode(c) for c in conversations(args.examples)]
    lengths = np.array([len(ids) for ids, _ in examples])
    layouts = {"packed": pack(examples, args.window), "padded": pack(examples, args.window, False)}
    model = GPT(vocab_size=640, num_layers=6, num_heads=6, hidden_dim=384, max_length=args.window,
                position="rope", normalization="rms", activation="swiglu", use_bias=False)
    task = TrainingModel(model)
    task.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=True)
    iterators = {name: iter(chat_train_dataset(p, args.batch, 0)) for name, p in layouts.items()}
    for name in layouts:  # compile
        task.train_on_batch(*next(iterators[name]))
    times = {name: [] for name in layouts}
    useful = {name: [] for name in layouts}
    for _ in range(args.rounds):
        for name in layouts:
            batches = [next(iterators[name]) for _ in range(args.steps)]
            started = time.perf_counter()
            for x, y, w in batches:
                task.train_on_batch(x, y, w)
            times[name].append((time.perf_counter() - started) / args.steps)
            useful[name].append(float(sum(float(tf.reduce_sum(w)) for _, _, w in batches))
                                / args.steps)
    result = {"examples": len(examples), "length_median": int(np.median(lengths)),
              "length_p90": int(np.percentile(lengths, 90)), "window": args.window,
              "batch": args.batch}
    for name, packed in layouts.items():
        rates = [u / t for u, t in zip(useful[name], times[name])]
        result[name] = {"windows": len(packed), "trained_tokens_per_step": statistics.median(useful[name]),
                        "step_s": statistics.median(times[name]),
                        "useful_tokens_per_s": statistics.median(rates),
                        "spread": [min(rates), max(rates)], "truncated": packed.truncated}
    result["ratio"] = result["packed"]["useful_tokens_per_s"] / result["padded"]["useful_tokens_per_s"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
