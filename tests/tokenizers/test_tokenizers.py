import pytest

from tfllm.tokenizers import (ByteTokenizer, CharTokenizer, load_tokenizer, train_tokenizer)

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40
        + "Numbers 1234 and tabs\tand é ü.\n")


@pytest.mark.parametrize("name,options", [
    ("char", {}), ("byte", {}),
    ("sentencepiece", dict(vocab_size=400, model_type="bpe")),
    ("sentencepiece", dict(vocab_size=300, model_type="unigram"))])
def test_round_trip_and_reload(tmp_path, name, options):
    tok = train_tokenizer(name, TEXT, **options)
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT
    assert ids.min() >= 0 and ids.max() < tok.vocab_size
    tok.save(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert again.fingerprint() == tok.fingerprint()
    assert list(again.encode(TEXT)) == list(ids)


def test_subword_tokenizer_compresses():
    tok = train_tokenizer("sentencepiece", TEXT, vocab_size=400)
    assert len(tok.encode(TEXT)) < 0.6 * len(TEXT)


def test_sentencepiece_too_small_vocabulary_says_the_minimum():
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        train_tokenizer("sentencepiece", TEXT, vocab_size=100)


def test_char_vocabulary_is_sorted_corpus_characters():
    tok = CharTokenizer.train("hello")
    assert tok.chars == ["e", "h", "l", "o"] and tok.vocab_size == 4


def test_char_unknown_characters_are_all_named():
    with pytest.raises(ValueError, match=r"1 character \('z'\) is not in this tokenizer"):
        CharTokenizer.train("abc").encode("abz")
    with pytest.raises(ValueError, match=r"3 characters \('x', 'y', 'z'\) are not"):
        CharTokenizer.train("abc").encode("xyzabzx")


def test_sentencepiece_larger_vocabulary_than_the_corpus_gives_is_refused_with_the_most():
    with pytest.raises(ValueError, match=r"vocab_size=50000 is more than this corpus gives: at "
                       r"most (\d+) pieces; set --config.data.vocab_size=\1 or less"):
        train_tokenizer("sentencepiece", TEXT, vocab_size=50000)


@pytest.mark.parametrize("name,options", [
    ("char", {}), ("byte", {}), ("sentencepiece", dict(vocab_size=400))])
def test_a_newline_is_one_token_of_every_tokenizer(name, options):
    tok = train_tokenizer(name, TEXT, **options)
    newline = tok.token_id("\n")
    assert newline is not None and tok.decode([newline]) == "\n"
    assert tok.token_id("speak") is None or tok.decode([tok.token_id("speak")]) == "speak"


def test_byte_tokenizer_handles_any_text():
    assert ByteTokenizer().decode(ByteTokenizer().encode("日本")) == "日本"


def test_unknown_tokenizer_lists_names():
    with pytest.raises(ValueError, match="byte"):
        train_tokenizer("wordpiece", "abc")
