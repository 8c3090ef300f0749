"""Marking an answer to one question: choice, numeric, code (by the exercise's check), short.

``mark(question, answer)`` returns a ``Mark``: right or wrong (None for a short
answer, which the learner marks against the model answer), and a line of
feedback. Bad input (an option number out of range, text that is not a number)
is wrong, with feedback that says what was expected; it never raises.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lmcourse.drills.bank import Question, check_language

# Multipliers a learner may write after a number: 7B, 1.5 GiB, 16k, 3e9.
_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12,
           "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
           "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
           "万": 1e4, "亿": 1e8}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d[\d,_]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)\s*"
                     r"(kib|mib|gib|tib|kb|mb|gb|tb|k|m|b|g|t|万|亿)?\s*"
                     r"(?:bytes?|字节|flops?|parameters?|params?|tokens?)?\s*$", re.I)


@dataclass(frozen=True)
class Mark:
    correct: bool | None  # None: a short answer, for the learner to judge
    feedback: str
    given: str = ""


def parse_number(text: str) -> float:
    """A number as a learner types it: ``112e9``, ``112,000,000,000``, ``112 GB``, ``1.5 GiB``,
    ``7B``, ``70亿``. Raises ``ValueError`` saying what was expected."""
    match = _NUMBER.match(str(text))
    suffix = (match.group(2) or "").lower() if match else ""
    if not match or suffix not in _SUFFIX:
        raise ValueError(f"expected a number such as 1.5e9, 1,500,000,000 or 1.5 GB, got "
                         f"{str(text)[:40]!r}")
    return float(match.group(1).replace(",", "").replace("_", "")) * _SUFFIX[suffix]


def format_number(value: float) -> str:
    """A number as the feedback shows it: exact integers in full, others to 4 figures."""
    if float(value).is_integer() and abs(value) < 1e16:
        return f"{int(value):,}"
    return f"{value:.4g}"


def choice_index(question: Question, answer) -> int:
    """The option a learner chose, from an index (0-based) or a letter ("b")."""
    given = answer
    if isinstance(answer, str):
        text = answer.strip().lower()
        if len(text) == 1 and "a" <= text <= "z":
            answer = ord(text) - ord("a")
        elif text.isdigit():
            answer = int(text)
        else:
            raise ValueError(f"expected a letter a-{chr(ord('a') + len(question.choices) - 1)}, "
                             f"got {answer!r}")
    if isinstance(answer, bool) or not isinstance(answer, int) or not (
            0 <= answer < len(question.choices)):
        raise ValueError(f"expected an option from a to "
                         f"{chr(ord('a') + len(question.choices) - 1)}, got {given!r}")
    return answer


def run_snippet(source: str, function: str):
    """The function ``function`` that ``source`` defines, run in a fresh namespace with the
    imports an exercise uses (torch, math). Raises what the code raises."""
    import torch

    namespace = {"torch": torch, "math": math, "__name__": "drill_snippet"}
    exec(compile(source, "<your code>", "exec"), namespace)  # noqa: S102 - the learner's own code
    if not callable(namespace.get(function)):
        raise NameError(f"your code must define a function called {function}()")
    return namespace[function]


def mark(question: Question, answer, language: str = "en") -> Mark:
    """Mark ``answer``: an option (index or letter) for choice, a number or text for numeric,
    source code defining the function for code, any text for short."""
    language = check_language(language)
    zh = language == "zh"
    given = str(answer)
    if question.kind == "choice":
        try:
            index = choice_index(question, answer)
        except ValueError as exc:
            return Mark(False, str(exc), given)
        letter = chr(ord("a") + question.correct)
        right = question.choice_texts(language)[question.correct]
        if index == question.correct:
            return Mark(True, "正确。" if zh else "Right.", chr(ord("a") + index))
        return Mark(False, (f"不对：正确答案是 {letter}) {right}" if zh
                            else f"Not quite: the answer is {letter}) {right}"),
                    chr(ord("a") + index))
    if question.kind == "numeric":
        expected = question.numeric.result
        unit = question.numeric.unit[language]
        try:
            value = float(answer) if isinstance(answer, (int, float)) and not isinstance(
                answer, bool) else parse_number(answer)
        except ValueError as exc:
            return Mark(False, str(exc), given)
        close = math.isclose(value, expected, rel_tol=question.numeric.rel_tol)
        shown = f"{format_number(expected)} {unit}"
        if close:
            return Mark(True, f"正确：{shown}。" if zh else f"Right: {shown}.", given)
        ratio = value / expected if expected else math.inf
        hint = ""
        if expected and any(math.isclose(ratio, r, rel_tol=0.02) for r in (2, 0.5, 4, 0.25, 8,
                                                                           0.125)):
            in_bytes = "byte" in question.numeric.unit["en"]
            check_zh, check_en = (
                ("每个元素的字节数和因子 2", "bytes per element and factors of 2") if in_bytes
                else ("公式里的每个因子", "each factor of the formula"))
            hint = (f"（你的答案是正确值的 {ratio:g} 倍：检查{check_zh}）" if zh
                    else f" (yours is {ratio:g}x the answer: check {check_en})")
        return Mark(False, (f"不对：答案是 {shown}{hint}" if zh
                            else f"Not quite: the answer is {shown}{hint}"), given)
    if question.kind == "code":
        from lmcourse.grading import check

        try:
            fn = run_snippet(str(answer), question.code.function)
        except Exception as exc:  # noqa: BLE001 - the learner's code; say what went wrong
            message = f"{exc.__class__.__name__}: {exc}"
            return Mark(False, (f"代码无法运行：{message}" if zh
                                else f"Your code did not run: {message}"), given)
        result = check(question.code.exercise, fn, record=False)
        hints = " ".join(result.feedback)
        summary = f"{result.score}/{result.max_score} checks"
        if result.passed:
            return Mark(True, (f"正确：通过 {summary}。" if zh else f"Right: passes {summary}."),
                        given)
        return Mark(False, (f"还不对：{summary}。{hints}" if zh
                            else f"Not yet: {summary}. {hints}").strip(), given)
    return Mark(None, ("请对照参考答案自评。" if zh else "Compare with the model answer."), given)
