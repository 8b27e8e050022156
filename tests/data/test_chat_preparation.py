"""Prepared chat datasets: .jsonl rows encoded once (in parallel, resumable, checked) into
shards of ids, loss masks and example boundaries that give the same examples, splits and
windows as the rows encoded one by one in memory."""

import json
import os
import pathlib

import numpy as np
import pytest

from tfllm.chat.records import read_examples
from tfllm.chat.template import CHATML
from tfllm.data import chat_preparation
from tfllm.data.chat_examples import (ExampleStore, chat_encoder, encode_example,
                                      example_index, split_examples)
from tfllm.data.chat_preparation import prepare_chat
from tfllm.data.packing import pack
from tfllm.data.prepared_chat import PreparedChatDataset, is_prepared_chat
from tfllm.data.prepared_dataset import DatasetError, PreparedDataset
from tfllm.errors import UserError

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "chat"
SMOLLM2 = (FIXTURES / "templates" / "smollm2.jinja").read_text()


@pytest.fixture(scope="module")
def tokenizer():
    from tfllm.tokenizers.hf_tokenizer import HFTokenizer

    tokenizer = HFTokenizer((FIXTURES / "tokenizer.json").read_text(encoding="utf-8"),
                            vocab_size=640)
    tokenizer.eos_id = tokenizer.special_tokens()["<|im_end|>"]
    return tokenizer


def rows(count, seed=0):
    """Rows of every kind, of lengths from a few tokens to a few hundred."""
    rng = np.random.default_rng(seed)
    words = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "über", "日本"]
    out = []
    for i in range(count):
        said = " ".join(rng.choice(words, int(rng.integers(1, 60))))
        kind = i % 4
        if kind == 0:
            out.append({"messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": said},
                                     {"role": "assistant", "content": said[::-1]}]})
        elif kind == 1:
            out.append({"prompt": said, "completion": " " + said.upper()})
        elif kind == 2:
            out.append({"instruction": "Reverse it.", "input": said, "output": said[::-1]})
        else:
            out.append({"text": said})
    return out


def write_rows(path, items):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items),
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_rows(tmp_path_factory.mktemp("rows") / "rows.jsonl", rows(120))


