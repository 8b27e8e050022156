"""tfllm.prepare: shards that join to the corpus's tokens, documents kept apart, a rerun that
finishes a killed run byte for byte, and one-line errors that leave nothing behind."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, run
from tfllm.data import DEFAULT_CORPUS, read_corpus
from tfllm.data.pipeline import eval_windows
from tfllm.data.prepared_dataset import DatasetError, PreparedDataset, TokenView
from tfllm.data.preparation import prepare
from tfllm.errors import UserError


def quiet_prepare(source, output, **kwargs):
    return prepare(str(source), str(output), print_fn=None, progress=False, **kwargs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three documents, one of them empty and one cut into many shards."""
    root = tmp_path_factory.mktemp("corpus")
    text = open(DEFAULT_CORPUS).read()
    (root / "a.txt").write_text(text[:50_000])
    (root / "b.txt").write_text("")
    (root / "c.txt").write_text(text[50_000:90_000])
    return root


def test_the_bundled_corpus_keeps_its_tokens_and_published_split(tmp_path):
    data = quiet_prepare(DEFAULT_CORPUS, tmp_path / "out", shard_chars=100_000, workers=2)
    text = read_corpus(DEFAULT_CORPUS)
    assert len(data.manifest["shards"]) >= 11
    np.testing.assert_array_equal(np.asarray(data.tokens), data.tokenizer.encode(text))
    assert len(data.val) == 111_540 and data.manifest["dtype"] == "<u2"


@pytest.mark.parametrize("tokenizer", ["char", "byte", "sentencepiece"])
def test_shards_join_to_the_documents_encoded_whole_with_separators(folder, tmp_path, tokenizer):
    data = quiet_prepare(folder, tmp_path / "out", tokenizer=tokenizer, vocab_size=400,
                         shard_chars=7_000, workers=2)
    tok = data.tokenizer
    docs = [(folder / name).read_text() for name in ("a.txt", "c.txt")]  # b.txt is empty
    expected = np.concatenate([tok.encode(docs[0]), tok.document_separator(), tok.encode(docs[1])])
    assert len(data.manifest["shards"]) > 10 and data.manifest["documents"] == 2
    np.testing.assert_array_equal(np.asarray(data.tokens), expected)
    if tokenizer == "sentencepiece":  # the end-of-text token, not a newline
        assert tok.decode(tok.document_separator()) == "" and data.manifest["separator"] == [2]
    else:  # documents joined by a newline, as tfllm always read a folder
        assert tok.decode(np.asarray(data.tokens)) == read_corpus(str(folder))


def test_token_views_index_across_shards_like_one_array(folder, tmp_path):
    data = quiet_prepare(folder, tmp_path / "out", shard_chars=5_000)
    whole = np.asarray(data.tokens)
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(data.train) - 65, 16)[:, None] + np.arange(65)
    np.testing.assert_array_equal(data.train[index], whole[index])
    np.testing.assert_array_equal(data.val[10:4_000], whole[len(data.train) + 10:len(data.train) + 4_000])
    assert isinstance(data.val, TokenView) and len(data.val) + len(data.train) == len(whole)
    with pytest.raises(IndexError):
        data.val[np.array([len(data.val)])]


def test_evaluation_budget_reads_the_same_spread_windows(tmp_path):
    tokens = np.arange(100_000) % 50
    whole = eval_windows(tokens, 64, 8)
    assert whole[2].sum() == len(tokens) - 1  # no budget: every target once
    a, b = eval_windows(tokens, 64, 8, max_tokens=6_400), eval_windows(tokens, 64, 8, max_tokens=6_400)
    assert a[2].sum() == 6_400 and all(np.array_equal(x, y) for x, y in zip(a, b))
    starts = a[0][:100, 0]
    assert starts[0] == 0 and starts[-1] > 90_000 % 50  # spread over the whole split
    assert eval_windows(tokens, 64, 8, max_tokens=10 ** 6)[2].sum() == len(tokens) - 1


