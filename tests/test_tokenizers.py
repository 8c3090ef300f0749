import json
import re
import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lmcourse.data.tokenizers import (
    GPT2_PATTERN,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    reference_bpe,
)

# A small English text written for these tests.
ENGLISH = (
    "The cat sat on the mat. The dog sat on the log, and the cat didn't mind.\n"
    "A language model reads tokens: it predicts the next one from the ones before it.\n"
    "They're learning; we've learned! Isn't it 2024 already? Numbers like 3.14 and 42 appear too.\n"
) * 20

KINDS = {
    "char": lambda: CharTokenizer.train(ENGLISH),
    "word": lambda: WordTokenizer.train(ENGLISH),
    "bpe": lambda: BPETokenizer.train(ENGLISH, vocab_size=400),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def tok(request):
    return KINDS[request.param]()


@pytest.fixture(scope="module")
def bpe():
    return KINDS["bpe"]()


# -- round trips ---------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.text())
@example("大语言模型的基本原理是什么？")
@example("emoji 😀👍🏽 and a family 👨‍👩‍👧")
@example("combining marks: e\u0301 n\u0303 a\u0308\u0304")
@example("windows\r\nline\tbreaks\t\t and  double  spaces")
@example("   leading and trailing   ")
@example("snake_case __init__ ½ x² ٣ Ⅻ")
@example("\x00\x7f\U0010ffff")
@example("")
def test_decode_encode_round_trips_any_text(tok, s):
    ids = tok.encode(s)
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == s


@settings(max_examples=300, deadline=None)
@given(st.text())
@example("snake_case __init__ x² e\u0301")
def test_gpt2_pattern_pieces_cover_the_text(s):
    assert "".join(re.findall(GPT2_PATTERN, s)) == s


def test_gpt2_pattern_splits_like_gpt2():
    got = re.findall(GPT2_PATTERN, "Hello, world! It's 2024 大语言模型 snake_case  x\n\n y")
    assert got == [
        "Hello", ",", " world", "!", " It", "'s", " 2024", " 大语言模型",
        " snake", "_", "case", " ", " x", "\n\n", " y",
    ]


def test_unseen_characters_fall_back_to_their_utf8_bytes():
    tok = CharTokenizer.train("abc")
    assert tok.encode("中") == list("中".encode("utf-8"))
    assert tok.tokens("a中") == ["a", "<0xE4>", "<0xB8>", "<0xAD>"]
    word = WordTokenizer.train("the cat")
    assert word.encode("dog") == list(b"dog")


def test_empty_string(tok):
    assert tok.encode("") == []
    assert tok.decode([]) == ""
    assert tok.tokens("") == []


# -- vocabularies ----------------------------------------------------------------
def test_vocab_sizes():
    assert CharTokenizer.train("hello").vocab_size == 256 + 4
    assert WordTokenizer.train("a b a, c").vocab_size == 256 + 5  # a, " ", b, ",", c
    assert WordTokenizer.train(ENGLISH, vocab_size=270).vocab_size == 270
    assert WordTokenizer.train("a b a c", min_count=2).pieces == [" ", "a"]  # " " x3, a x2
    assert BPETokenizer.train(ENGLISH, vocab_size=300).vocab_size == 300
    # Too little text: training stops when no pair is left to merge.
    assert BPETokenizer.train("ab", vocab_size=1000).vocab_size == 257
    for bad in (0, 255, 3.5):
        with pytest.raises(ValueError, match="256"):
            BPETokenizer.train(ENGLISH, vocab_size=bad)
    with pytest.raises(ValueError, match="256"):
        WordTokenizer.train(ENGLISH, vocab_size=10)


def test_word_vocab_is_most_frequent_first():
    tok = WordTokenizer.train("b a b c b a")
    assert tok.pieces == [" ", "b", "a", "c"]
    assert tok.encode("b") == [257]


def test_tokens_are_readable():
    word = WordTokenizer.train(ENGLISH)
    assert word.tokens("The cat, sat!") == ["The", " ", "cat", ",", " ", "sat", "!"]
    bpe = BPETokenizer.train(ENGLISH, vocab_size=400)
    assert " the" in bpe.tokens("on the mat")  # the space travels with the word
    assert "".join(bpe.tokens("on the mat")) == "on the mat"


# -- BPE training ------------------------------------------------------------------
def naive_bpe_merges(text: str, vocab_size: int) -> list[tuple[int, int]]:
    """Textbook BPE: recount every pair after every merge. Slow but obviously right."""
    words = [list(w.encode("utf-8")) for w in re.findall(GPT2_PATTERN, text)]
    merges = []
    while 256 + len(merges) < vocab_size:
        counts = Counter(p for w in words for p in zip(w, w[1:]))
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))  # same tie-break as ours
        new_id = 256 + len(merges)
        merges.append(best)
        for k, w in enumerate(words):
            out, i = [], 0
            while i < len(w):
                if w[i : i + 2] == list(best):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[k] = out
    return merges


