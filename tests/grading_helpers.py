"""What the grading tests share: run a check quickly, read its feedback as one string,
and the assertions every exercise's "wrong answers" tests make."""
import functools
import re
from pathlib import Path

import nbformat

from lmcourse.grading import check, get_exercise
from lmcourse.grading.checks import evaluate
from lmcourse.grading.notebooks import BEGIN, END
from lmcourse.grading.safe_call import run_answer

ROOT = Path(__file__).resolve().parents[1]


def run(exercise, answer, **options):
    """``check()`` with a short time limit: the tests' answers are small or deliberately stuck."""
    options.setdefault("time_limit", 2.0)
    return check(exercise, answer, **options)


def text(result) -> str:
    """All of a result's feedback, lower-cased, for ``in`` assertions."""
    return " ".join(result.feedback).lower()


@functools.lru_cache(maxsize=None)
def solution_lines() -> tuple[str, ...]:
    """The code lines of every worked solution in solutions/: feedback must never contain them."""
    lines, inside = [], False
    cells = [cell for path in sorted((ROOT / "solutions").glob("*.ipynb"))
             for cell in nbformat.read(path, as_version=4).cells]
    for cell in cells:
        for line in cell.source.split("\n"):
            if line.strip() == BEGIN:
                inside = True
            elif line.strip() == END:
                inside = False
            elif inside and line.strip() and not line.strip().startswith("#"):
                lines.append(line.split("#")[0].strip())
    assert len(lines) >= 8
    return tuple(lines)


def assert_no_solution(result):
    """The feedback quotes no line of any solution (nor the calls that give softmax away)."""
    # Feedback may quote the learner's own line of code (`...`); the rest is ours.
    feedback = re.sub(r"`[^`]*`", "", " ".join(result.feedback))
    for line in solution_lines():
        assert line not in feedback, f"feedback gives away the solution: {line!r}"
    for call in ("logsumexp(", "amax(", ".max(dim", "gather(", "torch.arange(", "math.exp("):
        assert call not in feedback


def _named_mistakes(exercise, result) -> set[str]:
    """The declared mistakes' messages that appear in ``result``'s feedback."""
    feedback = " ".join(result.feedback)
    return {m.message() for m in get_exercise(exercise).mistakes if m.message() in feedback}


class ReferenceAnswer:
    """The reference (or a wrong variant built on it), called the way an answer is (a
    worker thread, the time limit, plain values), but not as check()'s LocalAnswer:
    check() rightly fails a learner's function that calls the reference, so these cannot
    be graded through check() itself."""

    def __init__(self, fn):
        self.fn, self.name = fn, fn.__name__

    def call(self, args, kwargs, time_limit):
        return run_answer(self.fn, args, kwargs, time_limit)

    def gradients(self, args, kwargs, weight, time_limit):
        return run_answer(self.fn, args, kwargs, time_limit, gradients=True, weight=weight)


def run_unguarded(exercise, fn):
    """Grade ``fn``, which may call the reference, with check()'s judging (``evaluate``)."""
    result, _ = evaluate(get_exercise(exercise), ReferenceAnswer(fn), 2.0)
    return result


def assert_reference_gets_full_marks(exercise):
    result = run_unguarded(exercise, get_exercise(exercise).reference)
    assert result.passed and result.score == result.max_score > 0, str(result)


def assert_fails_naming(exercise, answer, keyword):
    """A wrong answer, written as a learner would, fails with a score below full marks,
    its feedback contains ``keyword`` and quotes no solution, and it names at most one
    declared mistake: the one whose message holds ``keyword`` (one bug, one story)."""
    result = run(exercise, answer, record=False)
    assert not result.passed and result.status == "failed", str(result)
    assert result.score < result.max_score
    assert keyword.lower() in text(result), str(result)
    named = _named_mistakes(exercise, result)
    assert len(named) <= 1, f"several mistakes named for one bug: {str(result)}"
    assert all(keyword.lower() in m.lower() for m in named), str(result)
    assert_no_solution(result)


def assert_every_mistake_recognised(exercise):
    """The reference gets full marks; each declared ``Mistake`` fails, its own message is
    in the feedback and no other mistake's, and the feedback quotes no solution."""
    assert_reference_gets_full_marks(exercise)
    for mistake in get_exercise(exercise).mistakes:
        # Some wrong variants are built on the reference, so they too run outside the guard.
        result = run_unguarded(exercise, mistake.wrong)
        assert not result.passed and result.status == "failed", (mistake.what, str(result))
        assert result.score < result.max_score
        assert _named_mistakes(exercise, result) == {mistake.message()}, (mistake.what, str(result))
        assert_no_solution(result)
