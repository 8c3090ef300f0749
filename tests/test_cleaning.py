"""Tests for lmcourse.data.cleaning: each function on hand-made inputs with known answers."""
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse.data.cleaning import (
    MinHasher,
    contamination,
    contiguous_chunks,
    deduplicate,
    exact_duplicates,
    jaccard,
    lsh_candidate_probability,
    luhn_valid,
    near_duplicates,
    normalize_text,
    overlap_groups,
    quality_problems,
    scrub_pii,
    shingles,
    split_documents,
    words,
)

# ---------------------------------------------------------------------------
# normalisation


def test_nfc_joins_a_letter_and_its_combining_accent():
    decomposed = "cafe\u0301"  # e + COMBINING ACUTE ACCENT
    assert len(decomposed) == 5
    assert normalize_text(decomposed) == "caf\u00e9"
    assert normalize_text("caf\u00e9", form="NFD") == decomposed


def test_whitespace_and_control_characters():
    raw = "\ufeffline\u00a0one  \r\nline\ttwo\x00\rthree\u3000end \u2028    indented code"
    assert normalize_text(raw) == "line one\nline\ttwo\nthree end\n    indented code"


def test_meaning_is_kept_case_inner_spaces_and_superscripts():
    text = "The  Cat's x\u00b2 is ﬁne"  # double space, superscript two, fi ligature
    assert normalize_text(text) == text
    assert normalize_text(text, form="NFKC") == "The  Cat's x2 is fine"  # why NFKC is not the default


def test_normalize_rejects_bad_input():
    with pytest.raises(ValueError, match="NFC"):
        normalize_text("x", form="nfc-ish")
    with pytest.raises(TypeError, match="str"):
        normalize_text(b"bytes")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_normalize_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "\r" not in once and "\x00" not in once


# ---------------------------------------------------------------------------
# shingles, Jaccard, MinHash


def test_words_ignore_case_punctuation_and_compatibility_forms():
    assert words("Exit, PURSUED by a bear.") == ["exit", "pursued", "by", "a", "bear"]
    assert words("ﬁne") == ["fine"]


def test_shingle_sets_and_jaccard_known_values():
    a = shingles("a b c d e", n=2)
    b = shingles("A b, c d f", n=2)  # same first three bigrams, last one differs
    assert len(a) == len(b) == 4
    assert jaccard(a, b) == pytest.approx(3 / 5)
    assert jaccard(a, a) == 1.0
    assert jaccard(a, shingles("x y z", n=2)) == 0.0
    assert len(shingles("a b a b a b", n=2)) == 2  # a set: "a b" and "b a"
    assert len(shingles("too short", n=5)) == 1  # the whole text is one shingle
    assert len(shingles("...", n=5)) == 0
    assert len(shingles("abcd", n=2, unit="char")) == 3
    with pytest.raises(ValueError, match="unit"):
        shingles("x", unit="sentence")


def test_minhash_estimates_jaccard():
    a = np.arange(0, 1000, dtype=np.uint64)
    b = np.arange(500, 1500, dtype=np.uint64)  # true Jaccard 500 / 1500
    hasher = MinHasher(num_perm=512, seed=1)
    estimate = MinHasher.estimate(hasher.signature(a), hasher.signature(b))
    assert abs(estimate - 1 / 3) < 0.07  # about 3 standard errors
    assert MinHasher.estimate(hasher.signature(a), hasher.signature(a.copy())) == 1.0


def test_lsh_curve():
    assert lsh_candidate_probability(1.0, bands=32, rows=4) == 1.0
    assert lsh_candidate_probability(0.0, bands=32, rows=4) == 0.0
    assert lsh_candidate_probability(0.5, bands=1, rows=2) == pytest.approx(0.25)
    p = lsh_candidate_probability(np.linspace(0, 1, 11), bands=32, rows=4)
    assert np.all(np.diff(p) > 0) and p[8] > 0.999 and p[2] < 0.05


# ---------------------------------------------------------------------------
# deduplication

VOCAB = "king queen lord lady enter exit sword crown night day love death fool ghost storm sea".split()


def paragraph(seed: int, n_words: int = 100) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) + rng.choice(["", "s", "ed", "ing"]) for _ in range(n_words))


