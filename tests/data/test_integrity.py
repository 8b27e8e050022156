"""Prepared datasets stay whole: a damaged shard is named when the dataset is opened and
rewritten (never adopted) by a rerun; a dataset being written is locked; workers end with
their parent; a full disk is one line; any number of shards reads under a small fd limit."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.cli_helpers import run
from tfllm.data import DEFAULT_CORPUS
from tfllm.data.prepared_dataset import DatasetError, PreparedDataset
from tfllm.data.preparation import prepare
from tfllm.errors import UserError
from tfllm.files import DirectoryLock


def quiet_prepare(source, output, **kwargs):
    return prepare(str(source), str(output), print_fn=None, progress=False, **kwargs)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text(open(DEFAULT_CORPUS).read()[:60_000])
    return path


@pytest.fixture
def prepared(corpus, tmp_path):
    """A dataset of several shards, and each shard's bytes as written."""
    out = tmp_path / "out"
    data = quiet_prepare(corpus, out, shard_chars=20_000)
    return out, data.manifest, {p.name: p.read_bytes() for p in out.glob("shard-*.bin")}


@pytest.mark.parametrize("size", [30_000, 30_001])
def test_a_truncated_shard_is_rewritten_by_a_rerun_and_the_manifest_never_shrinks(
        prepared, corpus, size):
    out, manifest, shards = prepared
    shard = out / "shard-00001.bin"
    shard.write_bytes(shards[shard.name][:size])
    with pytest.raises(DatasetError, match="shard-00001.bin of the prepared dataset is truncated"):
        PreparedDataset(str(out))
    again = quiet_prepare(corpus, out, shard_chars=20_000)
    assert again.manifest == manifest
    assert {p.name: p.read_bytes() for p in out.glob("shard-*.bin")} == shards


def test_a_shard_damaged_at_its_size_is_named_on_open_and_rewritten(prepared, corpus):
    out, manifest, shards = prepared
    shard = out / "shard-00002.bin"
    damaged = bytearray(shards[shard.name])
    damaged[10:12] = (65535).to_bytes(2, "little")  # an id no 62-id tokenizer has
    shard.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match=r"shard-00002.bin of the prepared dataset is damaged "
                                           r"\(its bytes do not match the manifest's sha256\); "
                                           "rerun the tfllm.prepare command"):
        PreparedDataset(str(out))
    assert quiet_prepare(corpus, out, shard_chars=20_000).manifest == manifest
    assert shard.read_bytes() == shards[shard.name]


def test_an_id_beyond_the_vocabulary_is_named_even_with_a_matching_checksum(prepared):
    import hashlib

    out, manifest, shards = prepared
    damaged = bytearray(shards["shard-00000.bin"])
    damaged[0:2] = (65535).to_bytes(2, "little")
    (out / "shard-00000.bin").write_bytes(bytes(damaged))
    manifest["shards"][0]["sha256"] = hashlib.sha256(bytes(damaged)).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="holds token id 65,535, the tokenizer has"):
        PreparedDataset(str(out))


def test_a_dataset_being_written_is_locked(corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with DirectoryLock(str(out), "tfllm.prepare", "is being prepared by", "wait"):
        with pytest.raises(UserError, match=r"is being prepared by tfllm.prepare \(pid "
                                            rf"{os.getpid()}\); wait for it to finish, or pass "
                                            "another --output"):
            quiet_prepare(corpus, out)
    assert os.listdir(out) == [".lock"]  # nothing of the other's touched
    quiet_prepare(corpus, out)
    assert ".lock" not in os.listdir(out)  # a finished dataset holds only its own files


def test_an_output_inside_its_source_is_refused_before_any_work(corpus, tmp_path):
    with pytest.raises(UserError, match="is inside --data=.*whose files would be read as "
                                        "corpus text"):
        quiet_prepare(corpus.parent, corpus.parent / "prepared")
    assert not (corpus.parent / "prepared").exists()


def test_every_file_skipped_says_why(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="every file of corpus .* was skipped as not UTF-8 "
                                        r"\(1 file\(s\), e.g. .*latin1.txt\)"):
        quiet_prepare(tmp_path / "src", tmp_path / "out", skip_non_utf8=True)
    assert not (tmp_path / "out").exists()


def test_the_sentencepiece_size_error_names_prepares_flag(tmp_path):
    (tmp_path / "small.txt").write_text("a tiny corpus\n" * 20)
    with pytest.raises(UserError, match="--vocab_size=") as error:
        quiet_prepare(tmp_path / "small.txt", tmp_path / "out", tokenizer="sentencepiece",
                      vocab_size=5000, workers=1)
    assert "--config.data" not in str(error.value)


MANY_SHARDS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
from tfllm.data.preparation import prepare
data = prepare(sys.argv[1], sys.argv[2], shard_chars=100, workers=1, print_fn=None,
               progress=False)
tokens = data.tokenizer.decode(data.tokens[:])
assert tokens == open(sys.argv[1]).read(), "the shards do not join to the corpus"
print(len(data.manifest["shards"]))
"""


def test_more_shards_than_file_descriptors_prepare_and_read(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(open(DEFAULT_CORPUS).read()[:40_000])
    proc = subprocess.run([sys.executable, "-c", MANY_SHARDS, str(corpus), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout) > 300  # shards, under a limit of 128 descriptors


def _children(pid):
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.update(int(c) for c in f.read().split())
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_killed_prepare_leaves_no_process_and_its_rerun_is_byte_identical(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(open(DEFAULT_CORPUS).read() * 3)
    args = [f"--data={corpus}", "--tokenizer=char", "--shard_chars=100000", "--workers=2",
            "--progress=false"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tfllm.prepare", *args, f"--output={killed}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (killed / "shard-00003.bin").exists() and proc.poll() is None:
        time.sleep(0.01)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert workers, "no worker process was running"
    deadline = time.time() + 15
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "workers outlived tfllm.prepare"
    assert run("tfllm.prepare", *args, f"--output={killed}").returncode == 0
    whole = tmp_path / "whole"
    assert run("tfllm.prepare", *args, f"--output={whole}").returncode == 0
    names = sorted(os.listdir(whole))
    assert sorted(os.listdir(killed)) == names
    for name in names:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_a_rerun_finishes(small_disk, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(open(DEFAULT_CORPUS).read())  # 2.2 MB of shards, on a 600 KB disk
    args = [f"--data={corpus}", "--shard_chars=100000", "--workers=2", "--progress=false",
            f"--output={small_disk / 'out'}"]
    proc = run("tfllm.prepare", *args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and lines == [
        f"tfllm.prepare: error: no space left on the device of {small_disk / 'out'} while "
        "preparing it; free some space and rerun the same command: it keeps the shards "
        "already written."], proc.stderr
    assert proc.stdout.startswith("preparing ")  # the start-up line, then nothing
    assert not [n for n in os.listdir(small_disk / "out") if n.endswith(".tmp")]
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    assert run("tfllm.prepare", *args).returncode == 0
    data = PreparedDataset(str(small_disk / "out"))
    assert data.tokenizer.decode(np.asarray(data.tokens)) == corpus.read_text()
