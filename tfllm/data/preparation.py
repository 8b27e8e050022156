"""Prepares a corpus once: streamed, tokenized in parallel worker processes, written as
token shards that training reads through memory maps (`PreparedDataset`).

The corpus is never in memory as a whole: it is read as a stream of pieces, grouped into
shards of about `shard_chars` characters, and each shard is encoded by one worker
process and written atomically. Shards are cut only after newlines inside a document
(and between documents), so the shards joined are the tokens of the corpus encoded in one
piece, with the tokenizer's `document_separator` between documents. The manifest is
written last; a rerun after a crash, Ctrl-C or a full disk keeps the shards already written
and checked (their checksums are recorded as they finish), and rewrites any other. The
output is locked while it is written (`.lock`), and the workers end with the process.

No TensorFlow here: the workers start in a fraction of a second.
"""

import collections
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import threading
import time

import numpy as np

from tfllm.data import corpus as corpus_lib
from tfllm.data.prepared_dataset import (FORMAT, MANIFEST_FILE, PROGRESS_FILE, DatasetError,
                                         PreparedDataset, manifest_fingerprint, read_manifest,
                                         record_verified, shard_check, shard_dtype)
from tfllm.errors import UserError
from tfllm.files import DirectoryLock, check_writable, is_disk_full, write_json

SHARD_CHARS = 1 << 23  # 8 M characters of text per shard (one worker's task)
SAMPLE_CHARS = 1 << 25  # sentencepiece trains on a 32 M-character sample of a larger corpus
# (its training holds about 40 bytes per sample character: 1.3 GB at this size)
# The flags of tfllm.prepare, which its errors name.
PREPARE_FLAGS = {"source": "--data", "data_dir": "--data_dir", "split": "--split",
                 "text_key": "--text_key", "output": "--output", "vocab_size": "--vocab_size"}


def prepare(source, output, tokenizer="char", vocab_size=1000, sp_model_type="bpe",
            val_fraction=0.1, workers=None, data_dir=None, split="train", text_key=None,
            skip_non_utf8=False, shard_chars=SHARD_CHARS, sample_chars=SAMPLE_CHARS,
            flags=None, progress=True, print_fn=print, replace=False):
    """Tokenizes the corpus `source` into the prepared dataset directory `output`.

    Args:
        source: a text file, folder, glob or "tfds:<name>" (as `read_corpus`).
        output: the directory to write; an existing finished one for the same corpus and
            tokenizer is returned as it is, an unfinished one is finished.
        tokenizer: "char", "byte" or "sentencepiece" (trained here: char and byte in one
            streaming pass, sentencepiece on a sample of `sample_chars`), or a Tokenizer
            to encode with as it is (e.g. a run's).
        vocab_size, sp_model_type: sentencepiece's vocabulary size and model.
        val_fraction: the last fraction of the tokens is the validation split.
        workers: encoding processes; None = one per core.
        skip_non_utf8: leave out files that are not UTF-8 (else they are an error).
        flags: the names the caller's errors give each setting (see PREPARE_FLAGS).
        progress: show a progress line (bytes and tokens per second, time left) on stderr.
        replace: remake an `output` prepared from another corpus or tokenizer (a run's
            own copy of its corpus) instead of refusing to.

    Returns:
        the PreparedDataset.

    Example:
        >>> data = prepare("~/corpus/", "data/corpus", tokenizer="sentencepiece",
        ...                vocab_size=32000)
        >>> len(data.train), data.tokenizer.vocab_size
    """
    flags = {**PREPARE_FLAGS, **(flags or {})}
    workers = _check_request(source, output, tokenizer, workers, val_fraction, flags)
    key = _progress_key(source, data_dir, split, text_key, tokenizer, vocab_size,
                        sp_model_type, val_fraction, skip_non_utf8, shard_chars)
    return locked_output(output, flags, lambda created: _prepare_locked(
        source, output, tokenizer, vocab_size, sp_model_type, val_fraction, workers,
        (data_dir, split, text_key), skip_non_utf8, shard_chars, sample_chars, flags, progress,
        print_fn, replace, key, created))