@pytest.fixture(scope="module")
def prepared(source, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "data"
    return prepare_chat(source, str(out), tokenizer, SMOLLM2, workers=1, print_fn=None,
                        progress=False)


def encoded_in_memory(source, tokenizer, template=SMOLLM2):
    encoder = chat_encoder("assistant", tokenizer, template)
    return [encode_example(encoder, tokenizer, example) for _, example in read_examples(source)]


def test_prepared_examples_equal_the_rows_encoded_one_by_one(prepared, source, tokenizer):
    expected = encoded_in_memory(source, tokenizer)
    store = prepared.store
    assert len(store) == len(expected) == 120
    for i, (ids, mask) in enumerate(expected):
        got_ids, got_mask = store.span(i, len(ids))
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_array_equal(got_mask, mask)
        assert (store.lengths[i], store.first_trained[i], store.trained[i]) == example_index(mask)
    assert prepared.manifest["trained_tokens"] == sum(int(m[1:].sum()) for _, m in expected)
    assert is_prepared_chat(prepared.directory)


def test_windows_and_split_equal_those_made_in_memory(prepared, source, tokenizer):
    train, val = prepared.split()
    again = split_examples(120, 0.1, 1337)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(val, again[1])
    assert len(val) == 12 and not set(train) & set(val)
    memory = ExampleStore.from_examples(encoded_in_memory(source, tokenizer))
    for length in (48, 300):  # examples cut to the window, and whole
        disk, ram = pack(prepared.store, length, True, train), pack(memory, length, True, train)
        assert (disk.examples, disk.truncated, disk.dropped) == (
            ram.examples, ram.truncated, ram.dropped)
        assert disk.trained_tokens == ram.trained_tokens
        for a, b in zip(disk.arrays(), ram.arrays()):
            np.testing.assert_array_equal(a, b)
    assert pack(prepared.store, 48, True, train).truncated > 0


def test_workers_and_shards_give_the_same_examples(prepared, source, tokenizer, tmp_path):
    out = prepare_chat(source, str(tmp_path / "data"), tokenizer, SMOLLM2, workers=2,
                       shard_chars=2000, print_fn=None, progress=False)
    assert len(out.manifest["shards"]) > 3
    for a, b in ((out.store.ids, prepared.store.ids), (out.store.mask, prepared.store.mask)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(out.store.starts, prepared.store.starts)


def test_a_stopped_preparation_finishes_keeping_the_shards_written(source, tokenizer,
                                                                   tmp_path, monkeypatch):
    whole = prepare_chat(source, str(tmp_path / "whole"), tokenizer, SMOLLM2, workers=1,
                         shard_chars=2000, print_fn=None, progress=False)
    out = str(tmp_path / "data")
    real = chat_preparation._encode_unit

    def stop_at_third(index, unit):
        if index == 2:
            raise KeyboardInterrupt
        return real(index, unit)

    monkeypatch.setattr(chat_preparation, "_encode_unit", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        prepare_chat(source, out, tokenizer, SMOLLM2, workers=1, shard_chars=2000,
                     print_fn=None, progress=False)
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    with pytest.raises(DatasetError, match="unfinished tfllm.prepare output"):
        PreparedChatDataset(out)
    kept = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out)
            if n.endswith("-00000.bin") or n.endswith("-00001.bin")}
    assert len(kept) == 6
    monkeypatch.setattr(chat_preparation, "_encode_unit", real)
    done = prepare_chat(source, out, tokenizer, SMOLLM2, workers=1, shard_chars=2000,
                        print_fn=None, progress=False)
    assert done.fingerprint == whole.fingerprint
    assert {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in kept} == kept


def test_a_damaged_mask_is_named_and_rewritten_by_a_rerun(source, tokenizer, tmp_path):
    out = str(tmp_path / "data")
    first = prepare_chat(source, out, tokenizer, SMOLLM2, workers=1, print_fn=None,
                         progress=False)
    path = os.path.join(out, "mask-00000.bin")
    data = bytearray(open(path, "rb").read())
    data[7] ^= 1  # one token's mask flipped: the loss would silently move
    open(path, "wb").write(bytes(data))
    with pytest.raises(DatasetError, match="mask-00000.bin of the prepared dataset is damaged"):
        PreparedChatDataset(out)
    again = prepare_chat(source, out, tokenizer, SMOLLM2, workers=1, print_fn=None,
                         progress=False)
    assert again.fingerprint == first.fingerprint
    with open(os.path.join(out, "chat_template.jinja"), "a") as f:
        f.write("{# edited #}")
    with pytest.raises(DatasetError, match="chat_template.jinja is changed"):
        PreparedChatDataset(out)


def test_a_malformed_row_names_its_file_and_line_and_leaves_nothing(tokenizer, tmp_path):
    items = [json.dumps(r) for r in rows(60)]
    items[47] = '{"messages": [{"role": "robot", "content": "hi"}]}'
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(items) + "\n")
    out = tmp_path / "data"
    with pytest.raises(UserError, match=f"{path}:48: the row has message 0 with role 'robot'"):
        prepare_chat(str(path), str(out), tokenizer, SMOLLM2, workers=2, shard_chars=1500,
                     print_fn=None, progress=False)
    assert not out.exists()


def test_the_template_and_settings_make_another_dataset(prepared, source, tokenizer, tmp_path):
    other = prepare_chat(source, str(tmp_path / "chatml"), tokenizer, CHATML, workers=1,
                         print_fn=None, progress=False)
    assert other.fingerprint != prepared.fingerprint
    assert other.template_text == CHATML
    with pytest.raises(UserError, match="holds a dataset prepared from another"):
        prepare_chat(source, prepared.directory, tokenizer, CHATML, print_fn=None,
                     progress=False)
    everything = prepare_chat(source, str(tmp_path / "all"), tokenizer, SMOLLM2,
                              train_on="all", print_fn=None, progress=False)
    assert everything.manifest["trained_tokens"] > prepared.manifest["trained_tokens"]


def test_text_and_chat_datasets_refuse_each_others_reader(prepared, tmp_path):
    with pytest.raises(DatasetError, match="is a prepared chat dataset"):
        PreparedDataset(prepared.directory)
    from tfllm.data.preparation import prepare

    corpus = tmp_path / "text.txt"
    corpus.write_text("plain text, not conversations\n" * 20)
    text = prepare(str(corpus), str(tmp_path / "text"), "byte", print_fn=None, progress=False)
    with pytest.raises(DatasetError, match="is a prepared text dataset, not chat data"):
        PreparedChatDataset(text.directory)