def test_exact_duplicates_after_normalisation_keep_the_first_copy():
    lines = ["Exeunt.", "Exeunt.  ", "exeunt.", "Exeunt.\r\n", "Enter Hamlet."]
    result = exact_duplicates(lines)
    assert result.kept == [0, 2, 4]  # case differs: not an exact duplicate
    assert [(d.index, d.duplicate_of, d.reason) for d in result.dropped] == [(1, 0, "exact"), (3, 0, "exact")]
    assert result.apply(lines) == ["Exeunt.", "exeunt.", "Enter Hamlet."]
    assert result.rate == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="5 items"):
        result.apply(lines[:3])
    with pytest.raises(TypeError, match="sequence of strings"):
        exact_duplicates("one string")


def test_near_duplicates_that_differ_by_one_word():
    original = paragraph(0)
    ws = original.split()
    ws[50] = "parliament"
    edited = " ".join(ws)
    unrelated = paragraph(1)
    result = near_duplicates([original, unrelated, edited])
    assert result.kept == [0, 1]
    [drop] = result.dropped
    assert (drop.index, drop.duplicate_of, drop.reason) == (2, 0, "near")
    assert drop.similarity == pytest.approx(jaccard(shingles(original), shingles(edited)))
    assert 0.8 <= drop.similarity < 1.0


def test_near_duplicates_keeps_pairs_below_the_threshold():
    a = paragraph(2, n_words=40)
    ws = a.split()
    b = " ".join(ws[:20] + paragraph(3, n_words=20).split())  # half shared
    sim = jaccard(shingles(a), shingles(b))
    assert 0.1 < sim < 0.5
    assert near_duplicates([a, b]).dropped == []
    # At such low similarity, 32 bands of 4 rows rarely make the pair a candidate;
    # 128 bands of 1 row almost always do (see lsh_candidate_probability).
    assert [d.index for d in near_duplicates([a, b], threshold=sim, bands=128).dropped] == [1]


def test_lsh_finds_every_close_pair_among_many():
    originals = [paragraph(100 + i) for i in range(40)]
    copies = []
    for i, text in enumerate(originals):
        ws = text.split()
        ws[i % len(ws)] = "changed"
        copies.append(" ".join(ws))
    result = near_duplicates(originals + copies)
    assert result.kept == list(range(40))
    assert sorted((d.index, d.duplicate_of) for d in result.dropped) == [(40 + i, i) for i in range(40)]


def test_near_duplicates_of_short_lines_with_char_shingles():
    lines = ["Enter KING HENRY and Attendants.", "Enter King Henry, and attendants", "Exit Ghost."]
    result = near_duplicates(lines, n=3, unit="char")
    assert [(d.index, d.duplicate_of) for d in result.dropped] == [(1, 0)]


def test_near_duplicates_rejects_bad_settings():
    with pytest.raises(ValueError, match="multiple of bands"):
        near_duplicates(["a"], num_perm=100, bands=32)
    with pytest.raises(ValueError, match="Jaccard"):
        near_duplicates(["a"], threshold=0)


def test_deduplicate_reports_original_indices():
    a, b = paragraph(7), paragraph(8)
    ws = a.split()
    ws[10] = "changed"
    items = [a, b, a, " ".join(ws), "", ""]
    result = deduplicate(items)
    assert result.kept == [0, 1, 4]
    assert [(d.index, d.duplicate_of, d.reason) for d in result.dropped] == [
        (2, 0, "exact"), (3, 0, "near"), (5, 4, "exact")]
    assert result.reasons() == Counter(exact=2, near=1)
    assert deduplicate(items, near=False).kept == [0, 1, 3, 4]


# ---------------------------------------------------------------------------
# splits and contamination


def test_split_documents_keeps_documents_whole_and_disjoint():
    docs = {f"play{i}": "x" * 100 for i in range(10)}
    splits = split_documents(docs, (0.8, 0.1, 0.1), seed=0)
    assert [len(p) for p in splits.parts().values()] == [8, 1, 1]
    keys = [set(p) for p in splits.parts().values()]
    assert set().union(*keys) == set(docs) and sum(map(len, keys)) == 10
    assert splits.chars() == {"train": 800, "val": 100, "test": 100}
    assert split_documents(docs, seed=0) == splits
    assert any(split_documents(docs, seed=s).test != splits.test for s in range(1, 5))


