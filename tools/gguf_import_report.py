"""Imports a real GGUF file and compares it with the references tools/make_gguf_fixtures.py
made with transformers and llama.cpp (tests/fixtures/gguf/real/<file>.npz): import time, peak
memory, the largest logit difference, the mean loss, the greedy answer.

    python tools/gguf_import_report.py SmolLM2-135M-Instruct.Q4_1.gguf
"""

import os
import resource
import sys
import time

import numpy as np

import tfllm  # noqa: F401  (tf_keras before TensorFlow)


def main(path):
    from tfllm.inference import generate
    from tfllm.pretrained import from_pretrained

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ref = np.load(os.path.join(here, "tests", "fixtures", "gguf", "real",
                               os.path.basename(path) + ".npz"))
    start = time.time()
    model, tokenizer = from_pretrained(path, max_length=2048)
    seconds = time.time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logits = model(ref["ids"][None]).numpy()[0]
    rows = np.abs(logits[ref["rows"]] - ref["row_logits"]).max()
    top = np.abs(np.take_along_axis(logits, ref["top_ids"], -1) - ref["top_logits"]).max()
    shifted = logits[:-1] - logits[:-1].max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    loss = -logp[np.arange(len(ref["ids"]) - 1), ref["ids"][1:]].mean()
    answer = np.asarray(generate(model, ref["prompt"], len(ref["answer"]), temperature=0.0)[0])
    print(f"import: {seconds:.1f} s, peak RSS {peak:,.0f} MB (the process so far)")
    print(f"logits on {len(ref['ids'])} tokens: max |diff| {max(rows, top):.2e} "
          f"(4 whole rows {rows:.2e}, every position's top 8 {top:.2e})")
    print(f"mean loss {loss:.6f} vs transformers {float(ref['loss']):.6f} "
          f"(diff {abs(loss - float(ref['loss'])):.1e})")
    same = answer.tolist()[:len(ref["answer"])] == ref["answer"].tolist()
    print(f"greedy answer {'equal' if same else 'DIFFERENT'}: {tokenizer.decode(answer)!r}")


if __name__ == "__main__":
    main(sys.argv[1])
