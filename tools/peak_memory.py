"""Runs a command and reports the peak memory of its whole process tree (the sum of the
proportional set size, PSS, of the command and every process it started: a page shared
by n processes, as a forked worker shares its parent's, counts 1/n in each), sampled
every 0.2 s.

    python tools/peak_memory.py -- python -m tfllm.prepare --data=... --output=...

GNU time's "maximum resident set size" is one process's peak; tfllm.prepare's workers
are separate processes, so their sum is what must fit the machine. Linux only (/proc).
"""

import os
import subprocess
import sys
import time


def tree_pss(root):
    """Proportional set size in bytes of `root` and all its descendants now."""
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(pid))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _pss(pid)
        stack.extend(children.get(pid, ()))
    return total


def _pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main(argv):
    command = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    start = time.time()
    proc = subprocess.Popen(command)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_pss(proc.pid))
        time.sleep(0.2)
    print(f"peak_memory: {peak / 1e6:,.0f} MB (process tree, PSS), wall {time.time() - start:.1f} s, "
          f"exit {proc.returncode}", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
