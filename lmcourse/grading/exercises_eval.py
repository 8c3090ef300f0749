"""Checks for lesson 09's exercise: BLEU's clipped ("modified") n-gram precision.

``modified_precision(hypothesis, references, n)`` takes tokenised sentences
(lists of strings) and returns a Python float. The reference is written here
with ``collections.Counter``; ``lmcourse.metrics.bleu`` pools the same clipped
counts over a corpus (Papineni et al., 2002).
"""
from __future__ import annotations

from collections import Counter

import torch

from lmcourse.grading.checks import Case, Exercise, Mistake, register


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _modified_precision(hypothesis, references, n):
    counts = _ngrams(hypothesis, n)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    limit = Counter()
    for ref in references:
        limit |= _ngrams(ref, n)  # | keeps the larger count: the clipping limit
    return sum(min(c, limit[g]) for g, c in counts.items()) / total


def _wrong_unclipped(hypothesis, references, n):
    counts = _ngrams(hypothesis, n)
    seen = set().union(*(_ngrams(r, n) for r in references))
    total = sum(counts.values())
    return sum(c for g, c in counts.items() if g in seen) / total if total else 0.0


def _wrong_clip_by_sum(hypothesis, references, n):
    counts = _ngrams(hypothesis, n)
    limit = sum((_ngrams(r, n) for r in references), Counter())
    total = sum(counts.values())
    return sum(min(c, limit[g]) for g, c in counts.items()) / total if total else 0.0


def _matches(hypothesis, references, n):
    counts = _ngrams(hypothesis, n)
    limit = Counter()
    for ref in references:
        limit |= _ngrams(ref, n)
    return sum(min(c, limit[g]) for g, c in counts.items())


def _wrong_reference_denominator(hypothesis, references, n):
    total = sum(_ngrams(references[0], n).values())
    return _matches(hypothesis, references, n) / total if total else 0.0


def _wrong_longest_reference_denominator(hypothesis, references, n):
    total = max(sum(_ngrams(r, n).values()) for r in references)
    return _matches(hypothesis, references, n) / total if total else 0.0


def _wrong_word_denominator(hypothesis, references, n):
    if len(hypothesis) < n:
        return 0.0
    return _matches(hypothesis, references, n) / len(hypothesis)


def _wrong_unique(hypothesis, references, n):
    distinct = set(_ngrams(hypothesis, n))
    seen = set().union(*(_ngrams(r, n) for r in references))
    return len(distinct & seen) / len(distinct) if distinct else 0.0


def _cases(gen: torch.Generator) -> list[Case]:
    s = str.split
    return [
        Case("a repeated word, two references (n=1)",
             (s("a a a a a a"), [s("a dog sat on a rug"), s("there was a dog on the rug")], 1)),
        Case("bigrams, one reference (n=2)",
             (s("the dog sat on the rug today"), [s("the dog sat on the mat today")], 2)),
        Case("a shorter hypothesis than the references (n=1)",
             (s("the dog sat"), [s("the big dog sat on the mat"), s("a dog was sitting")], 1)),
        Case("clipping by the most generous reference (n=1)",
             (s("on on on the the mat"), [s("on the mat on the rug"), s("the cat on the mat")], 1)),
        Case("a repeated bigram (n=2)",
             (s("to be to be to be"), [s("to be or not to be"), s("to be is to do")], 2)),
        Case("4-grams, three references",
             (s("the quick brown fox jumps over the lazy dog"),
              [s("a quick brown fox jumped over the lazy dog"),
               s("the quick brown fox leaps over the lazy dog"),
               s("the fast brown fox jumps over a dog")], 4)),
        Case("no n-gram in common (n=2)", (s("green ideas sleep"), [s("colourless dreams wake")], 2)),
        Case("a hypothesis shorter than n (must give 0.0)", (s("hello there"), [s("hello there you")], 3)),
        Case("an empty hypothesis (must give 0.0)", ([], [s("anything at all")], 1)),
    ]


register(Exercise(
    id="modified_precision",
    title="BLEU's modified n-gram precision",
    reference=_modified_precision,
    cases=_cases,
    mistakes=[
        Mistake("your n-gram counts are not clipped: an n-gram repeated in the hypothesis "
                "is counted every time it appears, however rarely the references contain it",
                "count each hypothesis n-gram at most as many times as it appears in a "
                "single reference: min(count, max count over the references)",
                _wrong_unclipped),
        Mistake("you clipped by the total count over all references",
                "the limit is the largest count in any ONE reference (Counter's | operator "
                "keeps the maximum), not the sum", _wrong_clip_by_sum),
        Mistake("you divided by the number of n-grams in a reference",
                "precision is about the hypothesis: divide by the number of n-grams in the "
                "hypothesis", _wrong_reference_denominator),
        Mistake("you divided by the number of n-grams in a reference",
                "precision is about the hypothesis: divide by the number of n-grams in the "
                "hypothesis", _wrong_longest_reference_denominator),
        Mistake("you divided by the number of words, not the number of n-grams",
                "a sentence of L words has L - n + 1 n-grams", _wrong_word_denominator),
        Mistake("you counted distinct n-grams only",
                "every occurrence counts (a Counter, not a set): the hypothesis 'a a a' "
                "has three unigrams", _wrong_unique),
    ],
    error_hints={
        "division by zero": "a hypothesis with no n-grams (empty, or shorter than n) has "
                            "precision 0.0 by convention; return it before dividing",
    },
    passed_message="All cases pass: clipped counts over the hypothesis's n-grams.",
))
