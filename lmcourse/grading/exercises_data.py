"""Checks for lesson 02's exercise: one step of byte-pair encoding training.

``bpe_merge_step(words, counts, new_id)`` takes the distinct pre-tokens of a
corpus as lists of token ids, how often each occurs, and the id to give the
new token. It returns the most frequent adjacent pair (counted inside words,
weighted by the counts, ties to the smaller pair) and the words with every
occurrence of that pair replaced, left to right, by ``new_id``. Repeating it
is exactly ``lmcourse.data.tokenizers.BPETokenizer.train`` (a test says so).
"""
from __future__ import annotations

import torch

from lmcourse.data.tokenizers import _merge
from lmcourse.grading.checks import Case, Exercise, Mistake, register


def _pair_counts(words, counts):
    totals: dict[tuple[int, int], int] = {}
    for ids, n in zip(words, counts):
        for pair in zip(ids, ids[1:]):
            totals[pair] = totals.get(pair, 0) + n
    return totals


def _most_frequent(totals):
    return min(totals, key=lambda pair: (-totals[pair], pair))


def _bpe_merge_step(words, counts, new_id):
    best = _most_frequent(_pair_counts(words, counts))
    return best, [_merge(list(ids), best, new_id) for ids in words]


# ---------------------------------------------------------------------------
# The classic mistakes, each written as the wrong function a learner might write


def _merge_all(words, pair, new_id):
    return [_merge(list(ids), pair, new_id) for ids in words]


def _wrong_across_words(words, counts, new_id):
    # pairs counted in the running text, words glued end to end
    stream = [t for ids, n in zip(words, counts) for _ in range(n) for t in ids]
    best = _most_frequent(_pair_counts([stream], [1]))
    return best, _merge_all(words, best, new_id)


def _wrong_ignores_counts(words, counts, new_id):
    best = _most_frequent(_pair_counts(words, [1] * len(words)))
    return best, _merge_all(words, best, new_id)


def _wrong_ties_to_largest(words, counts, new_id):
    totals = _pair_counts(words, counts)
    best = max(totals, key=lambda pair: (totals[pair], pair))
    return best, _merge_all(words, best, new_id)


def _wrong_ties_to_first_seen(words, counts, new_id):
    totals = _pair_counts(words, counts)
    best = max(totals, key=totals.get)  # max keeps the first of equal counts
    return best, _merge_all(words, best, new_id)


def _wrong_overlapping(words, counts, new_id):
    # every position where the pair starts becomes a new token: (a, a, a) -> (new, new)
    best = _most_frequent(_pair_counts(words, counts))
    out = []
    for ids in words:
        starts = {i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == best}
        out.append([new_id if i in starts else t for i, t in enumerate(ids)
                    if i in starts or i - 1 not in starts])
    return best, out


def _wrong_right_to_left(words, counts, new_id):
    best = _most_frequent(_pair_counts(words, counts))
    flipped = (best[1], best[0])
    return best, [_merge(list(ids)[::-1], flipped, new_id)[::-1] for ids in words]


def _wrong_keeps_second_token(words, counts, new_id):
    best = _most_frequent(_pair_counts(words, counts))
    out = []
    for ids in words:
        merged = [new_id if (a, b) == best else a for a, b in zip(ids, ids[1:])]
        out.append(merged + list(ids[-1:]))
    return best, out


def _wrong_first_occurrence_only(words, counts, new_id):
    best = _most_frequent(_pair_counts(words, counts))
    out = []
    for ids in words:
        ids = list(ids)
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) == best:
                ids[i:i + 2] = [new_id]
                break
        out.append(ids)
    return best, out


def _wrong_first_word_only(words, counts, new_id):
    best = _most_frequent(_pair_counts(words, counts))
    out, done = [], False
    for ids in words:
        merged = _merge(list(ids), best, new_id)
        if not done and merged != list(ids):
            out.append(merged)
            done = True
        else:
            out.append(list(ids))
    return best, out


# ---------------------------------------------------------------------------
# Cases


def _random_words(gen: torch.Generator, n_words: int, alphabet: int, max_len: int,
                  first_id: int = 0) -> tuple[list[list[int]], list[int]]:
    words = []
    while len(words) < n_words:
        length = int(torch.randint(1, max_len + 1, (1,), generator=gen))
        ids = (torch.randint(0, alphabet, (length,), generator=gen) + first_id).tolist()
        if ids not in words:  # distinct pre-tokens, as a corpus's word table holds them
            words.append(ids)
    if all(len(w) < 2 for w in words):
        words[0] = [first_id, first_id + 1]
    counts = torch.randint(1, 10, (n_words,), generator=gen).tolist()
    return words, counts


