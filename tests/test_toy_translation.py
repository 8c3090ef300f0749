import random
from collections import Counter

import pytest

from lmcourse.data import toy_translation as tt
from lmcourse.data.toy_translation import Meaning, NounPhrase


def sentence(subject_plural=False, tense="past", time="yesterday"):
    return Meaning(NounPhrase("dog", plural=subject_plural, adjective="big"), "see", tense,
                   NounPhrase("cat", definite=False, adjective="small"), time)


def test_a_hand_built_meaning_in_both_languages():
    m = sentence()
    assert tt.to_english(m) == "the big dog saw a small cat yesterday"
    # time word first, noun before adjective, feminine agreement on "cat", object marker, verb last
    assert tt.to_kelvan(m) == "gesti lo vesko grande una mira piki ka vidis"


def test_the_verb_agrees_with_the_subject_even_where_english_does_not():
    singular, plural = sentence(), sentence(subject_plural=True)
    assert tt.to_english(plural) == "the big dogs saw a small cat yesterday"  # "saw" either way
    assert tt.to_kelvan(singular).split()[-1] == "vidis"
    assert tt.to_kelvan(plural).split()[-1] == "vidin"
    assert tt.to_kelvan(plural).split()[1:4] == ["los", "veskoi", "granden"]  # article and adjective agree
    present = sentence(subject_plural=True, tense="present", time="now")
    assert tt.to_english(present) == "the big dogs see a small cat now"
    assert tt.to_kelvan(present) == "nuno los veskoi granden una mira piki ka vidan"


def test_indefinite_articles_and_names():
    m = Meaning(NounPhrase("Anna"), "like", "present", NounPhrase("horse", definite=False, adjective="old"))
    assert tt.to_english(m) == "Anna likes an old horse"
    assert tt.to_kelvan(m) == "Anna un kavalo veke ka amas"
    some = Meaning(NounPhrase("girl", plural=True, definite=False), "find", "past", NounPhrase("Omar"))
    assert tt.to_english(some) == "some girls found Omar"
    assert tt.to_kelvan(some) == "alka talai Omar ka trovin"


def test_synonyms_give_several_correct_translations():
    m = sentence()  # "big", "small" and "saw" each have two Kelvan words
    all_ = tt.translations(m)
    assert len(all_) == len(set(all_)) == 8 and tt.to_kelvan(m) in all_
    assert "gesti lo vesko magne una mira mini ka spektis" in all_
    assert {tt.to_kelvan(m, random.Random(seed)) for seed in range(50)} == set(all_)
    one = Meaning(NounPhrase("dog"), "like", "past", NounPhrase("cat"))  # no synonyms at all
    assert tt.translations(one) == [tt.to_kelvan(one)] == ["lo vesko la mira ka amis"]


def test_the_corpus_uses_both_synonyms_equally_often():
    counts = Counter(w for p in tt.parallel_corpus(3000, seed=0) for w in p.target.split())
    for first, second in (("grand", "magn"), ("vid", "spekt"), ("agren", "kultor")):
        a = sum(c for w, c in counts.items() if w.startswith(first))
        b = sum(c for w, c in counts.items() if w.startswith(second))
        assert a > 50 and 0.8 < a / b < 1.25, (first, a, second, b)


def test_bad_meanings_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="unknown noun"):
        NounPhrase("unicorn")
    with pytest.raises(ValueError, match="name takes no plural"):
        NounPhrase("Anna", plural=True)
    with pytest.raises(ValueError, match="unknown adjective"):
        NounPhrase("dog", adjective="purple")
    with pytest.raises(ValueError, match="does not go with"):
        sentence(tense="present", time="yesterday")
    with pytest.raises(ValueError, match="tense"):
        sentence(tense="future", time=None)
    with pytest.raises(ValueError, match="unknown verb"):
        Meaning(NounPhrase("dog"), "eat", "past", NounPhrase("cat"))


def test_parallel_corpus_is_reproducible_distinct_and_varied():
    pairs = tt.parallel_corpus(2000, seed=3)
    assert pairs == tt.parallel_corpus(2000, seed=3)
    assert pairs != tt.parallel_corpus(2000, seed=4)
    assert len({p.source for p in pairs}) == len({p.target for p in pairs}) == 2000
    for p in pairs:
        assert p.source == tt.to_english(p.meaning) and p.target in tt.translations(p.meaning)
        # every English word has one Kelvan counterpart, and Kelvan adds the object marker
        assert len(p.target.split()) == len(p.source.split()) + 1
    # every kind of sentence shows up
    assert {p.meaning.tense for p in pairs} == {"present", "past"}
    assert any(p.meaning.subject.is_name for p in pairs) and any(p.meaning.time for p in pairs)
    assert any(p.meaning.obj.plural for p in pairs) and any(p.meaning.obj.adjective for p in pairs)


@pytest.mark.parametrize("n, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                      (True, TypeError), (2_000_000, ValueError)])
def test_parallel_corpus_refuses_bad_sizes(n, error):
    with pytest.raises(error, match="n must be"):
        tt.parallel_corpus(n)


def test_word_for_word_keeps_english_order_and_misses_agreement():
    m = sentence()
    assert tt.word_for_word(tt.to_english(m)) == "lo grande vesko vidis un pike mira gesti"
    # a dictionary knows the plural of a noun, but not that "the" and "saw" must agree with it
    assert tt.word_for_word("the dogs saw Anna") == "lo veskoi vidis Anna"
    with pytest.raises(ValueError, match="not an English word"):
        tt.word_for_word("the dog saw a unicorn")


def test_vocabulary_covers_both_languages():
    vocab = tt.vocabulary()
    assert vocab == sorted(set(vocab))
    words = {w for p in tt.parallel_corpus(3000, seed=0) for w in (p.source + " " + p.target).split()}
    assert words <= set(vocab)
    assert {"ka", "Anna", "vidin", "alka", "children"} <= set(vocab)


def test_wrong_meanings_are_near_misses_of_the_same_length():
    for pair in tt.parallel_corpus(200, seed=1):
        wrong = tt.wrong_meanings(pair.meaning, 3, seed=7)
        assert wrong == tt.wrong_meanings(pair.meaning, 3, seed=7)
        targets = [tt.to_kelvan(m) for m in wrong]
        assert len(set(targets)) == 3
        for m in wrong:  # wrong under every choice of synonyms
            assert not set(tt.translations(m)) & set(tt.translations(pair.meaning))
        assert all(len(t.split()) == len(pair.target.split()) for t in targets)
        # one point changed: most words survive
        right = set(tt.to_kelvan(pair.meaning).split())
        assert min(len(set(t.split()) & right) for t in targets) >= len(right) - 4


def test_wrong_meanings_include_the_swap_of_subject_and_object():
    m = sentence()
    swapped = Meaning(m.obj, m.verb, m.tense, m.subject, m.time)
    # the swap, two number flips, 2 x 9 other nouns, 5 other verbs: 26 candidates in all
    everything = tt.wrong_meanings(m, 26, seed=0)
    assert swapped in everything and len(set(everything)) == 26
    with pytest.raises(ValueError, match="one-point changes"):
        tt.wrong_meanings(m, 27)
