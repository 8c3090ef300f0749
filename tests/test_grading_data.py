"""The bpe_merge_step check: its reference is one step of BPETokenizer.train, every
correct form passes, the classic mistakes (and changing the input) are named."""
import re
from collections import Counter

import pytest

from grading_helpers import run, run_unguarded, text

from lmcourse.data.tokenizers import GPT2_PATTERN, BPETokenizer
from lmcourse.grading import get_exercise
from lmcourse.grading.exercises_data import _bpe_merge_step

pytestmark = pytest.mark.usefixtures("home")


def test_repeating_the_reference_step_is_bpe_training():
    text_ = ("To be, or not to be, that is the question: whether 'tis nobler in the mind "
             "to suffer the slings and arrows of outrageous fortune, 1601 aaaa bbb.") * 3
    table = Counter(re.findall(GPT2_PATTERN, text_))
    words, counts = [list(w.encode("utf-8")) for w in table], list(table.values())
    merges = []
    for new_id in range(256, 256 + 60):
        if all(len(w) < 2 for w in words):
            break
        pair, words = _bpe_merge_step(words, counts, new_id)
        merges.append(pair)
    assert merges == BPETokenizer.train(text_, 256 + 60).merges


def test_the_worked_values_of_the_prompt():
    assert _bpe_merge_step([[5, 6, 7], [6, 7], [5, 6]], [1, 3, 2], 9) == ((6, 7), [[5, 9], [9], [5, 6]])
    assert _bpe_merge_step([[3, 3, 3], [3, 3, 4]], [1, 1], 7) == ((3, 3), [[7, 3], [7, 4]])
    assert _bpe_merge_step([[9, 8], [1, 2]], [2, 2], 10) == ((1, 2), [[9, 8], [10]])


# ---------------------------------------------------------------------------
# Every correct form passes


def step_with_counter_and_sort(words, counts, new_id):
    totals = Counter()
    for w, n in zip(words, counts):
        totals.update({p: n * c for p, c in Counter(zip(w, w[1:])).items()})
    best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[0][0]
    out = []
    for w in words:
        new, skip = [], False
        for i, t in enumerate(w):
            if skip:
                skip = False
            elif tuple(w[i:i + 2]) == best:
                new.append(new_id)
                skip = True
            else:
                new.append(t)
        out.append(new)
    return list(best), [tuple(w) for w in out]  # a list pair and tuple words are accepted


def step_recursive_merge(words, counts, new_id):
    totals = {}
    for w, n in zip(words, counts):
        for p in zip(w, w[1:]):
            totals[p] = totals.get(p, 0) + n
    top = max(totals.values())
    best = min(p for p, c in totals.items() if c == top)

    def merge(w):
        if len(w) < 2:
            return list(w)
        if (w[0], w[1]) == best:
            return [new_id] + merge(w[2:])
        return [w[0]] + merge(w[1:])
    return best, [merge(w) for w in words]


@pytest.mark.parametrize("answer", [step_with_counter_and_sort, step_recursive_merge])
def test_correct_forms_pass(answer):
    result = run("bpe_merge_step", answer)
    assert result.passed, str(result)


# ---------------------------------------------------------------------------
# The classic mistakes, as a learner would write them


def _totals(words, counts):
    totals = Counter()
    for w, n in zip(words, counts):
        for p in zip(w, w[1:]):
            totals[p] += n
    return totals


def _merge_left(w, pair, new_id):
    out, i = [], 0
    while i < len(w):
        if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(w[i])
            i += 1
    return out


def _pick(totals):
    return min(totals, key=lambda p: (-totals[p], p))


def counts_the_text_as_one_stream(words, counts, new_id):
    stream = [t for w, n in zip(words, counts) for t in w * n]
    best = _pick(_totals([stream], [1]))
    return best, [_merge_left(w, best, new_id) for w in words]


def forgets_the_counts(words, counts, new_id):
    best = _pick(_totals(words, [1] * len(words)))
    return best, [_merge_left(w, best, new_id) for w in words]


def most_common_breaks_ties(words, counts, new_id):
    best = _totals(words, counts).most_common(1)[0][0]
    return best, [_merge_left(w, best, new_id) for w in words]


def merges_every_match_start(words, counts, new_id):
    best = _pick(_totals(words, counts))
    out = []
    for w in words:
        starts = [i for i in range(len(w) - 1) if (w[i], w[i + 1]) == best]
        out.append([new_id if i in starts else t for i, t in enumerate(w)
                    if i in starts or i - 1 not in starts])   # (a, a, a) -> (new, new)
    return best, out


def replaces_only_the_first(words, counts, new_id):
    best = _pick(_totals(words, counts))
    out = []
    for w in words:
        w = list(w)
        for i in range(len(w) - 1):
            if (w[i], w[i + 1]) == best:
                w[i:i + 2] = [new_id]
                break
        out.append(w)
    return best, out


def mutates_the_words(words, counts, new_id):
    best = _pick(_totals(words, counts))
    for k, w in enumerate(words):
        words[k] = _merge_left(w, best, new_id)
    return best, words


WRONG = [
    (counts_the_text_as_one_stream, "across word boundaries"),
    (forgets_the_counts, "forgot the word frequencies"),
    (most_common_breaks_ties, "the pair you saw first"),
    (merges_every_match_start, "overlapping pairs"),
    (replaces_only_the_first, "only the first occurrence"),
    (mutates_the_words, "changed the input lists in place"),
]


@pytest.mark.parametrize("answer, keyword", WRONG, ids=[f.__name__ for f, _ in WRONG])
def test_classic_mistakes_are_named(answer, keyword):
    result = run("bpe_merge_step", answer)
    assert not result.passed and result.status == "failed"
    assert keyword in text(result), str(result)


def test_every_declared_mistake_differs_from_the_reference_on_some_case():
    ex = get_exercise("bpe_merge_step")
    cases = ex.build_cases()
    for mistake in ex.mistakes:
        assert any(mistake.wrong(*c.args) != ex.reference(*c.args) for c in cases), mistake.what


def test_a_wrong_pair_with_the_right_form_gets_a_counting_hint():
    def reversed_pair(words, counts, new_id):
        (a, b), merged = _bpe_merge_step(words, counts, new_id)
        return (b, a), merged
    result = run_unguarded("bpe_merge_step", reversed_pair)  # it calls the reference
    assert not result.passed and "your pair" in text(result), str(result)