def _cases(gen: torch.Generator) -> list[Case]:
    cases = [
        Case("the worked example", ([[5, 6, 7], [6, 7], [5, 6]], [1, 3, 2], 9)),
        Case("counts decide (a rare word repeats a pair, a frequent word has another)",
             ([[1, 2, 1, 2, 1, 2], [3, 4]], [1, 5], 256)),
        Case("a run of one id (a a a, a a a a)",
             ([[3, 3, 3], [3, 3, 3, 3], [3, 3, 4], [4]], [2, 1, 1, 6], 300)),
        Case("three pairs tie (each occurs twice)",
             ([[5, 6], [9, 8], [1, 2], [7]], [2, 2, 2, 9], 10)),
        Case("the pair twice in one word, and in several words",
             ([[1, 2, 1, 2, 3], [1, 2], [0, 1, 2]], [1, 4, 2], 260)),
        Case("words glued together would make another pair win",
             ([[2, 1], [1, 2], [7, 7]], [6, 1, 2], 11)),
    ]
    for k, (n_words, alphabet, max_len, first_id) in enumerate(
            [(6, 4, 5, 0), (10, 5, 8, 97), (12, 6, 6, 256), (8, 3, 7, 40)]):
        words, counts = _random_words(gen, n_words, alphabet, max_len, first_id)
        new_id = first_id + alphabet + int(torch.randint(0, 50, (1,), generator=gen))
        cases.append(Case(f"random words {k + 1} ({n_words} words)", (words, counts, new_id)))
    return cases


def _diagnose(got, case: Case) -> str | None:
    words, counts, _ = case.args
    totals = _pair_counts(words, counts)
    best = _most_frequent(totals)
    try:
        pair = tuple(int(t) for t in got[0])
    except Exception:
        return None
    if pair == best:
        return ("Your pair is right: check how you replace it in the words (every occurrence, "
                "left to right, a merged token is not reused)")
    if pair not in totals:
        return ("Your pair never occurs side by side inside any one word: pairs are counted "
                "within each word only")
    if totals[pair] < totals[best]:
        return (f"Your pair occurs {totals[pair]} times (inside words, weighted by the counts), "
                f"but another pair occurs {totals[best]} times")
    return "Your pair ties with another for the most frequent: check the tie rule in the prompt"


register(Exercise(
    id="bpe_merge_step",
    title="one step of BPE training",
    reference=_bpe_merge_step,
    cases=_cases,
    mistakes=[
        Mistake("you counted pairs across word boundaries (the last id of one word and the "
                "first of the next)",
                "pre-tokens are separate: count the pairs inside each word, then multiply by "
                "that word's count", _wrong_across_words),
        Mistake("you forgot the word frequencies: every word counts once",
                "a word that occurs n times contributes each of its pairs n times",
                _wrong_ignores_counts),
        Mistake("ties go to the largest pair instead of the smallest",
                "among pairs with the same count, pick the smallest (a, b) in Python's tuple "
                "order", _wrong_ties_to_largest),
        Mistake("ties go to the pair you saw first (max() and Counter.most_common keep the "
                "first of equal counts)",
                "among pairs with the same count, pick the smallest (a, b) in Python's tuple "
                "order, whatever order you met them in", _wrong_ties_to_first_seen),
        Mistake("you merged overlapping pairs: in a a a both (a, a) pairs became new tokens",
                "scan left to right; once a pair is merged, its two tokens are used up, so "
                "(a, a, a) becomes (new, a)", _wrong_overlapping),
        Mistake("you merged from the right: (a, a, a) became (a, new)",
                "scan each word from the left, so (a, a, a) becomes (new, a)",
                _wrong_right_to_left),
        Mistake("after merging a pair you kept its second token (the scan moved on by one, "
                "not two)",
                "when the pair matches at position i, emit the new id and continue at i + 2",
                _wrong_keeps_second_token),
        Mistake("only the first occurrence of the pair in each word was replaced",
                "replace every occurrence in the word, not just the first one found",
                _wrong_first_occurrence_only),
        Mistake("only one word was merged",
                "the new token replaces the pair in every word that contains it",
                _wrong_first_word_only),
    ],
    diagnose=_diagnose,
    output_names=("pair", "words"),
    inplace_message=(
        "Looks like you changed the input lists in place, so the caller's word table is "
        "corrupted (a training loop that keeps the old words, or retries a step, breaks). "
        "Hint: build new lists for the merged words and leave words and counts as they were"),
    passed_message="All cases pass: repeating your step trains the same merges as "
                   "BPETokenizer.train.",
))