def locked_output(output, flags, make):
    """make(created) with the directory `output` made and locked (`created`: whether it is
    new); a full disk is one line (the half-written shard removed, those written kept),
    and a finished output keeps no lock file."""
    created = not os.path.exists(output)
    os.makedirs(output, exist_ok=True)
    lock = DirectoryLock(output, "tfllm.prepare", "is being prepared by",
                         f"wait for it to finish, or pass another {flags['output']}")
    try:
        lock.acquire()
    except UserError:
        if created and os.listdir(output) == []:  # ours, and the other has not begun
            shutil.rmtree(output, ignore_errors=True)
        raise
    try:
        return make(created)
    except OSError as e:
        if not is_disk_full(e):
            raise
        _remove_partial_shards(output)
        raise UserError(f"no space left on the device of {output} while preparing it; free "
                        "some space and rerun the same command: it keeps the shards already "
                        "written.") from None
    finally:
        if os.path.isfile(os.path.join(output, MANIFEST_FILE)):  # finished: no file of ours
            _remove_lock_file(output)                             # beside the dataset's
        lock.release()


def _remove_lock_file(output):
    try:
        os.remove(os.path.join(output, DirectoryLock.FILE))
    except OSError:
        pass


def _prepare_locked(source, output, tokenizer, vocab_size, sp_model_type, val_fraction,
                    workers, tfds, skip_non_utf8, shard_chars, sample_chars, flags, progress,
                    print_fn, replace, key, created):
    """prepare(), with `output` locked."""
    data_dir, split, text_key = tfds
    finished = _finished(output, key, flags, replace)
    if finished is not None:
        return finished
    try:
        _start(output, key, flags)
        skipped = corpus_lib.check_utf8(source, flags, skip_non_utf8)
        read = lambda: corpus_lib.iter_pieces(source, data_dir, split, text_key, flags,
                                              min(corpus_lib.PIECE_CHARS, shard_chars), skipped)
        corpus_lib.check_not_empty(read(), source, flags["source"], skipped)
        total = _total_bytes(source, skipped)
        if print_fn:
            size = f"{total / 1e6:,.1f} MB" if total is not None else "a TFDS split"
            print_fn(f"preparing {source} ({size}) into {output}")
        tokenizer = _tokenizer(output, tokenizer, read, vocab_size, sp_model_type,
                               sample_chars, print_fn, (source, data_dir, split, text_key,
                                                        flags, skipped, total))
        stats = _encode(read, output, tokenizer, workers, shard_chars, total, progress, key)
        manifest = _write_manifest(output, key, tokenizer, stats, val_fraction, skipped)
    except UserError:
        if created:  # bad input found while reading: nothing half-written is left
            shutil.rmtree(output, ignore_errors=True)
        raise
    record_verified(output, {shard_name(i): (sha, largest)
                             for i, _, sha, _, largest in stats["shards"]})
    if print_fn:
        print_fn(_summary(output, manifest, stats, skipped))
    return PreparedDataset(output, flags["output"])


def _summary(output, manifest, stats, skipped):
    workers = stats["workers"]
    return (f"prepared {output}: {manifest['tokens']:,} tokens ({manifest['train_tokens']:,} "
            f"train) of {manifest['source']['bytes'] / 1e6:,.1f} MB in {stats['seconds']:.1f} s "
            f"({stats['bytes'] / 1e6 / stats['seconds']:,.2f} MB/s encoding, {workers} "
            f"worker{'s' * (workers > 1)})"
            + (f"; skipped {len(skipped)} file(s) that are not UTF-8" if skipped else ""))


