"""What the grading tests share: run a check quickly, read its feedback as one string."""
from lmcourse.grading import check


def run(exercise, answer, **options):
    """``check()`` with a short time limit: the tests' answers are small or deliberately stuck."""
    options.setdefault("time_limit", 2.0)
    return check(exercise, answer, **options)


def text(result) -> str:
    """All of a result's feedback, lower-cased, for ``in`` assertions."""
    return " ".join(result.feedback).lower()
