"""Prepares chat and instruction data (.jsonl) once: rows rendered with a chat template,
encoded with their loss mask in parallel worker processes, written as shards that
training reads through memory maps (`PreparedChatDataset`).

    DIR/
      manifest.json        "kind": "chat"; what it was made from (files, tokenizer,
                           template, train_on, fields), its counts and every file's sha256
      tokenizer.json       the model's tokenizer
      chat_template.jinja  the template the rows were rendered with
      shard-00000.bin      the examples' token ids end to end (as a text dataset's shards)
      mask-00000.bin       their loss mask, a byte per token (1: trained)
      index-00000.bin      per example: length, first trained position, trained targets
      ...                  (uint32 each)

Rows are grouped into shards of about `shard_chars` characters of JSON, each encoded by
one worker and written atomically; the manifest is written last, and a rerun after a kill
keeps the shards already written and checked, as text preparation does
(tfllm.data.preparation, whose lock, progress file and worker pool this shares).
Which examples are held out for validation is a seeded shuffle of whole examples,
fixed here (`split_seed`), so every run on the dataset validates on the same ones.
"""

import hashlib
import os
import shutil
import time

import numpy as np

from tfllm.chat.records import parse_fields, parse_line
from tfllm.data import preparation as prep
from tfllm.data.chat_examples import (INDEX_DTYPE, chat_encoder, encode_example,
                                      example_index)
from tfllm.data.corpus import corpus_files, describe_source
from tfllm.data.prepared_chat import (KIND, TEMPLATE_FILE, PreparedChatDataset,
                                      chat_fingerprint)
from tfllm.data.prepared_dataset import (FORMAT, MANIFEST_FILE, PROGRESS_FILE, record_verified,
                                         shard_check, shard_dtype)
from tfllm.errors import UserError
from tfllm.files import write_json, write_text

CHAT_SUFFIX = ".jsonl"
# The validation examples' shuffle by default: tfllm.train's default seed (configs/base.py),
# so a run on the prepared data validates on the examples a run on the .jsonl would.
SPLIT_SEED = 1337


def prepare_chat(source, output, tokenizer, template_text, train_on="assistant",
                 chat_fields="", val_fraction=0.1, split_seed=SPLIT_SEED, workers=None,
                 shard_chars=prep.SHARD_CHARS, flags=None, progress=True, print_fn=print,
                 replace=False):
    """Encodes the .jsonl rows of `source` into the prepared chat dataset `output`.

    Args:
        source: a .jsonl file, a folder or a glob of them.
        output: the directory to write; a finished one made alike is returned as it is,
            an unfinished one is finished.
        tokenizer: a pretrained model's tokenizer (HFTokenizer: it has special tokens).
        template_text: the Jinja chat template rendering each conversation.
        train_on: "assistant" (the loss on the answers) or "all".
        chat_fields: other field names ("messages=dialog,role=speaker").
        val_fraction: the fraction of examples held out for validation, at least one
            when above 0.
        split_seed: the seed of the shuffle choosing them.
        workers: encoding processes; None = one per core (one for a single shard).
        flags: the names the caller's errors give each setting (preparation.PREPARE_FLAGS).
        replace: remake an `output` made from other data or settings (a run's own copy).

    Returns:
        the PreparedChatDataset.

    Example:
        >>> data = prepare_chat("chats/*.jsonl", "data/chats", tokenizer, template)
        >>> len(data.store), data.describe()
    """
    flags = {**prep.PREPARE_FLAGS, **(flags or {})}
    files, total, workers = _check_request(source, output, tokenizer, template_text, train_on,
                                           chat_fields, val_fraction, workers, shard_chars,
                                           flags)
    key = request_key(source, tokenizer, template_text, train_on, chat_fields, val_fraction,
                      split_seed, shard_chars)
    settings = (files, total, tokenizer, template_text, workers, shard_chars, progress,
                print_fn)
    return prep.locked_output(output, flags, lambda created: _prepare_locked(
        output, key, settings, flags, replace, created))


def request_key(source, tokenizer, template_text, train_on="assistant", chat_fields="",
                val_fraction=0.1, split_seed=SPLIT_SEED, shard_chars=prep.SHARD_CHARS):
    """What a prepared chat dataset is made from (prepare_chat's arguments): a finished one
    with the same key is what prepare_chat would make."""
    return {"format": FORMAT, "kind": KIND, "source": source,
            "source_sha256": hashlib.sha256(describe_source(source).encode()).hexdigest(),
            "tokenizer": {"fingerprint": tokenizer.fingerprint()},
            "template_sha256": hashlib.sha256(template_text.encode()).hexdigest(),
            "train_on": train_on, "chat_fields": chat_fields, "val_fraction": val_fraction,
            "split_seed": int(split_seed), "shard_chars": shard_chars}


