"""A tfllm tokenizer as a Hugging Face tokenizer.json (`tokenizers.Tokenizer.from_file`)."""

import os


def _single_characters():
    from tokenizers import Regex, pre_tokenizers

    # Every character a token of its own ("[\s\S]": "." would skip newlines).
    return pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")


def _char_tokenizer(chars):
    from tokenizers import Tokenizer, decoders, models

    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="\ufffd"))
    tok.pre_tokenizer = _single_characters()
    tok.decoder = decoders.Fuse()
    return tok


def _byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    # ByteLevel maps each byte to a printable character (GPT-2's table), one token each;
    # the id is the byte value, as tfllm's ByteTokenizer.
    table = _bytes_to_unicode()
    tok = Tokenizer(models.WordLevel({table[b]: b for b in range(256)}, unk_token=table[0]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False), _single_characters()])
    tok.decoder = decoders.ByteLevel()
    return tok


def _bytes_to_unicode():
    """GPT-2's byte -> printable character table, which the ByteLevel pre-tokenizer uses."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def write_tokenizer(tokenizer, path):
    """Writes `tokenizer` as a tokenizer.json at `path`: a Hugging Face tokenizer as it
    came, a char or byte tokenizer as an equivalent WordLevel one. A sentencepiece model
    has no such file here (transformers' converters make one): it is written beside as
    tokenizer.model, which sentencepiece and transformers' slow tokenizers read. Returns
    the file written."""
    if tokenizer.name == "hf":
        with open(path, "w", encoding="utf-8") as f:
            f.write(tokenizer.json_text)
        return path
    if tokenizer.name == "sentencepiece":
        model_path = os.path.join(os.path.dirname(path), "tokenizer.model")
        with open(model_path, "wb") as f:
            f.write(tokenizer.model_proto)
        return model_path
    hf = _char_tokenizer(tokenizer.chars) if tokenizer.name == "char" else _byte_tokenizer()
    hf.save(path)
    return path
