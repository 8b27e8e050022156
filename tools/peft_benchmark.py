"""The PyTorch + PEFT reference for `python -m tfllm.benchmark --config=bench_gpt2 --finetune`:
the same model (transformers' GPT2LMHeadModel from GPT-2's config, random weights), batch,
context and optimizer (AdamW), full fine-tuning and LoRA rank 8 on the attention
projections (c_attn, c_proj of attn), each in a fresh process, alternately.

    /tmp/ref/bin/pip install torch transformers peft gguf
    /tmp/ref/bin/python tools/peft_benchmark.py [--batch 4 --seq 256 --steps 10 --rounds 2]

With `--gguf FILE` the model is that checkpoint instead (transformers dequantizes it to
float32, as tfllm's `--init_from=gguf:FILE` does) and LoRA goes on q, k, v, o
(`--variants=lora --gguf SmolLM2-135M-Instruct.Q4_1.gguf --batch 8`: issue 43's LoRA step);
`--precision=bfloat16` runs the step under `torch.autocast("cpu", dtype=torch.bfloat16)`.

Not a dependency of tfllm: it measures what a user would otherwise run, on this machine.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def _model(gguf):
    """(model, LoRA target modules, fan_in_fan_out): GPT-2 124M with random weights, or the
    GGUF checkpoint's Llama-family model."""
    import os

    import transformers

    if gguf:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf),
            torch_dtype="float32")
        return model, ["q_proj", "k_proj", "v_proj", "o_proj"], False
    config = transformers.GPT2Config(n_positions=1024, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(config), ["attn.c_attn", "attn.c_proj"], True


def one_run(variant, batch, seq, steps, warmup, gguf=None, precision="float32"):
    import torch

    torch.manual_seed(0)
    model, targets, fan_in_fan_out = _model(gguf)
    if variant == "lora":
        import peft

        lora = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets,
                               fan_in_fan_out=fan_in_fan_out)
        model = peft.get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)
    ids = torch.randint(0, 65, (batch, seq + 1))
    times = []
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")
    for step in range(warmup + steps):
        start = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids[:, :-1], labels=ids[:, 1:]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times[warmup:])
    return {"variant": variant, "tokens_per_s": batch * seq / median,
            "trainable": sum(p.numel() for p in params),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", choices=["full", "lora"])
    parser.add_argument("--variants", default="full,lora")
    parser.add_argument("--gguf", default="", help="a GGUF checkpoint instead of GPT-2 124M")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.batch, args.seq, args.steps, args.warmup,
                                 args.gguf, args.precision)))
        return
    runs = {variant: [] for variant in args.variants.split(",")}
    for _ in range(args.rounds):
        for variant in runs:
            out = subprocess.run([sys.executable, __file__, f"--one={variant}",
                                  f"--batch={args.batch}", f"--seq={args.seq}",
                                  f"--steps={args.steps}", f"--warmup={args.warmup}",
                                  f"--gguf={args.gguf}", f"--precision={args.precision}"],
                                 capture_output=True, text=True, check=True).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    first = next(iter(runs.values()))[0]
    print(f"PyTorch {first['torch']} ({first['threads']} threads), "
          f"{args.gguf or 'GPT-2 124M'}, {args.precision}, batch {args.batch} x {args.seq}, AdamW")
    for variant, rows in runs.items():
        print(f"{variant:<5} trainable {rows[0]['trainable']:>11,}  tokens/s "
              f"{statistics.median(r['tokens_per_s'] for r in rows):7,.0f}  peak MB "
              f"{statistics.median(r['peak_rss_mb'] for r in rows):7,.0f}   runs: "
              + ", ".join(f"{r['tokens_per_s']:,.0f} tok/s {r['peak_rss_mb']:,.0f} MB" for r in rows))


if __name__ == "__main__":
    main()