def _check_request(source, output, tokenizer, workers, val_fraction, flags):
    """The number of workers; UserError for a request that cannot be prepared."""
    if not 0 < val_fraction < 1:
        raise UserError(f"--val_fraction={val_fraction} is not allowed: it must be between 0 "
                        "and 1.")
    if isinstance(tokenizer, str) and tokenizer not in ("char", "byte", "sentencepiece"):
        raise UserError(f"--tokenizer={tokenizer!r} is not allowed: use char, byte or "
                        "sentencepiece.")
    if not source.startswith(corpus_lib.TFDS_PREFIX):
        corpus_lib.corpus_files(source, flags["source"])  # a source naming no file fails here
    return check_output(source, output, workers, flags)


def check_output(source, output, workers, flags):
    """The number of workers (None: one per core); UserError for fewer than one, or an
    `output` that is inside the files `source` reads, not writable, or a directory holding
    what tfllm.prepare did not write. For text and chat preparation alike."""
    if workers is not None and workers < 1:
        raise UserError(f"--workers={workers} is not allowed: pass 1 or more (by default, one "
                        "per core).")
    if not source.startswith(corpus_lib.TFDS_PREFIX):
        _check_outside(source, output, flags)
    check_writable(output, flags["output"], "output directory")
    if os.path.isdir(output) and _listing(output) and not any(
            os.path.isfile(os.path.join(output, name)) for name in (MANIFEST_FILE, PROGRESS_FILE)):
        raise UserError(f"{flags['output']}={output} is a directory that tfllm.prepare did not "
                        "make; pass a new or empty directory.")
    return workers or os.cpu_count() or 1


def _check_outside(source, output, flags):
    """UserError if `output` lies inside the folder `source` reads (prepare would read its
    own files as corpus text)."""
    root = source
    while any(c in root for c in "*?["):  # a glob: the folder before its first pattern
        root = os.path.dirname(root)
    root = os.path.realpath(os.path.expanduser(root or "."))
    if not os.path.isdir(root):
        return
    target = os.path.realpath(os.path.expanduser(output))
    if target == root or target.startswith(root + os.sep):
        raise UserError(f"{flags['output']}={output} is inside {flags['source']}={source}, "
                        "whose files would be read as corpus text; pass an output outside it.")


def _listing(output):
    """What a directory holds, its lock file aside."""
    return [name for name in os.listdir(output) if name != DirectoryLock.FILE]


def _progress_key(source, data_dir, split, text_key, tokenizer, vocab_size, sp_model_type,
                  val_fraction, skip_non_utf8, shard_chars):
    """What the output is made from: a rerun with the same key continues an unfinished one."""
    if isinstance(tokenizer, str):
        request = {"name": tokenizer}
        if tokenizer == "sentencepiece":
            request.update(vocab_size=vocab_size, model_type=sp_model_type)
    else:
        request = {"fingerprint": tokenizer.fingerprint()}
    description = corpus_lib.describe_source(source, data_dir, split)
    return {"format": FORMAT, "source": source, "text_key": text_key,
            "source_sha256": hashlib.sha256(description.encode()).hexdigest(),
            "tokenizer": request, "val_fraction": val_fraction,
            "skip_non_utf8": bool(skip_non_utf8), "shard_chars": shard_chars}


def _finished(output, key, flags, replace, opener=PreparedDataset,
              done_entry=lambda shard: [shard["tokens"], shard["sha256"]]):
    """The finished dataset in `output` (opened by `opener`) if it was made as `key` asks
    and every shard is whole; None to (re)make it, the shards that are whole recorded as
    done (`done_entry` of each manifest entry); UserError if `output` holds something else."""
    if not os.path.isdir(output) or not _listing(output):
        return None
    if os.path.isfile(os.path.join(output, MANIFEST_FILE)):
        manifest = read_manifest(output, flags["output"])
        if manifest.get("request") != key and replace:
            shutil.rmtree(output)
            return None
        if manifest.get("request") != key:
            what = ("; chat data: or with another template, train_on, fields, "
                    "val_fraction or seed") if key.get("kind") == "chat" else ""
            raise UserError(f"{flags['output']}={output} holds a dataset prepared from another "
                            f"corpus or with another tokenizer{what}; pass a new --output, or "
                            "remove that one first.")
        try:
            return opener(output, flags["output"])
        except DatasetError:  # a shard lost or damaged since: remake it, keep the others
            write_json(os.path.join(output, PROGRESS_FILE), {
                "request": key, "done": {str(i): done_entry(shard)
                                         for i, shard in enumerate(manifest["shards"])}})
            os.remove(os.path.join(output, MANIFEST_FILE))
            return None
    if not os.path.isfile(os.path.join(output, PROGRESS_FILE)):
        raise UserError(f"{flags['output']}={output} is a directory that tfllm.prepare did not "
                        "make; pass a new or empty directory.")
    return None


