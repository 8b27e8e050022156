"""Reading a text corpus: a file, a folder, a glob, or a TFDS dataset by name."""

import codecs
import glob
import os

from tfllm.errors import UserError

DEFAULT_CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tinyshakespeare.txt")
TFDS_PREFIX = "tfds:"
# The flags that set each corpus setting under tfllm.train; error messages name them.
CONFIG_FLAGS = {"source": "--config.data.source", "data_dir": "--config.data.data_dir",
                "split": "--config.data.split", "text_key": "--config.data.text_key",
                "vocab_size": "--config.data.vocab_size"}


# A piece of a document as tfllm.prepare hands it to a worker: 4 M characters.
PIECE_CHARS = 1 << 22


class CorpusError(UserError):
    """The corpus cannot be read; the message says why and what to do."""


def corpus_files(source, flag="--config.data.source"):
    """The files a path, folder or glob names, sorted; raises CorpusError (naming `flag`,
    where the user set `source`) if none."""
    source = os.path.expanduser(source)  # `--config.data.source=~/texts`: no shell expands it
    if os.path.isdir(source):
        files = sorted(os.path.join(root, name)
                       for root, _, names in os.walk(source) for name in names
                       if not name.startswith("."))
    elif os.path.isfile(source):
        files = [source]
    else:
        files = sorted(f for f in glob.glob(source, recursive=True) if os.path.isfile(f))
    if not files:
        raise CorpusError(f"corpus {source!r} names no file; pass an existing text file, folder "
                          f"or glob as {flag}, or tfds:<name> for a TFDS dataset.")
    return files


def read_corpus(source, data_dir=None, split="train", text_key=None, flags=None):
    """The corpus as one string: its documents (files, TFDS examples) joined by a newline.

    For corpora that fit in memory; `tfllm.prepare` streams larger ones (`iter_pieces`).

    Args:
        source: a text file, a folder (every file under it), a glob, or
            "tfds:<name>[/<config>]" for a prepared TFDS dataset.
        data_dir: where TFDS datasets are prepared (TFDS's default when None).
        split: the TFDS split to read.
        text_key: the TFDS feature holding text; found automatically when the dataset
            has exactly one text feature.
        flags: the command's flags for "source", "data_dir", "split" and "text_key", which
            error messages name; default tfllm.train's (CONFIG_FLAGS).
    """
    documents, current = [], []
    for starts_document, text in iter_pieces(source, data_dir, split, text_key, flags):
        if starts_document and current:
            documents.append("".join(current))
            current = []
        current.append(text)
    documents.append("".join(current))
    text = "\n".join(documents)
    if not text.strip():
        flag = {**CONFIG_FLAGS, **(flags or {})}["source"]
        raise CorpusError(f"corpus {source!r} is empty; point {flag} at text.")
    return text


def iter_pieces(source, data_dir=None, split="train", text_key=None, flags=None,
                piece_chars=PIECE_CHARS, skip_files=()):
    """The corpus as a stream of (starts_document, text) pieces of at most about
    `piece_chars` characters, never the whole corpus in memory.

    A document (a file, a TFDS example) longer than a piece is cut after a newline where it
    has one, so the pieces of a document joined are the document. Empty documents are
    left out, and so are the files in `skip_files`. A file that is not UTF-8 raises
    CorpusError once its bad byte is read (`check_utf8` finds them all first).
    Arguments as in `read_corpus`."""
    flags = {**CONFIG_FLAGS, **(flags or {})}
    if source.startswith(TFDS_PREFIX):
        for document in _iter_tfds(source[len(TFDS_PREFIX):], data_dir, split, text_key, flags):
            for i, piece in enumerate(_cut(document, piece_chars)):
                yield i == 0, piece
        return
    for path in corpus_files(source, flags["source"]):
        if path in skip_files:
            continue
        try:
            for i, piece in enumerate(_file_pieces(path, piece_chars)):
                yield i == 0, piece
        except UnicodeDecodeError as e:
            raise non_utf8_error(path, e, flags["source"]) from None


