"""Where the time of a first answer goes: import, loading a model, the first answer (the
prefill's trace and the decode loop's compilation), the same prompt again, a new prompt
length. One process; the figures of docs/generation.md and issue 43's start-up.

    python tools/generation_startup.py gguf:SmolLM2-135M-Instruct.Q4_1.gguf
"""

import sys
import time


def main(spec):
    t0 = time.time()
    from tfllm.inference.decoding import generate
    from tfllm.runs.run_directory import load_run

    t1 = time.time()
    config, tokenizer, model = load_run(spec)
    t2 = time.time()
    ask = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode(ask.format("What is the capital of France?"))
    t3 = time.time()
    generate(model, ids, 30, temperature=0.0, end_token=tokenizer.eos_id)
    t4 = time.time()
    generate(model, ids, 30, temperature=0.0, end_token=tokenizer.eos_id)
    t5 = time.time()
    other = tokenizer.encode(ask.format("Name a colour please."))
    generate(model, other, 30, temperature=0.0, end_token=tokenizer.eos_id)
    t6 = time.time()
    print(f"import {t1 - t0:.1f} s | load {t2 - t1:.1f} s | first answer {t4 - t3:.1f} s | "
          f"same prompt {t5 - t4:.1f} s | new prompt length {t6 - t5:.1f} s | "
          f"context {config.model.max_length}")


if __name__ == "__main__":
    main(sys.argv[1])