def _start(output, key, flags):
    """Records what `output` is being made from; clears an unfinished output of another key."""
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, PROGRESS_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            progress = json.load(f)
        if progress.get("request") == key:
            return  # a rerun of the same command: keep the shards already written and checked
        for name in _listing(output):
            full = os.path.join(output, name)
            if os.path.isfile(full):
                os.remove(full)
    write_json(path, {"request": key, "done": {}})


def _done_shards(output):
    """{index: what was recorded} of the shards the progress file records as written whole
    (a text shard's [tokens, sha256], a chat shard's manifest entry)."""
    with open(os.path.join(output, PROGRESS_FILE)) as f:
        return {int(i): done for i, done in json.load(f).get("done", {}).items()}


class _Recorder:
    """Records the shards written so far in the progress file (atomically), at most once a
    second: a rerun after a kill writes again at most the last second's shards. Does
    nothing without a request `key` (a measurement into a scratch directory)."""

    def __init__(self, output, key, results, entry=lambda result: [result[1], result[2]]):
        self.output, self.key, self.results, self.last = output, key, results, 0.0
        self.entry = entry  # what a result records

    def __call__(self, force=False):
        now = time.time()
        if self.key is None or not (force or now - self.last >= 1.0):
            return
        self.last = now
        write_json(os.path.join(self.output, PROGRESS_FILE), {
            "request": self.key,
            "done": {str(i): self.entry(r) for i, r in sorted(self.results.items())}})


def _remove_partial_shards(output):
    """Removes what a failed write left half-written (`.tmp`: never renamed into place)."""
    for name in os.listdir(output) if os.path.isdir(output) else []:
        if name.endswith(".tmp"):
            os.remove(os.path.join(output, name))


def _total_bytes(source, skipped):
    if source.startswith(corpus_lib.TFDS_PREFIX):
        return None
    return sum(os.path.getsize(p) for p in corpus_lib.corpus_files(source) if p not in skipped)


def _tokenizer(output, tokenizer, read, vocab_size, sp_model_type, sample_chars, print_fn,
               corpus):
    """The tokenizer to encode with, saved in `output`: the one given, the one an unfinished
    run of the same command saved, or one trained on the corpus (`corpus`: the arguments
    of iter_pieces and the corpus's size)."""
    from tfllm.tokenizers import (TOKENIZER_FILE, ByteTokenizer, CharTokenizer,
                                  SentencePieceTokenizer, load_tokenizer)

    if not isinstance(tokenizer, str):
        tokenizer.save(output)
        return tokenizer
    if os.path.isfile(os.path.join(output, TOKENIZER_FILE)):
        return load_tokenizer(output)  # saved by the unfinished run this one continues
    if tokenizer == "byte":
        trained = ByteTokenizer()
    elif tokenizer == "char":
        trained = CharTokenizer(sorted(_characters(read())))
    else:
        total = corpus[-1]
        if print_fn:
            size = min(sample_chars, total) if total is not None else sample_chars
            print_fn(f"training a {vocab_size:,}-piece sentencepiece {sp_model_type} tokenizer "
                     f"on {'up to ' * (total is None)}{size / 1e6:,.1f} M characters of it")
        # In a process of its own: sentencepiece's training memory (several times the
        # sample's) goes back to the system when it ends, before the encoding workers start.
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=_process_context(),
                                                    initializer=_end_with_parent) as pool:
            proto = pool.submit(_train_sentencepiece, corpus, vocab_size, sp_model_type,
                                sample_chars).result()
        trained = SentencePieceTokenizer(proto)
    trained.save(output)
    return trained