@pytest.mark.parametrize("text", [ENGLISH[:2000], "aaaaaaa aaa aa abab ababab", "x" * 50 + " yy yyy"])
def test_incremental_training_matches_naive_recount(text):
    assert BPETokenizer.train(text, vocab_size=330).merges == naive_bpe_merges(text, 330)


def test_training_is_deterministic_and_encoding_matches_training(bpe):
    again = BPETokenizer.train(ENGLISH, vocab_size=400)
    assert again.merges == bpe.merges
    # Encoding a training word applies the merges in rank order, exactly as training did.
    assert bpe.tokens(" the") == [" the"]
    assert bpe.encode("the cat sat") == bpe.encode("the cat sat")  # second call hits the cache


def test_first_merge_is_the_most_frequent_pair():
    tok = BPETokenizer.train("low lower lowest", vocab_size=257)
    # "lo" and "ow" both occur 3 times; the tie goes to the smaller ids: (l, o) = (108, 111)
    assert tok.merges == [(ord("l"), ord("o"))]
    assert tok.tokens("low") == ["lo", "w"]


def test_compression_matches_huggingface_bpe():
    """Same data, same vocabulary size: our BPE compresses held-out text like HF's."""
    from pydoc_data.topics import topics

    text = "".join(topics.values())
    cut = int(0.8 * len(text))
    train, held_out = text[:cut], text[cut:]
    vocab_size = 1000

    start = time.perf_counter()
    ours = BPETokenizer.train(train, vocab_size=vocab_size)
    ours_ids = ours.encode(held_out)
    ours_seconds = time.perf_counter() - start

    hf = reference_bpe(train, vocab_size)
    hf_ids = hf.encode(held_out).ids

    assert ours.vocab_size == hf.get_vocab_size() == vocab_size
    assert ours.decode(ours_ids) == held_out and hf.decode(hf_ids) == held_out
    n_bytes = len(held_out.encode("utf-8"))
    print(
        f"\nheld-out {n_bytes} bytes: ours {len(ours_ids)} tokens "
        f"({n_bytes / len(ours_ids):.3f} bytes/token, train+encode {ours_seconds:.2f}s), "
        f"HF {len(hf_ids)} tokens ({n_bytes / len(hf_ids):.3f} bytes/token)"
    )
    assert abs(len(ours_ids) - len(hf_ids)) / len(hf_ids) <= 0.05
    # And BPE really compresses: well beyond one token per byte.
    assert n_bytes / len(ours_ids) > 2.5


# -- errors --------------------------------------------------------------------------
def test_bad_inputs_get_clear_errors(tok):
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match=r"\[0, \d+\)"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match=r"\[0, \d+\)"):
        tok.decode([-1])


def test_decode_accepts_arrays_and_replaces_broken_bytes(bpe):
    ids = bpe.encode("the mat")
    assert bpe.decode(np.array(ids)) == "the mat"
    assert bpe.decode([0xE4]) == "\ufffd"  # the first byte of a 3-byte character alone


# -- saving and loading ----------------------------------------------------------------
def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "sub" / f"{tok.name}.json"
    tok.save(path)
    for loader in (type(tok), Tokenizer):
        loaded = loader.load(path)
        assert type(loaded) is type(tok)
        assert loaded.vocab == tok.vocab
        assert loaded.encode(ENGLISH[:500] + " 中文") == tok.encode(ENGLISH[:500] + " 中文")
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp files left


@pytest.mark.parametrize(
    "content",
    [
        "not json {",
        "[1, 2, 3]",
        '{"type": "sentencepiece", "format": 1}',
        '{"type": "bpe", "format": 2, "merges": [], "pattern": "x"}',
        '{"type": "bpe", "format": 1}',
        '{"type": "bpe", "format": 1, "merges": [[0, 999]], "pattern": "x"}',
        '{"type": "bpe", "format": 1, "merges": [[0]], "pattern": "x"}',
        '{"type": "bpe", "format": 1, "merges": [], "pattern": "("}',
        '{"type": "char", "format": 1, "pieces": ["a", "a"]}',
        '{"type": "word", "format": 1, "pieces": "abc"}',
    ],
)
def test_malformed_files_get_clear_errors(tmp_path, content):
    path = tmp_path / "tok.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="tok.json"):
        Tokenizer.load(path)


def test_loading_the_wrong_kind_says_so(tmp_path):
    path = tmp_path / "char.json"
    CharTokenizer.train("abc").save(path)
    with pytest.raises(ValueError, match="'char' tokenizer, not 'bpe'"):
        BPETokenizer.load(path)
    assert json.loads(path.read_text())["pieces"] == ["a", "b", "c"]
