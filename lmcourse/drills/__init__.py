"""Interview drills: the course's bilingual question bank, marking, spaced repetition, a quiz.

    from lmcourse import drills
    questions = drills.load_questions()            # the bank, checked against its schema
    seed = drills.select(questions, tags=["seed"])  # filter by lesson, tag, difficulty, kind
    drills.mark(seed[0], "b")                     # right or wrong, with feedback

``python -m lmcourse drill`` drills in a terminal; lesson 12 has the quiz.
"""
from lmcourse.drills.answers import Mark, mark, parse_number
from lmcourse.drills.bank import (
    DIFFICULTIES,
    KINDS,
    LANGUAGES,
    LESSONS,
    BankError,
    Question,
    load_questions,
    select,
)

__all__ = ["BankError", "DIFFICULTIES", "KINDS", "LANGUAGES", "LESSONS", "Mark", "Question",
           "load_questions", "mark", "parse_number", "select"]