def test_a_rerun_of_a_finished_dataset_reuses_it_and_another_corpus_is_refused(folder, tmp_path):
    out = tmp_path / "out"
    first = quiet_prepare(folder, out)
    assert quiet_prepare(folder, out).fingerprint == first.fingerprint
    with pytest.raises(UserError, match="prepared from another corpus or with another tokenizer"):
        quiet_prepare(folder, out, tokenizer="byte")


def test_a_lost_or_truncated_shard_is_named_and_a_rerun_rewrites_it(folder, tmp_path):
    out = tmp_path / "out"
    quiet_prepare(folder, out, shard_chars=20_000)
    shard = out / "shard-00001.bin"
    good = shard.read_bytes()
    shard.write_bytes(good[:100])
    with pytest.raises(DatasetError, match=r"shard-00001.bin of the prepared dataset is truncated "
                                           r"\(100 of .* bytes\); rerun the tfllm.prepare"):
        PreparedDataset(str(out))
    shard.unlink()
    with pytest.raises(DatasetError, match="is missing"):
        PreparedDataset(str(out))
    quiet_prepare(folder, out, shard_chars=20_000)
    assert shard.read_bytes() == good


def test_a_killed_prepare_finishes_on_rerun_byte_for_byte(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(open(DEFAULT_CORPUS).read() * 3)
    args = [f"--data={corpus}", "--tokenizer=sentencepiece", "--vocab_size=2000",
            "--shard_chars=200000", "--workers=1", "--progress=false"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tfllm.prepare", *args, f"--output={killed}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (killed / "shard-00002.bin").exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "manifest.json").exists(), "finished before it was killed"
    with pytest.raises(DatasetError, match="unfinished tfllm.prepare output; rerun"):
        PreparedDataset(str(killed))  # no partial dataset is ever read
    assert run("tfllm.prepare", *args, f"--output={killed}").returncode == 0
    whole = tmp_path / "whole"
    assert run("tfllm.prepare", *args, f"--output={whole}").returncode == 0
    names = sorted(os.listdir(whole))
    assert sorted(os.listdir(killed)) == names and len(names) > 10
    for name in names:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_non_utf8_files_are_named_and_can_be_skipped(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "good.txt").write_text("hello world\n" * 100)
    (tmp_path / "src" / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    out = tmp_path / "out"
    proc = run("tfllm.prepare", f"--data={tmp_path / 'src'}", f"--output={out}")
    assert_one_line_error(proc, "latin1.txt is not UTF-8 text (byte 3", "--skip_non_utf8")
    assert not out.exists()
    data = quiet_prepare(tmp_path / "src", out, skip_non_utf8=True)
    assert data.manifest["source"]["skipped_files"] == [str(tmp_path / "src" / "latin1.txt")]
    assert data.tokenizer.decode(np.asarray(data.tokens)) == "hello world\n" * 100


@pytest.mark.parametrize("case", ["no files", "output is a file", "output not writable",
                                  "workers 0", "unfinished dataset given to train"])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("some text\n" * 50)
    (tmp_path / "file").write_text("x")
    module, args, phrases = {
        "no files": ("tfllm.prepare", [f"--data={tmp_path / 'none' / '*.txt'}"], ["names no file"]),
        "output is a file": ("tfllm.prepare", [f"--data={good}", f"--output={tmp_path / 'file'}"],
                             ["is a file; pass a directory as --output"]),
        "output not writable": ("tfllm.prepare", [f"--data={good}", "--output=/proc/tfllm/out"],
                                ["cannot be created", "pass a writable --output"]),
        "workers 0": ("tfllm.prepare", [f"--data={good}", "--workers=0"],
                      ["--workers=0 is not allowed: pass 1 or more"]),
        "unfinished dataset given to train": (
            "tfllm.train", ["--config=tiny_test", f"--config.data.source={tmp_path / 'unfinished'}",
                            f"--run_dir={tmp_path / 'run'}"],
            ["unfinished tfllm.prepare output; rerun"]),
    }[case]
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / ".prepare.json").write_text(json.dumps({}))
    if module == "tfllm.prepare" and not any(a.startswith("--output") for a in args):
        args.append(f"--output={tmp_path / 'out'}")
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(run(module, *args), *phrases)
    assert sorted(os.listdir(tmp_path)) == before
