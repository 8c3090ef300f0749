"""The drills as an ipywidgets quiz: filters, one question at a time, feedback, a summary.

    from lmcourse.drills.quiz import quiz
    q = quiz(lessons=["06"], language="zh")   # displays itself in a notebook
    q.answer("b")                              # the same as clicking option b

Choice questions get one button per option; numeric and code questions a box and
a Check button (code is graded by the exercise's check); short answers show the
model answer and ask whether you had it. With ``progress`` (a ``DrillProgress``,
by default ``$LMCOURSE_HOME/drills.json``) every answer goes into the Leitner
boxes and due questions come first. Without a widget front end the quiz prints
a text version of its question.
"""
from __future__ import annotations

import html
import random
import time

from lmcourse.drills import bank
from lmcourse.drills.answers import Mark, mark
from lmcourse.drills.bank import Question

# Class names the browser test (and a stylesheet) can find.
CHOICE_CLASS = "lmcourse-drill-choice"
CHECK_CLASS = "lmcourse-drill-check"
FEEDBACK_CLASS = "lmcourse-drill-feedback"
SUMMARY_CLASS = "lmcourse-drill-summary"

LABELS = {
    "en": {"check": "Check", "next": "Next", "skip": "Skip", "show": "Show answer",
           "got": "I had it", "missed": "I missed it", "of": "question {i} of {n}",
           "right": "{r} right of {a} answered", "none": "No question matches these filters.",
           "done": "All done.", "answer": "Answer", "why": "Why", "ref": "Reference",
           "short": "In 30 seconds", "review": "To review", "lesson": "Lesson",
           "tag": "Tag", "difficulty": "Difficulty", "kind": "Kind", "any": "any"},
    "zh": {"check": "检查", "next": "下一题", "skip": "跳过", "show": "显示答案",
           "got": "我答对了", "missed": "我没答出", "of": "第 {i} 题，共 {n} 题",
           "right": "已答 {a} 题，答对 {r} 题", "none": "没有符合筛选条件的题目。",
           "done": "全部完成。", "answer": "答案", "why": "解析", "ref": "参考",
           "short": "30 秒版本", "review": "需要复习", "lesson": "课程", "tag": "标签",
           "difficulty": "难度", "kind": "题型", "any": "全部"},
}


