"""PyTorch's side of docs/benchmarks.md's precision table: a nanoGPT-shaped GPT trained on
random character ids, float32 or autocast bfloat16, tokens/s of its training step.

Runs in a side environment with torch (never a tfllm dependency):

    /tmp/side/bin/python tools/torch_gpt_benchmark.py --config=bench_small --precision=bfloat16

The model is written here rather than imported from nanoGPT (not a package): the same
shapes and parts as nanoGPT's `model.py` and tfllm's GPT configs (learned positions,
LayerNorm with bias, GELU MLP of 4 D, tied embeddings, causal attention through
`scaled_dot_product_attention`), AdamW, one step = forward, backward, optimizer step.
Prints one JSON line: config, precision, steps, tokens/s median and its p10-p90 spread.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

# (layers, heads, width, context, batch): tfllm's configs/bench_*.py
CONFIGS = {"bench_tiny": (4, 4, 128, 64, 12), "bench_small": (6, 6, 384, 256, 8)}
VOCAB = 65  # Tiny Shakespeare's characters


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, layers, heads, width, context):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(VOCAB, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.apply(lambda m: nn.init.normal_(m.weight, std=0.02)
                   if isinstance(m, (nn.Linear, nn.Embedding)) else None)

    def forward(self, ids, targets):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.tokens.weight.T  # tied
        return F.cross_entropy(logits.float().view(-1, VOCAB), targets.reshape(-1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="bench_small", choices=sorted(CONFIGS))
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    layers, heads, width, context, batch = CONFIGS[args.config]
    torch.manual_seed(1337)
    model = GPT(layers, heads, width, context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    ids = torch.randint(0, VOCAB, (batch, context + 1))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bfloat16")
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        with autocast:
            loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    rates = sorted(batch * context / t for t in times)
    print(json.dumps({"config": args.config, "precision": args.precision, "steps": args.steps,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "tokens_per_s": statistics.median(rates),
                      "p10": rates[len(rates) // 10], "p90": rates[(9 * len(rates)) // 10],
                      "loss": loss.item()}))


if __name__ == "__main__":
    main()
