"""Times opening a prepared dataset (`PreparedDataset(dir)`, and reading one window from
each shard) with two tfllm checkouts, alternately, each open in a fresh process:

    python tools/measure_dataset_open.py /work/data/c1g --checkouts /tmp/before . --rounds 10
    python tools/measure_dataset_open.py /work/data/c1g --checkouts . --cold

--cold clears this checkout's record of verified shards before each open (the first open of
a dataset tfllm.prepare did not just write: every shard hashed). Prints the median and the
range of each, and the median of the per-round ratios to the first checkout.
"""

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys

CODE = """
import sys, time
start = time.perf_counter()
from tfllm.data.prepared_dataset import PreparedDataset
data = PreparedDataset(sys.argv[1])
opened = time.perf_counter()
import numpy as np
starts = np.linspace(0, len(data.tokens) - 1025, 64).astype(np.int64)
windows = data.tokens[starts[:, None] + np.arange(1024)]
print(opened - start, time.perf_counter() - start)
"""


def run(checkout, dataset):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    out = subprocess.run([sys.executable, "-c", CODE, dataset], env=env, capture_output=True,
                         text=True, check=True, cwd="/tmp").stdout.split()
    return float(out[0]), float(out[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--checkouts", nargs="+", default=["."])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args()
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "tfllm", "verified")
    times = {c: [] for c in args.checkouts}
    for _ in range(args.rounds):
        for checkout in args.checkouts:
            if args.cold:
                shutil.rmtree(cache, ignore_errors=True)
            times[checkout].append(run(checkout, args.dataset))
    shards = len(glob.glob(os.path.join(args.dataset, "shard-*.bin")))
    print(f"{args.dataset}: {shards} shards; open = PreparedDataset(dir), +read = and 64 "
          "windows of 1,024 tokens")
    first = times[args.checkouts[0]]
    for checkout, rows in times.items():
        opens, reads = [r[0] * 1e3 for r in rows], [r[1] * 1e3 for r in rows]
        ratio = statistics.median(b[0] / a[0] for a, b in zip(first, rows))
        print(f"{checkout:<20} open {statistics.median(opens):8.1f} ms ({min(opens):.1f}-"
              f"{max(opens):.1f}), +read {statistics.median(reads):8.1f} ms; open ratio "
              f"{ratio:.2f}")


if __name__ == "__main__":
    main()