class Quiz:
    """A drill over ``questions``; ``widget`` is the ipywidgets view of it."""

    def __init__(self, questions: list[Question], *, language: str = "en", progress=None,
                 class_set=None, results=None, student: str | None = None):
        self.all_questions = list(questions)
        self.language = bank.check_language(language)
        self.progress = progress
        self.class_set, self.results, self.student = class_set, results, student
        if class_set is not None and (results is None or not student):
            raise ValueError("class mode needs results (a file path) and student (a name)")
        self.history: list[tuple[Question, bool | None]] = []
        self._started = time.monotonic()
        self._order(self.all_questions)
        self._widget = None

    # -- the drill itself, usable without widgets --------------------------------------------

    def _order(self, questions):
        if self.progress is not None and self.class_set is None:
            due = self.progress.due(questions)
            seen = {q.id for q in due}
            questions = due + [q for q in questions if q.id not in seen]
        self.questions, self.index, self.last_mark = list(questions), 0, None

    @property
    def current(self) -> Question | None:
        return self.questions[self.index] if self.index < len(self.questions) else None

    def filter(self, *, lessons=None, tags=None, difficulties=None, kinds=None) -> "Quiz":
        """Keep the questions that match (``bank.select``); starts again at the first."""
        self._order(bank.select(self.all_questions, lessons=lessons, tags=tags,
                                difficulties=difficulties, kinds=kinds))
        self._render()
        return self

    def answer(self, value) -> Mark:
        """Mark ``value`` for the current question (a letter or index, a number, code, or for a
        short answer True/False: whether you had it), record it, and show the feedback."""
        q = self.current
        if q is None:
            raise RuntimeError("there is no current question: the quiz is over")
        if q.kind == "short" and not isinstance(value, bool):
            raise TypeError("a short answer is marked by you: answer(True) if you had it, "
                            "answer(False) if not")
        result = self._mark(q, value)
        self.last_mark = result
        self.history.append((q, result.correct))
        if self.progress is not None and result.correct is not None:
            self.progress.record(q.id, bool(result.correct))
        if self.class_set is not None:
            from lmcourse.drills import classroom

            classroom.record_answer(self.results, self.class_set, self.student, q, value,
                                    time.monotonic() - self._started)
        self._started = time.monotonic()
        self._render(feedback=True)
        return result

    def next(self) -> Question | None:
        self.index += 1
        self.last_mark = None
        self._started = time.monotonic()
        self._render()
        return self.current

    def skip(self) -> Question | None:
        return self.next()

    def summary(self) -> dict:
        """Answered, right, by lesson and kind (right, answered), and the ids to review."""
        marked = [(q, c) for q, c in self.history if c is not None]
        by = {"lesson": {}, "kind": {}}
        for q, c in marked:
            for key in by:
                right, answered = by[key].get(getattr(q, key), (0, 0))
                by[key][getattr(q, key)] = (right + bool(c), answered + 1)
        return {"answered": len(marked), "right": sum(bool(c) for _, c in marked),
                "by_lesson": by["lesson"], "by_kind": by["kind"],
                "review": [q.id for q, c in marked if not c]}

    def text(self) -> str:
        """The current question as plain text (what shows without a widget front end)."""
        q, lang = self.current, self.language
        if q is None:
            return LABELS[lang]["done"]
        lines = [f"[{q.lesson} · {q.difficulty} · {q.kind}] {q.text('question', lang)}"]
        lines += [f"  {chr(97 + i)}) {c}" for i, c in enumerate(q.choice_texts(lang))]
        if q.kind == "code":
            lines.append(q.code.broken)
        return "\n".join(lines)

    # -- the widget ----------------------------------------------------------------------------

    @property
    def widget(self):
        if self._widget is None:
            self._build()
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display

        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            print(self.text() + "\n(install ipywidgets for the interactive quiz)")
            return
        print(self.text())  # what shows where widgets cannot render (nbval, a terminal)
        display(self.widget)

    def _build(self):
        import ipywidgets as widgets

        L = LABELS[self.language]
        tags = sorted({t for q in self.all_questions for t in q.tags})
        self._filters = {
            "lessons": widgets.Dropdown(options=[(L["any"], None)] + [(k, k) for k in bank.LESSONS],
                                        description=L["lesson"]),
            "tags": widgets.Dropdown(options=[(L["any"], None)] + [(t, t) for t in tags],
                                     description=L["tag"]),
            "difficulties": widgets.Dropdown(
                options=[(L["any"], None)] + [(d, d) for d in bank.DIFFICULTIES],
                description=L["difficulty"]),
            "kinds": widgets.Dropdown(options=[(L["any"], None)] + [(k, k) for k in bank.KINDS],
                                      description=L["kind"]),
        }
        self._lang = widgets.ToggleButtons(options=[("EN", "en"), ("中文", "zh")],
                                           value=self.language)
        for w in self._filters.values():
            w.observe(lambda change: self._apply_filters(), names="value")
        self._lang.observe(self._switch_language, names="value")
        self._status = widgets.HTML()
        self._question = widgets.HTML()
        self._inputs = widgets.VBox()
        self._feedback = widgets.HTML()
        self._feedback.add_class(FEEDBACK_CLASS)
        self._next = widgets.Button(description=L["next"])
        self._skip = widgets.Button(description=L["skip"])
        self._next.on_click(lambda _: self.next())
        self._skip.on_click(lambda _: self.skip())
        self._summary = widgets.HTML()
        self._summary.add_class(SUMMARY_CLASS)
        self._widget = widgets.VBox([
            widgets.HBox(list(self._filters.values())[:2]),
            widgets.HBox(list(self._filters.values())[2:] + [self._lang]),
            self._status, self._question, self._inputs, self._feedback,
            widgets.HBox([self._skip, self._next]), self._summary])
        self._render()

    def _apply_filters(self):
        chosen = {k: w.value for k, w in self._filters.items() if w.value is not None}
        self.filter(**chosen)

    def _mark(self, q, value) -> Mark:
        """The feedback for ``value`` in the quiz's language; a short answer is self-marked."""
        if q.kind == "short":
            return Mark(value, LABELS[self.language]["got" if value else "missed"], str(value))
        return mark(q, value, self.language)

    def _switch_language(self, change):
        self.language = change["new"]
        q, m = self.current, self.last_mark
        # The feedback in the new language; a code answer keeps its check's report (not re-run).
        if m is not None and q is not None and q.kind != "code":
            self.last_mark = self._mark(q, m.correct if q.kind == "short" else m.given)
        self._render(feedback=self.last_mark is not None)

    def _answer_from_widget(self, value):
        try:
            self.answer(value)
        except (TypeError, ValueError) as exc:  # a clear line instead of a traceback
            self._feedback.value = f"<b>{html.escape(str(exc))}</b>"

    def _render(self, feedback: bool = False):
        if self._widget is None:
            return
        import ipywidgets as widgets

        L, lang, q = LABELS[self.language], self.language, self.current
        s = self.summary()
        n = len(self.questions)
        self._status.value = (f"<small>{L['of'].format(i=min(self.index + 1, n), n=n)} · "
                              f"{L['right'].format(r=s['right'], a=s['answered'])}</small>")
        self._summary.value = self._summary_html(s)
        if q is None:
            self._question.value = f"<b>{L['none'] if not n else L['done']}</b>"
            self._inputs.children, self._feedback.value = (), ""
            return
        body = html.escape(q.text("question", lang)).replace("\n", "<br>")
        if q.kind == "code":
            body += f"<pre>{html.escape(q.code.broken)}</pre>"
        self._question.value = (f"<small>{q.lesson} · {q.difficulty} · {q.kind} · "
                                f"{', '.join(q.tags)}</small><br><b>{body}</b>")
        if not feedback:
            self._inputs.children = self._input_widgets(q, widgets, L, lang)
            self._feedback.value = ""
            return
        m = self.last_mark
        verdict = ("✔" if m.correct else "✘") if m.correct is not None else ""
        parts = [f"<b>{verdict} {html.escape(m.feedback)}</b>",
                 f"<b>{L['answer']}:</b> {html.escape(q.text('answer', lang))}"]
        if q.short:
            parts.append(f"<b>{L['short']}:</b> {html.escape(q.text('short', lang))}")
        parts += [f"<b>{L['why']}:</b> {html.escape(q.text('explanation', lang))}",
                  f"<small>{L['ref']}: {html.escape(q.reference)}</small>"]
        self._feedback.value = "<br>".join(p.replace("\n", "<br>") for p in parts)

    def _input_widgets(self, q, widgets, L, lang):
        if q.kind == "choice":
            buttons = []
            for i, text in enumerate(q.choice_texts(lang)):
                b = widgets.Button(description=f"{chr(97 + i)}) {text}"[:60], tooltip=text,
                                   layout=widgets.Layout(width="auto"))
                b.add_class(CHOICE_CLASS)
                b.on_click(lambda _, i=i: self._answer_from_widget(i))
                buttons.append(b)
            return tuple(buttons)
        if q.kind == "short":
            show = widgets.Button(description=L["show"])
            got, missed = widgets.Button(description=L["got"]), widgets.Button(description=L["missed"])
            got.on_click(lambda _: self._answer_from_widget(True))
            missed.on_click(lambda _: self._answer_from_widget(False))
            reveal = widgets.HTML()
            show.on_click(lambda _: setattr(reveal, "value", html.escape(
                q.text("answer", self.language))))
            return (show, reveal, widgets.HBox([got, missed]))
        box = (widgets.Textarea(value=q.code.broken, layout=widgets.Layout(width="95%", height="12em"))
               if q.kind == "code" else widgets.Text(placeholder=q.numeric.unit[lang]))
        check = widgets.Button(description=L["check"])
        check.add_class(CHECK_CLASS)
        check.on_click(lambda _: self._answer_from_widget(box.value))
        return (box, check)

    def _summary_html(self, s: dict) -> str:
        if not s["answered"]:
            return ""
        L = LABELS[self.language]
        rows = "".join(f"<tr><td>{k}</td><td>{r}/{a}</td></tr>"
                       for k, (r, a) in sorted(s["by_lesson"].items()))
        review = ", ".join(s["review"]) or "—"
        return (f"<b>{L['right'].format(r=s['right'], a=s['answered'])}</b>"
                f"<table><tr><th>{L['lesson']}</th><th></th></tr>{rows}</table>"
                f"<small>{L['review']}: {html.escape(review)}</small>")


def quiz(*, lessons=None, tags=None, difficulties=None, kinds=None, language: str = "en",
         progress=True, count: int | None = None, seed: int = 0, questions=None) -> Quiz:
    """A quiz over the bank (or ``questions``), filtered; ``count`` draws that many (seeded).

    ``progress=True`` uses the learner's Leitner boxes (``DrillProgress()``), ``False`` none.
    """
    from lmcourse.drills.progress import DrillProgress

    pool = bank.select(bank.load_questions() if questions is None else questions,
                       lessons=lessons, tags=tags, difficulties=difficulties, kinds=kinds)
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        pool = random.Random(seed).sample(pool, min(count, len(pool)))
    store = DrillProgress() if progress is True else (progress or None)
    return Quiz(pool, language=language, progress=store)
