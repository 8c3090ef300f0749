"""The quiz widget: clicking an option marks it and shows feedback, the language toggle, filters,
the summary, and answers recorded in the progress store."""
import pytest

pytest.importorskip("ipywidgets")

from lmcourse.drills import bank  # noqa: E402
from lmcourse.drills.quiz import CHOICE_CLASS, FEEDBACK_CLASS, Quiz, quiz  # noqa: E402

QUESTIONS = bank.load_questions()


class Recorder:
    def __init__(self):
        self.calls = []

    def record(self, qid, correct):
        self.calls.append((qid, correct))

    def due(self, questions):
        return list(questions)[::-1]  # a visible reordering


def choice_quiz(**kwargs):
    return quiz(kinds=["choice"], lessons=["06"], count=4, seed=1, progress=False, **kwargs)


def test_clicking_the_right_and_a_wrong_option():
    q = choice_quiz()
    q.widget  # build
    buttons = q._inputs.children
    assert all(CHOICE_CLASS in b._dom_classes for b in buttons)
    assert FEEDBACK_CLASS in q._feedback._dom_classes
    buttons[q.current.correct].click()
    assert "Right" in q._feedback.value and "Answer:" in q._feedback.value
    q._next.click()
    wrong = (q.current.correct + 1) % len(q.current.choices)
    q._inputs.children[wrong].click()
    assert "Not quite" in q._feedback.value
    s = q.summary()
    assert s["answered"] == 2 and s["right"] == 1 and len(s["review"]) == 1
    assert "1 right of 2 answered" in q._summary.value


def test_language_toggle_re_renders_in_chinese():
    q = choice_quiz()
    q.widget
    q._inputs.children[q.current.correct].click()
    q._lang.value = "zh"
    assert "正确" in q._feedback.value
    assert q.current.text("question", "zh") in q._question.value.replace("&#x27;", "'") or \
        "题" in q._status.value
    short = Quiz([next(x for x in QUESTIONS if x.kind == "short")])
    short.widget
    short.answer(True)
    assert "I had it" in short._feedback.value
    short._lang.value = "zh"
    assert "我答对了" in short._feedback.value and "I had it" not in short._feedback.value


def test_filters_and_bad_filters():
    q = quiz(progress=False)
    q.filter(lessons=["09"], kinds=["numeric"])
    assert q.questions and all(x.lesson == "09" and x.kind == "numeric" for x in q.questions)
    with pytest.raises(ValueError, match="unknown lesson"):
        q.filter(lessons=["9"])
    with pytest.raises(ValueError, match="count must be a positive integer"):
        quiz(count=0, progress=False)


def test_numeric_code_and_short_answers_and_progress():
    rec = Recorder()
    numeric = next(x for x in QUESTIONS if x.kind == "numeric")
    code = next(x for x in QUESTIONS if x.kind == "code")
    short = next(x for x in QUESTIONS if x.kind == "short")
    q = Quiz([numeric, code, short], progress=rec)
    assert q.current.id == short.id  # the store's order comes first
    with pytest.raises(TypeError, match="answer\\(True\\)"):
        q.answer("I think so")
    assert q.answer(False).correct is False
    q.next()
    assert q.answer(code.code.fixed).correct is True
    q.next()
    assert q.answer(str(numeric.numeric.result)).correct is True
    assert rec.calls == [(short.id, False), (code.id, True), (numeric.id, True)]
    assert q.next() is None and "All done" in q.text()


def test_class_mode_needs_a_results_file_and_a_name():
    with pytest.raises(ValueError, match="class mode needs"):
        Quiz(QUESTIONS[:2], class_set=object())