def check_not_empty(pieces, source, flag, skipped=()):
    """CorpusError (naming `flag`) unless some of the (starts_document, text) `pieces`
    holds more than whitespace; reads only up to the first that does. `skipped`: the files
    left out as not UTF-8, named when they are why nothing is left."""
    if not any(text.strip() for _, text in pieces):
        if skipped:
            raise CorpusError(f"every file of corpus {source!r} with text was skipped as not "
                              f"UTF-8 ({len(skipped)} file(s), e.g. {sorted(skipped)[0]}); "
                              f"convert them to UTF-8, or point {flag} at UTF-8 text.")
        raise CorpusError(f"corpus {source!r} is empty; point {flag} at text.")


def non_utf8_error(path, error, flag):
    return CorpusError(f"corpus file {path} is not UTF-8 text (byte {error.start}: "
                       f"{error.reason}); convert it to UTF-8, leave it out of {flag}, or skip "
                       "such files with tfllm.prepare --skip_non_utf8.")


def _cut(text, piece_chars):
    """`text` in pieces of at most about `piece_chars`, each cut after a newline if it has one."""
    while len(text) > piece_chars:
        cut = text.rfind("\n", 0, piece_chars) + 1 or piece_chars
        yield text[:cut]
        text = text[cut:]
    if text:
        yield text


def _file_pieces(path, piece_chars):
    """The text of the file at `path` in pieces (UnicodeDecodeError if it is not UTF-8)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    text = ""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(max(1, piece_chars // 4)), b""):
            text += decoder.decode(block)
            while len(text) > piece_chars:
                cut = text.rfind("\n", 0, piece_chars) + 1 or piece_chars
                yield text[:cut]
                text = text[cut:]
    text += decoder.decode(b"", final=True)
    yield from _cut(text, piece_chars)


def check_utf8(source, flags=None, skip_non_utf8=False):
    """Reads every file of a file source once (fast: bytes, no pieces) and raises
    CorpusError for the first one that is not UTF-8; with `skip_non_utf8`, returns the set
    of those files instead. TFDS text is always valid."""
    flags = {**CONFIG_FLAGS, **(flags or {})}
    bad = set()
    if source.startswith(TFDS_PREFIX):
        return bad
    for path in corpus_files(source, flags["source"]):
        decoder = codecs.getincrementaldecoder("utf-8")()
        with open(path, "rb") as f:
            try:
                for block in iter(lambda: f.read(PIECE_CHARS), b""):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as e:
                if not skip_non_utf8:
                    raise non_utf8_error(path, e, flags["source"]) from None
                bad.add(path)
    return bad


def _iter_tfds(name, data_dir, split, text_key, flags):
    import tensorflow_datasets as tfds  # only TFDS users pay for the import

    try:
        builder = tfds.builder(name, data_dir=data_dir and os.path.expanduser(data_dir))
    except Exception as e:  # TFDS raises several types for unknown names and configs
        raise CorpusError(f"TFDS dataset {name!r} not found ({type(e).__name__}); check the name "
                          f"with `tfds.list_builders()`, or set {flags['data_dir']} to where it "
                          "is prepared.") from None
    if not builder.is_prepared():
        raise CorpusError(f"TFDS dataset {name!r} is not prepared in {builder.data_dir}; prepare "
                          f"it with `tfds build` (tfllm downloads nothing) or set "
                          f"{flags['data_dir']} to where it is prepared.")
    features = builder.info.features
    text_keys = [k for k, v in features.items() if isinstance(v, tfds.features.Text)]
    key = text_key or (text_keys[0] if len(text_keys) == 1 else None)
    if key not in features:
        raise CorpusError(f"TFDS dataset {name!r}: choose its text feature with "
                          f"{flags['text_key']} (text features: {text_keys}).")
    if split not in builder.info.splits:
        raise CorpusError(f"TFDS dataset {name!r} has no split {split!r}; set {flags['split']} "
                          f"to one of {sorted(builder.info.splits)}.")
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    for example in tfds.as_numpy(dataset):
        yield example[key].decode("utf-8")


def describe_source(source, data_dir=None, split="train"):
    """A string that changes when the corpus does (paths, sizes, mtimes), for the token cache."""
    if source.startswith(TFDS_PREFIX):
        return f"{source}|{data_dir}|{split}"
    return "|".join(f"{os.path.abspath(p)}:{os.path.getsize(p)}:{os.path.getmtime(p)}"
                    for p in corpus_files(source))