def _check_request(source, output, tokenizer, template_text, train_on, chat_fields,
                   val_fraction, workers, shard_chars, flags):
    """(the .jsonl files, the number of workers: one for a single shard); UserError for a
    request that cannot be prepared (checked before anything is written)."""
    if not 0 <= val_fraction < 1:
        raise UserError(f"{flags.get('val_fraction', '--val_fraction')}={val_fraction} is not "
                        "allowed: chat data holds out a fraction from 0 (none) up to 1.")
    files = corpus_files(source, flags["source"])
    others = [f for f in files if not f.endswith(CHAT_SUFFIX)]
    if others:
        raise UserError(f"{flags['source']}={source} mixes chat data (.jsonl) with other files "
                        f"({others[0]}); pass .jsonl files only, or text only.")
    parse_fields(chat_fields)
    chat_encoder(train_on, tokenizer, template_text)  # a template that cannot serve: now
    workers = prep.check_output(source, output, workers, flags)
    total = sum(os.path.getsize(f) for f in files)
    return files, total, 1 if total <= shard_chars else workers  # one task: no processes


def _prepare_locked(output, key, settings, flags, replace, created):
    """prepare_chat(), with `output` locked."""
    files, total, tokenizer, template_text, workers, shard_chars, progress, print_fn = settings
    finished = prep._finished(output, key, flags, replace, PreparedChatDataset, dict)
    if finished is not None:
        return finished
    try:
        prep._start(output, key, flags)
        tokenizer.save(output)
        write_text(os.path.join(output, TEMPLATE_FILE), template_text)
        if print_fn:
            print_fn(f"preparing {key['source']} ({total / 1e6:,.1f} MB of chat data) into "
                     f"{output}")
        stats = _encode(files, output, tokenizer, template_text, key, workers, shard_chars,
                        total, progress)
        manifest = _write_manifest(output, key, tokenizer, stats, flags)
    except UserError:
        if created:  # bad input found while reading: nothing half-written is left
            shutil.rmtree(output, ignore_errors=True)
        raise
    record_verified(output, {e["file"]: (e["sha256"], e["max_id"]) for e in stats["shards"]})
    if print_fn:
        print_fn(f"prepared {output}: {manifest['examples']:,} examples, "
                 f"{manifest['tokens']:,} tokens ({manifest['trained_tokens']:,} trained) in "
                 f"{stats['seconds']:.1f} s ({workers} worker{'s' * (workers > 1)})")
    return PreparedChatDataset(output, flags["output"])


def _units(files, shard_chars):
    """The rows as shards to encode: lists of (file, line number, line), blank lines left
    out; UserError for a file that is not UTF-8."""
    unit, size = [], 0
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    if unit and size + len(line) > shard_chars:
                        yield unit
                        unit, size = [], 0
                    unit.append((path, number, line))
                    size += len(line)
        except UnicodeDecodeError as e:
            raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start:,}); "
                            "save it as UTF-8.") from None
    if unit:
        yield unit


def _encode(files, output, tokenizer, template_text, key, workers, shard_chars, total,
            progress):
    """Encodes every shard not yet written; {"shards": manifest entries, ...}."""
    dtype = shard_dtype(tokenizer.vocab_size)
    meter = prep.Progress(total, enabled=progress)
    results, start = {}, time.time()
    recorded = prep._done_shards(output)
    record = prep._Recorder(output, key, results, entry=lambda entry: entry)

    def tasks():
        for index, unit in enumerate(_units(files, shard_chars)):
            done = _written(output, recorded.get(index), dtype, index)
            if done is None:
                yield index, unit
                continue
            results[index] = done
            meter.add(done["bytes"], 0)

    def finished(result):
        results[result["shard"]] = result
        meter.add(result["bytes"], result["tokens"])
        record()

    init = (output, dtype.str, template_text, key["train_on"], key["chat_fields"])
    try:
        prep.run_tasks(tasks(), _encode_unit, workers, _init_worker, init, finished)
    finally:  # Ctrl-C or a bad row too: what is written whole is kept for the rerun
        record(force=True)
        meter.close()
    return {"shards": [results[i] for i in sorted(results)],
            "seconds": max(time.time() - start, 1e-9), "dtype": dtype.str}