def _train_sentencepiece(corpus, vocab_size, model_type, sample_chars):
    """The model proto of a sentencepiece tokenizer trained on a sample of the corpus."""
    from tfllm.tokenizers import SentencePieceTokenizer

    source, data_dir, split, text_key, flags, skipped, _ = corpus
    read = lambda: corpus_lib.iter_pieces(source, data_dir, split, text_key, flags,
                                          skip_files=skipped)
    try:
        return SentencePieceTokenizer.train(_sample_lines(read, source, sample_chars),
                                            vocab_size=vocab_size,
                                            model_type=model_type).model_proto
    except ValueError as e:  # it names train's key: prepare's flag is --vocab_size
        raise UserError(str(e).replace("--config.data.vocab_size", flags["vocab_size"])) from None


def _characters(pieces):
    """Every character of the corpus (a newline too if it has several documents)."""
    chars, documents = set(), 0
    for starts_document, text in pieces:
        documents += starts_document
        chars.update(text)
    if not chars:
        raise UserError("the corpus is empty; point --data at text.")
    return chars | ({"\n"} if documents > 1 else set())


def _sample_lines(read, source, sample_chars):
    """Lines to train sentencepiece on: the whole corpus if it has at most `sample_chars`
    characters, else about that many taken evenly over it (as whole documents or the
    first lines of a piece, whenever the share taken falls behind sample / corpus size);
    the same on every run."""
    total = None if source.startswith(corpus_lib.TFDS_PREFIX) else _total_bytes(source, set())
    ratio = sample_chars / total if total and total > sample_chars else None
    lines, seen, kept = [], 0, 0
    for _, text in read():
        seen += len(text)
        want = len(text) if ratio is None else int(seen * ratio) - kept
        if want <= 0:
            continue
        if want < len(text):
            text = text[:text.rfind("\n", 0, want) + 1]  # whole lines
        lines.extend(text.splitlines())
        kept += len(text)
        if ratio is None and kept >= sample_chars:  # a TFDS split: its first sample_chars
            break
    if not lines:
        raise UserError("the corpus is empty; point --data at text.")
    return lines


def _units(read, shard_chars):
    """The corpus as shards to encode: lists of (separator_before, starts_document, text)."""
    unit, size, documents = [], 0, 0
    for starts_document, text in read():
        if unit and size + len(text) > shard_chars:
            yield unit
            unit, size = [], 0
        unit.append((starts_document and documents > 0, starts_document, text))
        documents += starts_document
        size += len(text)
    if unit:
        yield unit


_worker = {}


def _init_worker(output, dtype):
    from tfllm.tokenizers import load_tokenizer

    _worker.update(tokenizer=load_tokenizer(output), output=output, dtype=np.dtype(dtype))
    _end_with_parent()


def _end_with_parent():
    """In a worker process: exits when the process that started it is gone (a kill -9 of
    tfllm.prepare or tfllm.train would otherwise leave the workers waiting for work)."""
    if multiprocessing.parent_process() is None:  # the calling process itself (workers=1)
        return
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _process_context():
    """fork where this process has not loaded TensorFlow (its threads do not survive a
    fork safely; tfllm.prepare never loads it), else spawn."""
    return multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")


