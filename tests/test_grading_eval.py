"""The lcs_length check: its reference is the package's LCS, every correct form passes
(table, one row, memoised recursion), the classic mistakes are named, and a recursion
without a memo is stopped by the time limit on the long case."""
import functools

import pytest

from grading_helpers import assert_every_mistake_recognised, assert_fails_naming, run, text

from lmcourse.grading import get_exercise
from lmcourse.metrics import lcs_length

pytestmark = pytest.mark.usefixtures("home")


def test_reference_is_the_package_lcs_and_every_mistake_is_recognised():
    assert get_exercise("lcs_length").reference is lcs_length
    assert_every_mistake_recognised("lcs_length")


# ---------------------------------------------------------------------------
# Every correct form passes


def lcs_full_table(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    return table[len(a)][len(b)]


def lcs_two_rows(a, b):
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def lcs_memoised_recursion(a, b):
    @functools.lru_cache(maxsize=None)
    def best(i, j):  # LCS of a[i:] and b[j:]
        if i == len(a) or j == len(b):
            return 0
        if a[i] == b[j]:
            return 1 + best(i + 1, j + 1)
        return max(best(i + 1, j), best(i, j + 1))
    return best(0, 0)


def lcs_as_float(a, b):
    return float(lcs_full_table(a, b))


@pytest.mark.parametrize("answer", [lcs_full_table, lcs_two_rows, lcs_memoised_recursion, lcs_as_float])
def test_every_correct_form_passes(answer):
    result = run("lcs_length", answer)
    assert result.passed, str(result)


# ---------------------------------------------------------------------------
# The classic mistakes, written as a learner would, are named


def lcs_substring(a, b):
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


def lcs_common_tokens(a, b):
    remaining = list(b)
    count = 0
    for x in a:
        if x in remaining:
            remaining.remove(x)
            count += 1
    return count


def lcs_corner_off_by_one(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a)):  # stops one row short
        for j in range(1, len(b)):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[len(a) - 1][len(b) - 1] if a and b else 0


def lcs_two_pointers(a, b):
    j, count = 0, 0
    for x in a:
        for k in range(j, len(b)):
            if b[k] == x:
                count, j = count + 1, k + 1
                break
    return count


def lcs_lowercased(a, b):
    return lcs_full_table([x.lower() for x in a], [y.lower() for y in b])


def lcs_of_strings(a, b):
    return lcs_full_table(" ".join(a), " ".join(b))


def lcs_plain_recursion(a, b):
    if not a or not b:
        return 0
    if a[-1] == b[-1]:
        return 1 + lcs_plain_recursion(a[:-1], b[:-1])
    return max(lcs_plain_recursion(a[:-1], b), lcs_plain_recursion(a, b[:-1]))


def lcs_returns_the_subsequence(a, b):
    return [x for x in a if x in b]


WRONG = [
    (lcs_substring, "adjacent tokens (a substring)"),
    (lcs_common_tokens, "whatever their order"),
    (lcs_corner_off_by_one, "one row and one column too early"),
    (lcs_two_pointers, "greedily"),
    (lcs_lowercased, "ignoring case"),
    (lcs_of_strings, "characters of the joined texts"),
    (lcs_returns_the_subsequence, "got a list"),
]


@pytest.mark.parametrize("answer, keyword", WRONG, ids=[f.__name__ for f, _ in WRONG])
def test_classic_mistakes_are_named(answer, keyword):
    assert_fails_naming("lcs_length", answer, keyword)


def test_a_recursion_without_a_memo_is_stopped_on_the_long_case():
    result = run("lcs_length", lcs_plain_recursion, record=False)
    assert not result.passed and result.score == result.max_score - 1, str(result)
    feedback = text(result)
    assert "two 150-token texts" in feedback and "took longer than 2 s" in feedback
    assert "recomputes the same prefixes" in feedback


def test_a_non_number_answer_is_told_an_int_is_expected():
    from lmcourse.grading import check

    result = check("lcs_length", lambda a, b: [len(a)], record=False)
    assert any("expected a Python int, got a list" in line for line in result.feedback)
