"""Checks for the course's exercises, and the tools that make and grade them.

In an exercise notebook::

    from lmcourse.grading import check
    check("softmax", softmax)     # displays a CheckResult

``progress()`` returns the best score reached on each exercise. The command
``python -m lmcourse exercises solutions exercises`` makes the learner's
notebooks from the solutions; ``python -m lmcourse grade`` runs a class's
notebooks in a sandbox and scores them into a CSV grade book
(``lmcourse.grading.grade``).

A module of checks registers its exercises when imported; add a new module
to the imports below.
"""
from lmcourse.grading.checks import (
    Case,
    Exercise,
    Mistake,
    check,
    get_exercise,
    known_exercises,
    register,
)
from lmcourse.grading.learner_progress import progress, progress_path
from lmcourse.grading.result import MIME_TYPE, CheckResult

from lmcourse.grading import exercises_lm  # noqa: E402,F401  (registers lesson 01's checks)
from lmcourse.grading import exercises_data  # noqa: E402,F401  (lesson 02's checks)
from lmcourse.grading import exercises_rnn  # noqa: E402,F401  (lessons 03-04's checks)
from lmcourse.grading import exercises_transformer  # noqa: E402,F401  (lesson 06's checks)
from lmcourse.grading import exercises_eval  # noqa: E402,F401  (lesson 09's checks)
from lmcourse.grading import exercises_compress  # noqa: E402,F401  (lesson 07's checks)
from lmcourse.grading import exercises_dialogue  # noqa: E402,F401  (lesson 11's checks)
from lmcourse.grading import exercises_multimodal  # noqa: E402,F401  (lesson 10's checks)

__all__ = [
    "Case", "CheckResult", "Exercise", "MIME_TYPE", "Mistake", "check", "get_exercise",
    "known_exercises", "progress", "progress_path", "register",
]
