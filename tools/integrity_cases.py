"""Runs the bad-input and damage cases of prepared datasets and imports (issue 44) against a
tfllm checkout and prints one markdown row per case: the exit code, the stderr lines, whether
a traceback was printed, and what the case left behind.

    python tools/integrity_cases.py --checkout=.            # this checkout
    python tools/integrity_cases.py --checkout=/tmp/before  # another (git worktree add)

Each command runs with PYTHONPATH=<checkout> from a scratch directory; nothing is
downloaded. The tiny Hugging Face checkpoint is tests/fixtures/hf/llama of this checkout.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA = os.path.join(HERE, "tests", "fixtures", "hf", "llama")
GPT2 = os.path.join(HERE, "tests", "fixtures", "hf", "gpt2")  # float32 weights


class Runner:
    def __init__(self, checkout, work):
        self.env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout),
                        TF_CPP_MIN_LOG_LEVEL="2")
        self.work = work

    def run(self, module, *args, timeout=600):
        return subprocess.run([sys.executable, "-m", module, *args], cwd=self.work,
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def python(self, code, *args):
        return subprocess.run([sys.executable, "-c", code, *args], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=600)


def summary(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, len(lines), "Traceback" in proc.stderr, (lines[-1][:150] if lines else "")


def corpus(work, chars=200_000):
    path = os.path.join(work, "corpus.txt")
    if not os.path.exists(path):
        with open(os.path.join(HERE, "tfllm", "data", "tinyshakespeare.txt")) as f:
            text = f.read()[:chars]
        with open(path, "w") as f:
            f.write(text)
    return path


def manifest_tokens(out):
    try:
        with open(os.path.join(out, "manifest.json")) as f:
            return json.load(f)["tokens"]
    except OSError:
        return None


def case_truncated(r, size):
    out = os.path.join(r.work, f"trunc{size}")
    r.run("tfllm.prepare", f"--data={corpus(r.work)}", f"--output={out}", "--shard_chars=50000")
    before = manifest_tokens(out)
    shard = os.path.join(out, "shard-00001.bin")
    with open(shard, "rb") as f:
        good = f.read()
    with open(shard, "wb") as f:
        f.write(good[:size])
    proc = r.run("tfllm.prepare", f"--data={corpus(r.work)}", f"--output={out}",
                 "--shard_chars=50000")
    with open(shard, "rb") as f:
        restored = f.read() == good
    return summary(proc), f"manifest tokens {before:,} -> {manifest_tokens(out):,}; shard {'rewritten' if restored else 'kept damaged'}"


def case_corrupt(r):
    out = os.path.join(r.work, "corrupt")
    r.run("tfllm.prepare", f"--data={corpus(r.work)}", f"--output={out}", "--shard_chars=50000")
    shard = os.path.join(out, "shard-00000.bin")
    with open(shard, "r+b") as f:
        f.seek(10)
        f.write((65535).to_bytes(2, "little"))
    proc = r.run("tfllm.train", "--config=tiny_test", f"--config.data.source={out}",
                 "--config.train.steps=10", "--config.sample.length=0",
                 f"--run_dir={r.work}/corrupt_run")
    return summary(proc), "training a corrupted dataset"


def case_two_prepares(r, second_tokenizer):
    """A second prepare into the output while the first writes it (the first's lock file
    is there, its manifest not yet)."""
    out = os.path.join(r.work, "two")
    big = os.path.join(r.work, "big.txt")
    with open(corpus(r.work, 1_115_394)) as f, open(big, "w") as g:
        g.write(f.read() * 3)
    a = subprocess.Popen([sys.executable, "-m", "tfllm.prepare", f"--data={big}", f"--output={out}",
                          "--tokenizer=char", "--shard_chars=100000", "--workers=1"], cwd=r.work,
                         env=r.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not os.path.exists(os.path.join(out, "shard-00001.bin")) and a.poll() is None:
        time.sleep(0.01)
    b = r.run("tfllm.prepare", f"--data={big}", f"--output={out}",
              f"--tokenizer={second_tokenizer}", "--shard_chars=100000", "--workers=1")
    a_out, a_err = a.communicate()
    try:
        with open(os.path.join(out, "manifest.json")) as f:
            holds = json.load(f)["tokenizer"]["name"]
    except OSError:
        holds = "no"
    first = [line for line in a_err.splitlines() if line.strip()]
    return summary(b), (f"first (char) exit {a.returncode}{', ' + first[-1][:60] if first else ''}"
                        f"; the directory holds a {holds} dataset")


def case_kill(r):
    out = os.path.join(r.work, "killed")
    big = os.path.join(r.work, "big.txt")
    with open(corpus(r.work, 1_115_394)) as f, open(big, "w") as g:
        g.write(f.read() * 3)
    proc = subprocess.Popen([sys.executable, "-m", "tfllm.prepare", f"--data={big}",
                             f"--output={out}", "--shard_chars=100000", "--workers=2"],
                            cwd=r.work, env=r.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while not os.path.exists(os.path.join(out, "shard-00003.bin")) and proc.poll() is None:
        time.sleep(0.01)
    children = set()
    for task in os.listdir(f"/proc/{proc.pid}/task"):
        with open(f"/proc/{proc.pid}/task/{task}/children") as f:
            children.update(int(c) for c in f.read().split())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(5)
    alive = [pid for pid in children if os.path.exists(f"/proc/{pid}")
             and open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    return (-9, 0, False, ""), f"{len(alive)} of {len(children)} child processes alive 5 s after kill -9"


def case_many_shards(r):
    code = ("import resource,sys; resource.setrlimit(resource.RLIMIT_NOFILE,(256,256));"
            "from tfllm.data.preparation import prepare;"
            "d=prepare(sys.argv[1],sys.argv[2],shard_chars=100,workers=1,print_fn=None,progress=False);"
            "print(len(d.manifest['shards']), len(d.tokens[:]))")
    proc = r.python(code, corpus(r.work, 60_000), os.path.join(r.work, "many"))
    return summary(proc), f"shards under ulimit -n 256: {proc.stdout.strip() or 'none read'}"


def case_inside(r):
    src = os.path.join(r.work, "src")
    os.makedirs(src, exist_ok=True)
    shutil.copy(corpus(r.work), os.path.join(src, "a.txt"))
    proc = r.run("tfllm.prepare", f"--data={src}", f"--output={src}/prepared")
    left = os.path.exists(os.path.join(src, "prepared"))
    return summary(proc), f"output directory left in the corpus: {left}"


def copied_llama(r, name, source=LLAMA):
    path = os.path.join(r.work, name)
    shutil.copytree(source, path)
    return path


def case_hf(r, name, damage, source=LLAMA):
    path = copied_llama(r, name, source)
    damage(path)
    start = time.time()
    proc = r.run("tfllm.train", "--config=tiny_test", f"--init_from=hf:{path}",
                 "--config.train.steps=2", "--config.sample.length=0", f"--run_dir={r.work}/{name}_run")
    return summary(proc), f"{time.time() - start:.1f} s"


def not_object(path):
    with open(os.path.join(path, "config.json"), "w") as f:
        f.write("[1, 2]")


def truncate_weights(path):
    file = os.path.join(path, "model.safetensors")
    with open(file, "rb") as f:
        data = f.read()
    with open(file, "wb") as f:
        f.write(data[:5000])


def garbage_weights(path):
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!garbage!" + b"\x00" * 64)


def more_ids(path):
    from safetensors.numpy import load_file, save_file

    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    vocab = config["vocab_size"]
    config["vocab_size"] = vocab - 10
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    tensors = load_file(os.path.join(path, "model.safetensors"))
    save_file({k: (v[:vocab - 10] if v.shape[0] == vocab else v) for k, v in tensors.items()},
              os.path.join(path, "model.safetensors"))


def nan_weights(path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(os.path.join(path, "model.safetensors"))
    norm = next(name for name in tensors if name.endswith("ln_f.weight"))
    tensors[norm][0] = float("nan")
    save_file(tensors, os.path.join(path, "model.safetensors"))


def case_plot(r):
    plot = os.path.join(r.work, "missing", "lr.png")
    proc = r.run("tfllm.lr_find", "--config=tiny_test", "--steps=10", f"--plot={plot}")
    return summary(proc), f"table printed: {'smoothed loss' in proc.stdout}; plot written: {os.path.exists(plot)}"


def case_skip_all(r):
    src = os.path.join(r.work, "latin")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "a.txt"), "wb") as f:
        f.write("caf\xe9\n".encode("latin-1"))
    return summary(r.run("tfllm.prepare", f"--data={src}", f"--output={r.work}/latin_out",
                         "--skip_non_utf8")), ""


def case_sp_vocab(r):
    small = os.path.join(r.work, "small.txt")
    with open(small, "w") as f:
        f.write("a tiny corpus\n" * 20)
    return summary(r.run("tfllm.prepare", f"--data={small}", f"--output={r.work}/sp_out",
                         "--tokenizer=sentencepiece", "--vocab_size=5000")), ""


def case_model_flag(r):
    return summary(r.run("tfllm.train", "--config=tiny_test", f"--init_from=hf:{LLAMA}",
                         "--config.model.num_layers=3", "--config.train.steps=2",
                         "--config.sample.length=0", f"--run_dir={r.work}/flag_run")), ""


def case_hf_without_prefix(r):
    return summary(r.run("tfllm.train", "--config=tiny_test", f"--init_from={LLAMA}",
                         f"--run_dir={r.work}/noprefix_run")), ""


def case_lora_alpha(r):
    proc = r.run("tfllm.train", "--config=tiny_test", "--config.train.lora_rank=2",
                 "--config.train.lora_alpha=0", "--config.sample.length=0",
                 f"--run_dir={r.work}/alpha_run")
    return summary(proc), ""


def case_lora_random(r):
    proc = r.run("tfllm.train", "--config=tiny_test", "--config.train.lora_rank=2",
                 "--config.sample.length=0", f"--run_dir={r.work}/lora_random")
    said = [line for line in proc.stdout.splitlines() if line.startswith("LoRA")]
    return summary(proc), f"start-up line: {said[0][:120] if said else 'none'}"


def case_warmup(r):
    proc = r.run("tfllm.train", "--config=tiny_test", "--config.train.warmup_steps=50",
                 "--config.sample.length=0", f"--run_dir={r.work}/warmup")
    said = [line for line in proc.stdout.splitlines() if "peak" in line]
    return summary(proc), f"said: {said[0][:100] if said else 'nothing'}"


def case_export(r):
    base = copied_llama(r, "instruct")
    with open(os.path.join(base, "config.json")) as f:
        config = json.load(f)
    config.update(max_position_embeddings=8192, bos_token_id=1, eos_token_id=2)
    with open(os.path.join(base, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(base, "chat_template.jinja"), "w") as f:
        f.write("{{ messages }}")
    run_dir = f"{r.work}/instruct_run"
    r.run("tfllm.train", "--config=tiny_test", f"--init_from=hf:{base}", "--config.train.steps=2",
          "--config.model.max_length=32", "--config.sample.length=0", f"--run_dir={run_dir}")
    proc = r.run("tfllm.export", f"--run_dir={run_dir}", "--format=hf")
    with open(os.path.join(run_dir, "export", "hf", "config.json")) as f:
        out = json.load(f)
    kept = os.path.exists(os.path.join(run_dir, "export", "hf", "chat_template.jinja"))
    return summary(proc), (f"max_position_embeddings {out.get('max_position_embeddings')} (8192), "
                           f"bos {out.get('bos_token_id')} (1), chat template kept: {kept}")


CASES = {
    "shard truncated to 30,000 bytes, prepare rerun": lambda r: case_truncated(r, 30_000),
    "shard truncated to 30,001 bytes, prepare rerun": lambda r: case_truncated(r, 30_001),
    "shard corrupted at its size (id 65,535), train": case_corrupt,
    "two prepares into one new output (char, byte)": lambda r: case_two_prepares(r, "byte"),
    "two identical prepares into one new output": lambda r: case_two_prepares(r, "char"),
    "kill -9 of prepare with 2 workers": case_kill,
    "300+ shards under ulimit -n 256": case_many_shards,
    "--output inside the --data folder": case_inside,
    "hf config.json not an object": lambda r: case_hf(r, "notobject", not_object),
    "hf model.safetensors truncated": lambda r: case_hf(r, "truncated", truncate_weights),
    "hf model.safetensors garbage header": lambda r: case_hf(r, "garbage", garbage_weights),
    "hf tokenizer.json with more ids than the embedding": lambda r: case_hf(r, "moreids", more_ids,
                                                                           GPT2),
    "hf weights holding a NaN": lambda r: case_hf(r, "nan", nan_weights, GPT2),
    "lr_find --plot into a missing directory": case_plot,
    "--skip_non_utf8 with every file skipped": case_skip_all,
    "sentencepiece vocab too large in prepare": case_sp_vocab,
    "--init_from=hf: with --config.model.num_layers": case_model_flag,
    "a Hugging Face directory without hf:": case_hf_without_prefix,
    "lora_alpha=0": case_lora_alpha,
    "LoRA without --init_from": case_lora_random,
    "warm-up longer than the run": case_warmup,
    "export --format=hf of an imported Instruct model": case_export,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", default=HERE)
    parser.add_argument("--only", default="", help="run the cases whose name holds this")
    args = parser.parse_args()
    print("| case | exit | stderr lines | traceback | last line / what was left |")
    print("| --- | --- | --- | --- | --- |")
    for name, case in CASES.items():
        if args.only not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="tfllm-case-") as work:
            try:
                (code, lines, tb, last), note = case(Runner(args.checkout, work))
            except Exception as e:  # the case itself could not be set up on this checkout
                code, lines, tb, last, note = "-", "-", "-", "", f"case failed: {e!r}"[:160]
            print(f"| {name} | {code} | {lines} | {'yes' if tb else 'no'} | "
                  f"{(note + '; ' if note else '') + last.replace('|', '/')} |", flush=True)


if __name__ == "__main__":
    main()