def _encode_unit(index, unit):
    """Encodes one shard and writes it atomically; (index, tokens, sha256, UTF-8 bytes,
    largest id)."""
    tokenizer, dtype = _worker["tokenizer"], _worker["dtype"]
    parts = []
    for separator_before, starts_document, text in unit:
        if separator_before:  # asked for only here: one document needs no separator
            parts.append(np.asarray(tokenizer.document_separator(), dtype))
        ids = tokenizer.encode(text) if starts_document else tokenizer.encode_continuation(text)
        parts.append(np.asarray(ids, dtype))
    data = np.concatenate(parts)
    path = os.path.join(_worker["output"], shard_name(index))
    with open(path + ".tmp", "wb") as f:
        f.write(memoryview(data))
    os.replace(path + ".tmp", path)
    return (index, data.size, hashlib.sha256(memoryview(data)).hexdigest(),
            sum(len(text.encode("utf-8")) for _, _, text in unit), int(data.max(initial=0)))


def shard_name(index):
    return f"shard-{index:05d}.bin"


def _encode(read, output, tokenizer, workers, shard_chars, total_bytes, progress, key=None):
    """Encodes every shard not yet written, `workers` at a time; per-shard results. With
    the request `key`, each finished shard is recorded in the progress file and a shard a
    stopped run recorded is kept if its bytes still match (any other is written again)."""
    dtype = shard_dtype(tokenizer.vocab_size)
    meter = Progress(total_bytes, enabled=progress)
    results, documents, start = {}, [0], time.time()
    if total_bytes is not None and total_bytes <= shard_chars:
        workers = 1  # one task: no processes to start
    recorded = _done_shards(output) if key is not None else {}
    record = _Recorder(output, key, results)

    def tasks():
        for index, unit in enumerate(_units(read, shard_chars)):
            documents[0] += sum(starts for _, starts, _ in unit)
            done = _written(output, index, dtype, unit, recorded.get(index))
            if done is None:
                yield index, unit
                continue
            results[index] = done
            meter.add(done[3], 0)

    def finished(result):
        results[result[0]] = result
        meter.add(result[3], result[1])
        record()

    try:
        run_tasks(tasks(), _encode_unit, workers, _init_worker, (output, dtype.str), finished)
    finally:  # Ctrl-C or a bad row too: what is written whole is kept for the rerun
        record(force=True)
        meter.close()
    shards = [results[i] for i in sorted(results)]
    return {"shards": shards, "documents": documents[0],
            "seconds": max(time.time() - start, 1e-9), "bytes": meter.encoded_bytes,
            "dtype": dtype.str, "workers": workers}


def run_tasks(tasks, work, workers, init, initargs, done):
    """Calls done(work(*task)) for each task in order: in `workers` processes started with
    init(*initargs) (at most two tasks per worker in flight, so the tasks are read as a
    stream), or in this process after init(*initargs) when `workers` is 1."""
    if workers <= 1:
        init(*initargs)
        for task in tasks:
            done(work(*task))
        return
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=_process_context(),
                                                  initializer=init, initargs=initargs)
    pending = collections.deque()
    try:
        for task in tasks:
            pending.append(pool.submit(work, *task))
            while len(pending) >= 2 * workers:
                done(pending.popleft().result())
        while pending:
            done(pending.popleft().result())
    finally:
        pool.shutdown(cancel_futures=True)


def _written(output, index, dtype, unit, recorded):
    """The result of a shard an earlier, stopped run recorded as written, if its bytes
    still are those it recorded (`recorded`: (tokens, sha256)); else None, the file (if
    any) removed, to be written again."""
    path = os.path.join(output, shard_name(index))
    if not os.path.isfile(path):
        return None
    if recorded is not None and os.path.getsize(path) == recorded[0] * dtype.itemsize:
        sha, largest = shard_check(path, dtype)
        if sha == recorded[1]:
            return (index, recorded[0], sha,
                    sum(len(text.encode("utf-8")) for _, _, text in unit), largest)
    os.remove(path)
    return None