def test_split_documents_balances_characters_not_counts():
    rng = np.random.default_rng(0)
    docs = ["x" * int(n) for n in rng.integers(10, 2000, size=60)]
    total, longest = sum(map(len, docs)), max(map(len, docs))
    for seed in range(5):
        chars = split_documents(docs, (0.7, 0.2, 0.1), seed=seed).chars()
        for name, fraction in zip(("train", "val", "test"), (0.7, 0.2, 0.1)):
            assert abs(chars[name] - fraction * total) <= longest


def test_split_documents_rejects_bad_input():
    with pytest.raises(ValueError, match="too few"):
        split_documents(["only one", "two"], (0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="summing to 1"):
        split_documents(["a", "b", "c"], (0.5, 0.2, 0.2))
    with pytest.raises(TypeError, match="one str"):
        split_documents("a whole corpus")


def test_split_documents_keeps_groups_together():
    docs = {f"d{i}": "x" * 100 for i in range(12)}
    groups = [["d3", "d7", "d11"], ["d0", "d1"]]
    for seed in range(8):
        splits = split_documents(docs, (0.5, 0.25, 0.25), seed=seed, groups=groups)
        for group in groups:
            assert len({name for name, part in splits.parts().items() if group[0] in part
                        for key in group if key in part}) == 1
            assert all(any(key in part for part in splits.parts().values()) for key in group)
    with pytest.raises(ValueError, match="more than one group"):
        split_documents(docs, groups=[["d0", "d1"], ["d1", "d2"]])
    with pytest.raises(ValueError, match="not one of the documents"):
        split_documents(docs, groups=[["d0", "nope"]])


def test_contiguous_chunks():
    text = "\n\n".join(f"speech {i} " + "word " * (i % 7) for i in range(100))
    chunks = contiguous_chunks(text, 10)
    assert len(chunks) == 10 and "\n\n".join(chunks) == text
    assert max(map(len, chunks)) < 2 * len(text) / 10
    assert contiguous_chunks("one block", 5) == ["one block"]
    with pytest.raises(ValueError, match="n must be"):
        contiguous_chunks(text, 0)


SENTENCE = "it is a tale told by an idiot full of sound and fury signifying nothing"  # 15 words


def test_contamination_finds_a_shared_13_gram_despite_case_and_punctuation():
    train = {"macbeth": "Out, out, brief candle! " + SENTENCE}
    leaked = "A critic wrote: It is a tale, told by an IDIOT, full of sound and fury -- wow."
    clean = "Tomorrow and tomorrow and tomorrow creeps in this petty pace from day to day"
    report = contamination(train, {"leaked": leaked, "clean": clean}, n=13)
    assert report.contaminated == ["leaked"]
    assert report.examples == ["it is a tale told by an idiot full of sound and fury"]
    # leaked has 17 words (5 n-grams), clean has 14 (2): only one n-gram is shared
    assert (report.test_ngrams, report.overlapping) == (7, 1)
    assert report.fraction == pytest.approx(1 / 7)


def test_contamination_ngrams_do_not_cross_document_boundaries():
    assert contamination(["a b c", "d e f"], ["c d"], n=2).contaminated == []
    assert contamination(["a b c", "d e f"], ["b c"], n=2).contaminated == [0]
    report = contamination("a b c", "too short", n=13)
    assert report.test_ngrams == 0 and report.fraction == 0.0
    assert contamination([], ["a b c"], n=2).overlapping == 0  # nothing to be contaminated by
    many = contamination([f"w{i} w{i + 1} w{i + 2}" for i in range(0, 3000, 3)], ["w2997 w2998", "w3000 w3001"], n=2)
    assert many.contaminated == [0] and many.overlapping == 1  # last training bigram found, beyond it none


def test_overlap_groups_chain_documents_sharing_an_ngram():
    a = "alpha beta gamma delta epsilon zeta eta theta"
    docs = {
        "long": f"intro words here {a} and more",
        "quote": f"{a}",  # contained in "long"
        "echo": "theta iota kappa lambda mu nu xi omicron",
        "chain": "omicron pi rho sigma tau upsilon phi chi",
        "alone": "nothing in common with the others at all here",
    }
    assert overlap_groups(docs, n=8) == [["long", "quote"]]
    docs["chain"] = "theta iota kappa lambda mu nu xi omicron pi"  # shares 8 words with "echo"
    groups = overlap_groups(docs, n=8)
    assert sorted(map(sorted, groups)) == [["chain", "echo"], ["long", "quote"]]
    for seed in range(5):
        splits = split_documents(docs, (0.5, 0.0, 0.5), seed=seed, groups=groups)
        assert contamination(splits.train, splits.test, n=8).contaminated == []


def test_quality_problems_gopher_rules():
    prose = ("It was the best of times and the worst of times, and we had everything before us "
             "with hope that the season would be kind to all of them. ") * 3
    assert quality_problems(prose) == []
    assert quality_problems("the and " * 10) == ["20 words (want 50 to 100,000)"]
    keywords = " ".join(["cheap", "shoes", "discount", "buy"] * 20)
    assert quality_problems(keywords) == ["0 occurrences of the stop words and be have of that the to with (want >= 2)"]
    symbols = "the of " + " ".join(["#tag", "123", "456", "789"] * 20)  # 82 words, 20 "#"
    assert quality_problems(symbols) == [
        "0.244 # per word (want <= 0.1)", "26.8% of words contain a letter (want >= 80%)"]
    assert quality_problems("") == ["no words"]


# ---------------------------------------------------------------------------
# personal data


def test_emails_inside_punctuation():
    text = "Write (alice@example.com), <bob.smith+news@mail.example.org>; or mailto:carol@ex-ample.co.uk."
    out = scrub_pii(text)
    assert out.text == "Write (<EMAIL>), <<EMAIL>>; or mailto:<EMAIL>."
    assert out.counts == Counter(EMAIL=3)


def test_not_emails():
    text = "Follow @alice, decorate with @property, user@localhost, a@b"
    assert scrub_pii(text).text == text


@pytest.mark.parametrize("phone", [
    "+44 20 7946 0958", "+1 (555) 123-4567", "+86 138 0013 8000", "+49 30 901820",
    "+33 1 23 45 67 89", "+442079460958", "(555) 123-4567", "555-123-4567", "555.123.4567",
])
def test_phone_formats(phone):
    out = scrub_pii(f"Call {phone}, please.")
    assert out.text == "Call <PHONE>, please."
    assert out.counts == Counter(PHONE=1)


@pytest.mark.parametrize("text", [
    "on 2024-01-15", "from 1999-2000", "pi is 3.14159", "scores 10 20 30 40", "version 1.2.3",
    "call it +1", "x = 12345",
])
def test_numbers_that_are_not_phones(text):
    assert scrub_pii(text).text == text


def test_luhn():
    assert luhn_valid("4111 1111 1111 1111") and luhn_valid("79927398713")
    assert not luhn_valid("4111 1111 1111 1112") and not luhn_valid("79927398710")
    assert not luhn_valid("4111x1111") and not luhn_valid("")


def test_cards_only_when_luhn_valid():
    out = scrub_pii("valid 4111-1111-1111-1111 and 4111 1111 1111 1111, invalid 4111 1111 1111 1112")
    assert out.text == "valid <CREDIT_CARD> and <CREDIT_CARD>, invalid 4111 1111 1111 1112"
    assert out.counts == Counter(CREDIT_CARD=2)


def test_ip_addresses_and_ssn():
    text = "hosts 192.168.0.12 and 2001:db8::8a2e:370:7334; not 999.1.1.1, 1.2.3.4.5, a[::2], 12:30:45. SSN 123-45-6789."
    out = scrub_pii(text)
    assert out.text == "hosts <IP> and <IP>; not 999.1.1.1, 1.2.3.4.5, a[::2], 12:30:45. SSN <SSN>."
    assert out.counts == Counter(IP=2, SSN=1)


def test_scrub_selected_kinds_and_errors():
    text = "alice@example.com +44 20 7946 0958"
    assert scrub_pii(text, kinds="EMAIL").text == "<EMAIL> +44 20 7946 0958"
    with pytest.raises(ValueError, match="NAME"):
        scrub_pii(text, kinds=["NAME"])
    with pytest.raises(TypeError):
        scrub_pii(None)