_worker = {}


def _init_worker(output, dtype, template_text, train_on, chat_fields):
    from tfllm.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(output)
    _worker.update(tokenizer=tokenizer, output=output, dtype=np.dtype(dtype),
                   encoder=chat_encoder(train_on, tokenizer, template_text),
                   fields=parse_fields(chat_fields))
    prep._end_with_parent()


def file_names(index):
    """The ids, mask and index files of shard `index`."""
    return (prep.shard_name(index), f"mask-{index:05d}.bin", f"index-{index:05d}.bin")


def _encode_unit(index, unit):
    """Encodes one shard's rows and writes its three files atomically; its manifest entry
    (with its number as "shard")."""
    w = _worker
    ids, masks, rows = [], [], []
    for path, number, line in unit:
        example = parse_line(path, number, line, w["fields"])
        try:
            example_ids, mask = encode_example(w["encoder"], w["tokenizer"], example)
        except UserError as e:  # e.g. a template refusing this conversation
            raise UserError(f"{path}:{number}: {e}") from None
        ids.append(example_ids)
        masks.append(mask)
        rows.append(example_index(mask))
    tokens = np.concatenate(ids).astype(w["dtype"])
    names = file_names(index)
    arrays = (tokens, np.concatenate(masks).astype(np.uint8), np.asarray(rows, INDEX_DTYPE))
    shas = [_write(os.path.join(w["output"], n), a) for n, a in zip(names, arrays)]
    return {"file": names[0], "tokens": int(tokens.size), "examples": len(rows),
            "sha256": shas[0], "mask": {"file": names[1], "sha256": shas[1]},
            "index": {"file": names[2], "sha256": shas[2]},
            "trained": int(arrays[2][:, 2].sum()), "max_id": int(tokens.max(initial=0)),
            "bytes": sum(len(line.encode("utf-8")) for _, _, line in unit), "shard": index}


def _write(path, array):
    """Writes `array`'s bytes to `path` atomically; their sha256."""
    with open(path + ".tmp", "wb") as f:
        f.write(memoryview(np.ascontiguousarray(array)))
    os.replace(path + ".tmp", path)
    return hashlib.sha256(memoryview(np.ascontiguousarray(array))).hexdigest()


def _written(output, recorded, dtype, index):
    """The entry of a shard an earlier, stopped run recorded, if its three files still
    hold the bytes it recorded; else None (the files are written again)."""
    if not recorded:
        return None
    files = ((recorded["file"], recorded["sha256"], recorded["tokens"] * dtype.itemsize),
             (recorded["mask"]["file"], recorded["mask"]["sha256"], recorded["tokens"]),
             (recorded["index"]["file"], recorded["index"]["sha256"],
              recorded["examples"] * 3 * INDEX_DTYPE.itemsize))
    for name, sha, size in files:
        path = os.path.join(output, name)
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return None
        if shard_check(path, np.uint8)[0] != sha:
            return None
    return {**recorded, "shard": index}


def _write_manifest(output, key, tokenizer, stats, flags):
    shards = stats["shards"]
    examples = sum(s["examples"] for s in shards)
    if not examples:
        raise UserError(f"{flags['source']}={key['source']} holds no rows; pass JSON Lines "
                        "files with one example per line (docs/chat.md).")
    manifest = {
        "format": FORMAT, "kind": KIND, "request": key,
        "source": {"spec": key["source"], "sha256": key["source_sha256"],
                   "bytes": sum(s["bytes"] for s in shards)},
        "tokenizer": {"name": tokenizer.name, "vocab_size": tokenizer.vocab_size,
                      "fingerprint": tokenizer.fingerprint()},
        "chat": {k: key[k] for k in ("template_sha256", "train_on", "chat_fields",
                                     "split_seed")},
        "dtype": stats["dtype"], "examples": examples,
        "tokens": sum(s["tokens"] for s in shards),
        "trained_tokens": sum(s["trained"] for s in shards),
        "val_fraction": key["val_fraction"],
        "shards": [{k: v for k, v in s.items() if k != "shard"} for s in shards],
    }
    manifest["fingerprint"] = chat_fingerprint(manifest)
    write_json(os.path.join(output, MANIFEST_FILE), manifest)
    os.remove(os.path.join(output, PROGRESS_FILE))
    return manifest