def _write_manifest(output, key, tokenizer, stats, val_fraction, skipped):
    total = sum(tokens for _, tokens, _, _, _ in stats["shards"])
    if total < 2:
        raise UserError("the corpus gives fewer than 2 tokens; point --data at more text.")
    manifest = {
        "format": FORMAT,
        "request": key,
        "source": {"spec": key["source"], "sha256": key["source_sha256"],
                   "bytes": sum(nbytes for _, _, _, nbytes, _ in stats["shards"]),
                   "skipped_files": sorted(skipped)},
        "tokenizer": {"name": tokenizer.name, "vocab_size": tokenizer.vocab_size,
                      "fingerprint": tokenizer.fingerprint()},
        "separator": ([int(i) for i in tokenizer.document_separator()]
                      if stats["documents"] > 1 else []),
        "documents": stats["documents"],
        "dtype": stats["dtype"],
        "tokens": total,
        "train_tokens": int(total * (1 - val_fraction)),  # as one array split at this index
        "val_fraction": val_fraction,
        "shards": [{"file": shard_name(i), "tokens": tokens, "sha256": sha}
                   for i, tokens, sha, _, _ in stats["shards"]],
    }
    manifest["fingerprint"] = manifest_fingerprint(manifest)
    write_json(os.path.join(output, MANIFEST_FILE), manifest)
    os.remove(os.path.join(output, PROGRESS_FILE))
    return manifest


class Progress:
    """One progress line on stderr: bytes, bytes and tokens per second, time left.

    Rewritten in place on a terminal (at most twice a second); elsewhere (a log file) a
    line every 10 seconds."""

    def __init__(self, total_bytes, enabled=True, stream=None):
        self.total, self.enabled = total_bytes, enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = self.last = time.time()
        self.done_bytes = self.encoded_bytes = self.tokens = 0
        self.shown = False

    def add(self, nbytes, tokens):
        self.done_bytes += nbytes
        self.tokens += tokens
        if tokens:
            self.encoded_bytes += nbytes
        now = time.time()
        if self.enabled and now - self.last >= (0.5 if self.tty else 10.0):
            self.last = now
            self._show(now)

    def _show(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.encoded_bytes / elapsed
        line = f"prepare: {self.done_bytes / 1e6:,.1f}"
        if self.total:
            left = (self.total - self.done_bytes) / rate if rate else float("nan")
            line += (f"/{self.total / 1e6:,.1f} MB ({self.done_bytes / self.total:.0%})"
                     f" | {rate / 1e6:.2f} MB/s | {self.tokens / elapsed / 1e6:.2f} M tokens/s"
                     f" | {_duration(left)} left")
        else:
            line += f" MB | {rate / 1e6:.2f} MB/s | {self.tokens / elapsed / 1e6:.2f} M tokens/s"
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.enabled and self.shown:
            self._show(time.time())
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()


def _duration(seconds):
    if seconds != seconds:  # nan
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def measure_encoding(source, tokenizer, workers, sample_chars=1 << 27, rounds=2,
                     shard_chars=1 << 23):
    """Times encoding the first `sample_chars` characters of `source` with one worker and
    with `workers`, alternately (`rounds` of each, into temporary directories), so both
    see the same machine; the encoding part of `prepare`, without tokenizer training.

    Returns {workers: [{"mb_per_s", "tokens_per_s", "seconds"}, ...]} for 1 and `workers`.
    """
    import itertools
    import tempfile

    def read():
        taken = 0
        pieces = corpus_lib.iter_pieces(source, piece_chars=min(corpus_lib.PIECE_CHARS, shard_chars))
        for starts_document, text in itertools.takewhile(lambda _: taken < sample_chars, pieces):
            taken += len(text)
            yield starts_document, text

    results = {1: [], workers: []}
    for _ in range(rounds):
        for count in (1, workers):
            with tempfile.TemporaryDirectory(prefix="tfllm-measure-") as out:
                tokenizer.save(out)
                stats = _encode(read, out, tokenizer, count, shard_chars, None, progress=False)
            tokens = sum(tokens for _, tokens, _, _, _ in stats["shards"])
            results[count].append({"mb_per_s": stats["bytes"] / 1e6 / stats["seconds"],
                                   "tokens_per_s": tokens / stats["seconds"],
                                   "seconds": stats["seconds"]})
    return results
