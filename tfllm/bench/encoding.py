"""The encoding speed of tfllm.prepare with one worker and with several, alternately
(`tfllm.benchmark --prepare`); no TensorFlow."""

import os
import statistics


def measure_preparation(corpus, tokenizer_dir=None, mb=128, workers=None, rounds=2):
    """{workers: medians and runs of MB/s and tokens/s, "speedup"} of encoding the first
    `mb` MB of `corpus` with the tokenizer of `tokenizer_dir` (default: a char tokenizer
    of the corpus)."""
    from tfllm.data.preparation import measure_encoding
    from tfllm.tokenizers import CharTokenizer, load_tokenizer

    if tokenizer_dir:
        tokenizer = load_tokenizer(tokenizer_dir)
    else:
        from tfllm.data.corpus import iter_pieces

        chars = set()
        for _, text in iter_pieces(corpus, flags={"source": "--prepare"}):
            chars.update(text)
        tokenizer = CharTokenizer(sorted(chars))
    workers = workers or os.cpu_count()
    runs = measure_encoding(corpus, tokenizer, workers, mb * 1_000_000, rounds)
    summary = {str(count): {key: statistics.median(r[key] for r in rows)
                            for key in ("mb_per_s", "tokens_per_s")} | {"runs": rows}
               for count, rows in runs.items()}
    ratios = [b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(runs[1], runs[workers])]
    return {"corpus": corpus, "sample_mb": mb,
            "tokenizer": f"{tokenizer.name} ({tokenizer.vocab_size} ids)", "cpus": os.cpu_count(),
            "workers": summary, "speedup": statistics.median(ratios), "speedups": ratios}
