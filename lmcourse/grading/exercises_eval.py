"""Checks for lesson 09's exercises: BLEU's clipped n-gram precision, ROUGE-L's LCS.

- ``modified_precision(hypothesis, references, n)`` takes tokenised sentences
  (lists of strings) and returns a Python float. The reference is written here
  with ``collections.Counter``; ``lmcourse.metrics.bleu`` pools the same
  clipped counts over a corpus (Papineni et al., 2002).
- ``lcs_length(a, b)`` takes two token lists and returns the length of their
  longest common subsequence, a Python int: the quantity behind ROUGE-L (Lin,
  2004). The reference is ``lmcourse.metrics.lcs_length``.
"""
from __future__ import annotations

from collections import Counter

import torch

from lmcourse.grading.checks import Case, Exercise, Mistake, register
from lmcourse.metrics import lcs_length as _lcs_length


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


# ---------------------------------------------------------------------------
# lcs_length: the longest common subsequence of two token lists


def _wrong_substring(a, b):
    """The longest common run of *adjacent* tokens."""
    best, run = 0, [0] * (len(b) + 1)
    for x in a:
        new = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                new[j] = run[j - 1] + 1
                best = max(best, new[j])
        run = new
    return best


def _wrong_bag(a, b):
    """Shared tokens counted regardless of order."""
    return sum((Counter(a) & Counter(b)).values())


def _table(a, b, on_match):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                table[i][j] = on_match(table, i, j)
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table


def _wrong_corner(a, b):
    """The table's entry one row and one column before the corner: the last tokens are dropped."""
    return _table(a, b, lambda t, i, j: t[i - 1][j - 1] + 1)[max(len(a) - 1, 0)][max(len(b) - 1, 0)]


def _wrong_match_from_neighbour(a, b):
    """On a match, one more than the better neighbour instead of the diagonal."""
    return _table(a, b, lambda t, i, j: max(t[i - 1][j], t[i][j - 1]) + 1)[-1][-1]


def _wrong_greedy(a, b):
    """Each token of a matched to its first occurrence in b after the previous match."""
    count, start = 0, 0
    for x in a:
        if x in b[start:]:
            start = b.index(x, start) + 1
            count += 1
    return count


def _wrong_ignoring_case(a, b):
    return _lcs_length([x.lower() for x in a], [y.lower() for y in b])


def _wrong_characters(a, b):
    """The LCS of the two texts' characters, spaces included, instead of their tokens."""
    return _lcs_length(" ".join(a), " ".join(b))


_WORDS = ("the", "a", "cat", "dog", "sat", "ran", "on", "mat", "rug", "fast", "and", "then")


def _random_tokens(gen: torch.Generator, length: int, vocabulary: int) -> list[str]:
    return [_WORDS[i] if vocabulary <= len(_WORDS) else f"w{i}"
            for i in torch.randint(vocabulary, (length,), generator=gen).tolist()]


def _lcs_cases(gen: torch.Generator) -> list[Case]:
    s = str.split
    # Short random pairs (3 to 9 tokens), so that only the long case below tells a
    # slow answer from a fast one, and says so by its name.
    random_pairs = [(_random_tokens(gen, int(torch.randint(3, 10, (), generator=gen)), 6),
                     _random_tokens(gen, int(torch.randint(3, 10, (), generator=gen)), 6))
                    for _ in range(4)]
    return [
        Case("the worked example", (s("the cat sat on the mat"), s("the cat lay on a mat"))),
        Case("the same words in reverse order", (s("a b c d e f"), s("f e d c b a"))),
        Case("a token that matches late", (s("x a b c"), s("a b c x"))),
        Case("a repeated token against a single one", (s("a a a"), s("a"))),
        Case("tokens that differ only in case", (s("The Cat sat"), s("the cat sat"))),
        Case("tokens that share letters but are not equal", (s("ab c de"), s("a bc d e"))),
        Case("one sentence inside the other", (s("cat on mat"), s("the cat sat on the mat today"))),
        Case("identical sentences", (s("to be or not to be"), s("to be or not to be"))),
        Case("an empty first list (must give 0)", ([], s("the cat"))),
        Case("an empty second list (must give 0)", (s("the cat"), [])),
        *(Case(f"random sentences {i + 1}", pair) for i, pair in enumerate(random_pairs)),
        # Last, because a time-out skips the cases after it.
        # 150 tokens: deep enough to stop a recursion without a memo, shallow enough for
        # a memoised one (one level per token of either text) to fit Python's stack.
        Case("two 150-token texts (a recursion that recomputes the same prefixes "
             "needs astronomically many calls here)",
             (_random_tokens(gen, 150, 40), _random_tokens(gen, 150, 40))),
    ]


register(Exercise(
    id="lcs_length",
    title="ROUGE-L's longest common subsequence",
    reference=_lcs_length,
    cases=_lcs_cases,
    mistakes=[
        Mistake("you found the longest common run of adjacent tokens (a substring), "
                "not a subsequence",
                "a subsequence keeps the order but may skip tokens in either list: "
                "'the cat sat' is a subsequence of 'the black cat sat down'", _wrong_substring),
        Mistake("you counted the tokens the two lists share, whatever their order",
                "'a b' and 'b a' share two tokens, but their longest common subsequence has "
                "length 1: the order must be the same in both", _wrong_bag),
        Mistake("you read the answer one row and one column too early: the last token of "
                "each list is left out",
                "if entry (i, j) stands for the first i tokens of a and the first j of b, "
                "the answer is the entry for all of a and all of b", _wrong_corner),
        Mistake("a match adds 1 to a neighbouring entry, so one token is matched twice",
                "when a[i] equals b[j], both tokens are used up: extend the best subsequence "
                "of the two prefixes that end just before them", _wrong_match_from_neighbour),
        Mistake("you matched each token greedily to its first occurrence",
                "an early match can block a longer subsequence ('x a b c' against "
                "'a b c x'): the best choice depends on what comes later, so compare both "
                "options (skip a token of a, or skip one of b) for every pair of prefixes",
                _wrong_greedy),
        Mistake("you compared tokens ignoring case",
                "tokens are compared exactly as given: 'The' and 'the' differ (ROUGE "
                "lower-cases when it tokenises, before it computes the LCS)", _wrong_ignoring_case),
        Mistake("you compared characters of the joined texts, not tokens",
                "the inputs are lists of tokens: the unit of the subsequence is one list "
                "item, and spaces play no part", _wrong_characters),
    ],
    error_hints={
        "maximum recursion depth": "a recursion one level deep per token runs out of stack on "
                                   "long texts: fill a table with loops instead",
        "list index out of range": "with a table of one more row than a has tokens and one "
                                   "more column than b, row 0 and column 0 stand for empty "
                                   "prefixes",
    },
    passed_message="All cases pass: a longest common subsequence, in time on long texts too.",
))
