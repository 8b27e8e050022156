"""Reading a text corpus: a file, a folder, a glob, or a TFDS dataset by name."""

import glob
import os

from tfllm.errors import UserError

DEFAULT_CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tinyshakespeare.txt")
TFDS_PREFIX = "tfds:"
# The flags that set each corpus setting under tfllm.train; error messages name them.
CONFIG_FLAGS = {"source": "--config.data.source", "data_dir": "--config.data.data_dir",
                "split": "--config.data.split", "text_key": "--config.data.text_key"}


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
    """The corpus as one string. Files are joined with a newline.

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
    flags = {**CONFIG_FLAGS, **(flags or {})}
    flag = flags["source"]
    if source.startswith(TFDS_PREFIX):
        text = _read_tfds(source[len(TFDS_PREFIX):], data_dir, split, text_key, flags)
    else:
        parts = []
        for path in corpus_files(source, flag):
            try:
                with open(path, encoding="utf-8") as f:
                    parts.append(f.read())
            except UnicodeDecodeError:
                raise CorpusError(f"corpus file {path} is not UTF-8 text; convert it or leave it "
                                  f"out of {flag}.") from None
        text = "\n".join(parts)
    if not text.strip():
        raise CorpusError(f"corpus {source!r} is empty; point {flag} at text.")
    return text


def read_configured_corpus(data, source=None, data_dir=None, split=None, text_key=None,
                           flags=None):
    """The corpus a `data` config section names (its source, else the bundled corpus),
    each setting replaced by the argument of its name where that is given (tfllm.evaluate's
    --data and --tfds_* flags, which `flags` then names in errors, as in read_corpus)."""
    return read_corpus(source or data.source or DEFAULT_CORPUS,
                       data_dir or data.data_dir or None, split or data.split,
                       text_key or data.text_key or None, flags)


def _read_tfds(name, data_dir, split, text_key, flags):
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
    docs = (example[key].decode("utf-8") for example in tfds.as_numpy(dataset))
    return "\n".join(docs)


def describe_source(source, data_dir=None, split="train"):
    """A string that changes when the corpus does (paths, sizes, mtimes), for the token cache."""
    if source.startswith(TFDS_PREFIX):
        return f"{source}|{data_dir}|{split}"
    return "|".join(f"{os.path.abspath(p)}:{os.path.getsize(p)}:{os.path.getmtime(p)}"
                    for p in corpus_files(source))
