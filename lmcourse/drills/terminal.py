"""``python -m lmcourse drill``: interview drills in a terminal, no Jupyter needed.

    python -m lmcourse drill                       # 10 questions, due ones first (spaced repetition)
    python -m lmcourse drill --lesson 06 --tag kv-cache --count 5 --lang zh
    python -m lmcourse drill --all --seed 3        # ignore the boxes: a seeded random draw
    python -m lmcourse drill --list-tags           # lessons and tags, with counts
    python -m lmcourse drill --mock --minutes 20 --report mock.md
    python -m lmcourse drill --set week3.json --name ada [--results FILE]

Answering: a letter for a choice question; a number for a numeric one (``1.5e9``,
``1,500,000,000``, ``1.5 GB``, ``70亿``); for a code question the mended function,
ended by a line holding a single ``.``; for a short question press Enter to see
the model answer and say whether you had it. ``s`` skips a question, ``q`` quits
(the summary still prints), and so does the end of input (Ctrl-D).

Practice (the default) marks each answer at once and records it in the Leitner
boxes of ``lmcourse.drills.progress`` (``$LMCOURSE_HOME/drills.json``); a skipped
question is not recorded. A **mock interview** (``--mock``) is a timed, seeded mix of
questions across lessons and difficulties with at least one choice, numeric and
code question where the filters offer them; nothing is marked until the end, a
question answered after the time is up counts as not answered, short answers are
self-assessed at the end, and its answers are recorded in the boxes too (a mock is
practice as well). **Class mode** (``--set``) asks exactly a class set's questions in
order, shows no marks, and keeps each raw answer with
``lmcourse.drills.classroom.record_answer`` for the instructor to grade; it does not
touch the boxes.

All input goes through ``input()`` and all output through ``print()``.
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lmcourse.drills import answers
from lmcourse.drills.bank import (DIFFICULTIES, KINDS, LANGUAGES, LESSONS, BankError, Question,
                                  load_questions, select)

AUTO_KINDS = ("choice", "numeric", "code")

UI = {
    "en": {
        "header": "[{i}/{n}] lesson {lesson} · {difficulty} · {kind}",
        "clock": "time left {clock}",
        "letter": "Your answer (a-{last}, s skip, q quit): ",
        "bad_letter": "Type one letter from a to {last} (or s to skip, q to quit).",
        "number": "Your answer (a number, s skip, q quit): ",
        "broken": "The broken code:",
        "code": "Type the fixed function; end with a line holding a single '.' (s skip, q quit):",
        "reveal": "Think of your answer, then press Enter to see the model answer (s skip, q "
                  "quit): ",
        "typed": "Your answer in one line (s skip, q quit): ",
        "model": "Model answer:",
        "short": "In 30 seconds:",
        "got": "Did you get it? [y/n] ",
        "yn": "Type y or n.",
        "right": "Right.", "wrong": "Wrong.",
        "why": "Why:", "ref": "Reference:",
        "skipped": "Skipped.",
        "summary": "You got {right} of {asked} right ({skipped} skipped).",
        "by_lesson": "By lesson:",
        "due_next": "Due now: {due} card(s); next due: {next}.",
        "nothing_due": "Nothing is due now and no new questions are left (next due: {next}). "
                       "Use --all to practise anyway.",
        "none": "no questions match those filters",
        "time_up": "Time is up.",
        "late": "Time was up before this answer; it counts as not answered.",
        "assess": "Self-assessment of your short answers:",
        "yours": "Your answer:",
        "report": "Mock interview report",
        "score": "Score: {right} / {total}",
        "by_kind": "By kind:",
        "times": "Time per question:",
        "missed": "Missed:",
        "where": "({kind}, lesson {lesson})",
        "not_answered": "(not answered)",
        "seconds": "{s:.0f} s",
        "class_done": "{answered} of {total} answers kept in {path}.",
        "class_intro": "Set {name}: {n} questions. Your answers go to {path}; your teacher marks "
                       "them.",
        "wrote": "Report written to {path}.",
        "lessons": "Lessons:", "tags": "Tags:",
    },
    "zh": {
        "header": "[{i}/{n}] 第 {lesson} 课 · {difficulty} · {kind}",
        "clock": "剩余时间 {clock}",
        "letter": "你的答案（a-{last}，s 跳过，q 退出）：",
        "bad_letter": "请输入 a 到 {last} 中的一个字母（s 跳过，q 退出）。",
        "number": "你的答案（一个数，s 跳过，q 退出）：",
        "broken": "有错误的代码：",
        "code": "输入修好的函数，以只含一个 '.' 的一行结束（s 跳过，q 退出）：",
        "reveal": "先想好答案，然后按回车查看参考答案（s 跳过，q 退出）：",
        "typed": "用一行写下你的答案（s 跳过，q 退出）：",
        "model": "参考答案：",
        "short": "30 秒版本：",
        "got": "你答对了吗？[y/n] ",
        "yn": "请输入 y 或 n。",
        "right": "正确。", "wrong": "错误。",
        "why": "解释：", "ref": "参考：",
        "skipped": "已跳过。",
        "summary": "共答对 {right} / {asked} 题（跳过 {skipped} 题）。",
        "by_lesson": "按课程：",
        "due_next": "现在到期：{due} 张卡片；下次到期：{next}。",
        "nothing_due": "现在没有到期的题目，也没有新题了（下次到期：{next}）。可用 --all 照常练习。",
        "none": "没有符合这些条件的题目",
        "time_up": "时间到。",
        "late": "作答时时间已到，本题算作未作答。",
        "assess": "请自评你的简答题：",
        "yours": "你的答案：",
        "report": "模拟面试报告",
        "score": "得分：{right} / {total}",
        "by_kind": "按题型：",
        "times": "每题用时：",
        "missed": "答错或未答：",
        "where": "（{kind}，第 {lesson} 课）",
        "not_answered": "（未作答）",
        "seconds": "{s:.0f} 秒",
        "class_done": "已将 {answered} / {total} 个答案保存到 {path}。",
        "class_intro": "题组 {name}：共 {n} 题。答案保存到 {path}，由老师评分。",
        "wrote": "报告已写入 {path}。",
        "lessons": "课程：", "tags": "标签：",
    },
}


# Kinds and difficulties as the Chinese interface names them (the English one uses the ids).
NAMES_ZH = {"easy": "简单", "medium": "中等", "hard": "难", "choice": "选择题",
            "numeric": "计算题", "short": "简答题", "code": "改错题"}


def _name(value: str, lang: str) -> str:
    return NAMES_ZH.get(value, value) if lang == "zh" else value


class _Quit(Exception):
    """The learner typed q, or input ended."""


class _Skip(Exception):
    """The learner typed s."""


def _read(prompt: str = "") -> str:
    try:
        text = input(prompt)
    except EOFError:
        print()
        raise _Quit from None
    command = text.strip().lower()
    if command == "q":
        raise _Quit
    if command == "s":
        raise _Skip
    return text


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _show(question: Question, i: int, n: int, lang: str, clock: str | None = None) -> None:
    t = UI[lang]
    print()
    header = t["header"].format(i=i, n=n, lesson=question.lesson,
                                difficulty=_name(question.difficulty, lang),
                                kind=_name(question.kind, lang))
    if clock is not None:
        header += "  " + t["clock"].format(clock=clock)
    print(header)
    print(question.text("question", lang))
    if question.kind == "choice":
        for k, option in enumerate(question.choice_texts(lang)):
            print(f"  {chr(ord('a') + k)}) {option}")
    elif question.kind == "code":
        print(t["broken"])
        print(question.code.broken.rstrip())


def _read_answer(question: Question, lang: str, *, reveal: bool) -> str:
    """The learner's raw answer (checked to be a letter or a number where it must be).
    ``reveal``: for a short question, just wait for Enter (practice mode)."""
    t = UI[lang]
    if question.kind == "choice":
        last = chr(ord("a") + len(question.choices) - 1)
        while True:
            text = _read(t["letter"].format(last=last)).strip().lower()
            if len(text) == 1 and "a" <= text <= last:
                return text
            print(t["bad_letter"].format(last=last))
    if question.kind == "numeric":
        while True:
            text = _read(t["number"]).strip()
            try:
                answers.parse_number(text)
                return text
            except ValueError as exc:
                print(exc)
    if question.kind == "code":
        print(t["code"])
        lines = [_read()]
        while True:
            try:
                line = input()
            except EOFError:
                print()
                raise _Quit from None
            if line.strip() == ".":
                return "\n".join(lines) + "\n"
            lines.append(line)
    if reveal:
        return _read(t["reveal"])
    return _read(t["typed"])


def _yes_no(lang: str) -> bool:
    while True:
        text = _read(UI[lang]["got"]).strip().lower()
        if text in ("y", "yes", "是"):
            return True
        if text in ("n", "no", "否"):
            return False
        print(UI[lang]["yn"])


def _show_model_answer(question: Question, lang: str) -> None:
    t = UI[lang]
    print(t["model"], question.text("answer", lang))
    if question.short:
        print(t["short"], question.text("short", lang))


def _explain(question: Question, lang: str) -> None:
    t = UI[lang]
    print(t["why"], question.text("explanation", lang))
    print(t["ref"], question.reference)


# ---- practice ------------------------------------------------------------------------------

def _practice(questions: list[Question], lang: str, progress) -> tuple[list, bool]:
    """Ask, mark and record each question; returns ([(question, correct or None)], quit)."""
    t = UI[lang]
    results = []
    for i, question in enumerate(questions, 1):
        _show(question, i, len(questions), lang)
        try:
            raw = _read_answer(question, lang, reveal=True)
            if question.kind == "short":
                _show_model_answer(question, lang)
                correct = _yes_no(lang)
            else:
                result = answers.mark(question, raw, lang)
                correct = bool(result.correct)
                print(result.feedback)
        except _Skip:
            print(t["skipped"])
            results.append((question, None))
            continue
        except _Quit:
            return results, True
        if question.kind != "short":
            print(t["right"] if correct else t["wrong"])
            if not correct:
                print(t["model"], question.text("answer", lang))
        _explain(question, lang)
        if progress is not None:
            progress.record(question.id, correct)
        results.append((question, correct))
    return results, False


def _practice_summary(results, lang: str, progress) -> None:
    t = UI[lang]
    asked = [(q, c) for q, c in results if c is not None]
    print()
    print(t["summary"].format(right=sum(c for _, c in asked), asked=len(asked),
                              skipped=len(results) - len(asked)))
    by_lesson = collections.defaultdict(lambda: [0, 0])
    for q, c in asked:
        by_lesson[q.lesson][0] += int(c)
        by_lesson[q.lesson][1] += 1
    if by_lesson:
        print(t["by_lesson"])
        for lesson in sorted(by_lesson):
            right, total = by_lesson[lesson]
            print(f"  {lesson} {LESSONS[lesson]}: {right}/{total}")
    if progress is not None:
        s = progress.summary()
        print(t["due_next"].format(due=s["due_now"], next=s["next_due"] or "-"))


# ---- mock interview ---------------------------------------------------------------------------

def mock_questions(pool: list[Question], count: int, rng: random.Random) -> list[Question]:
    """``count`` questions from ``pool``: one of each auto-graded kind first where the pool has
    it, then spread round-robin over lessons (and, within a lesson, over difficulties);
    finally shuffled. Deterministic for a given ``rng`` state."""
    pool = list(pool)
    rng.shuffle(pool)
    chosen: list[Question] = []
    for kind in AUTO_KINDS:
        for q in pool:
            if q.kind == kind and len(chosen) < count:
                chosen.append(q)
                break
    rest = [q for q in pool if q not in chosen]
    by_lesson: dict[str, list[Question]] = collections.defaultdict(list)
    for q in rest:
        by_lesson[q.lesson].append(q)
    queues = []
    for lesson in sorted(by_lesson, key=lambda _: rng.random()):
        by_level = [[q for q in by_lesson[lesson] if q.difficulty == d] for d in DIFFICULTIES]
        spread = []
        while any(by_level):
            for level in by_level:
                if level:
                    spread.append(level.pop())
        queues.append(spread)
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    rng.shuffle(chosen)
    return chosen


@dataclass
class _Answer:
    question: Question
    raw: str | None = None        # None: not answered
    seconds: float = 0.0
    correct: bool | None = None
    feedback: str = ""
    notes: list = field(default_factory=list)


def _collect(questions, lang, clock, deadline=None) -> list[_Answer]:
    """Ask each question with no marks; raw answers, with the seconds each took."""
    t = UI[lang]
    results = [_Answer(q) for q in questions]
    for i, entry in enumerate(results, 1):
        start = clock()
        if deadline is not None and start >= deadline:
            print()
            print(t["time_up"])
            break
        left = None if deadline is None else _clock_text(deadline - start)
        _show(entry.question, i, len(results), lang, left)
        try:
            raw = _read_answer(entry.question, lang, reveal=False)
        except _Skip:
            entry.seconds = clock() - start
            print(t["skipped"])
            continue
        except _Quit:
            entry.seconds = clock() - start
            break
        entry.seconds = clock() - start
        if deadline is not None and clock() > deadline:
            print(t["late"])
            continue
        entry.raw = raw
    return results


def _mark_mock(results: list[_Answer], lang: str, progress) -> None:
    t = UI[lang]
    shorts = [r for r in results if r.question.kind == "short" and r.raw is not None]
    for r in results:
        if r.raw is None:
            r.correct = False
        elif r.question.kind != "short":
            m = answers.mark(r.question, r.raw, lang)
            r.correct, r.feedback = bool(m.correct), m.feedback
    if shorts:
        print()
        print(t["assess"])
    for r in shorts:
        print()
        print(r.question.text("question", lang))
        print(t["yours"], r.raw)
        _show_model_answer(r.question, lang)
        try:
            r.correct = _yes_no(lang)
        except (_Quit, _Skip):
            r.correct = False
    if progress is not None:
        for r in results:
            if r.raw is not None:
                progress.record(r.question.id, bool(r.correct))


def mock_report(results: list[_Answer], lang: str, minutes: float) -> str:
    """The score report as Markdown (also printed, as it reads fine as plain text)."""
    t = UI[lang]
    right = sum(bool(r.correct) for r in results)
    lines = [f"# {t['report']}", "", t["score"].format(right=right, total=len(results)),
             f"({minutes:g} min)", "", f"## {t['by_kind']}", ""]
    for name, key in (("kind", lambda r: r.question.kind), ("lesson", lambda r: r.question.lesson)):
        if name == "lesson":
            lines += ["", f"## {t['by_lesson']}", ""]
        groups = collections.defaultdict(list)
        for r in results:
            groups[key(r)].append(r)
        for group in sorted(groups):
            rs = groups[group]
            label = f"{group} {LESSONS[group]}" if name == "lesson" else _name(group, lang)
            lines.append(f"- {label}: {sum(bool(r.correct) for r in rs)}/{len(rs)}")
    lines += ["", f"## {t['times']}", ""]
    for i, r in enumerate(results, 1):
        mark = "✓" if r.correct else ("–" if r.raw is None else "✗")
        lines.append(f"{i}. {mark} `{r.question.id}`: {t['seconds'].format(s=r.seconds)}")
    missed = [r for r in results if not r.correct]
    if missed:
        lines += ["", f"## {t['missed']}", ""]
    for r in missed:
        lines += [f"### `{r.question.id}` " + t["where"].format(
                      kind=_name(r.question.kind, lang), lesson=r.question.lesson), "",
                  r.question.text("question", lang), ""]
        if r.raw is None:
            lines.append(f"- {t['yours']} {t['not_answered']}")
        elif r.question.kind == "code":
            lines += [f"- {t['yours']}", "", "```python", r.raw.rstrip(), "```", ""]
        else:
            lines.append(f"- {t['yours']} {r.raw.strip()}")
        if r.feedback:
            lines.append(f"- {r.feedback}")
        lines += [f"- {t['model']} {r.question.text('answer', lang)}",
                  f"- {t['why']} {r.question.text('explanation', lang)}",
                  f"- {t['ref']} {r.question.reference}", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---- the command ---------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lmcourse drill",
                                description="Interview drills in the terminal.")
    p.add_argument("--lesson", action="append", choices=list(LESSONS), help="(repeatable)")
    p.add_argument("--tag", action="append", help="questions with any of these tags "
                   "(repeatable; --list-tags shows them)")
    p.add_argument("--difficulty", action="append", choices=DIFFICULTIES)
    p.add_argument("--kind", action="append", choices=KINDS)
    p.add_argument("--count", type=int, help="questions to ask (default 10; 12 with --mock)")
    p.add_argument("--lang", choices=LANGUAGES, default="en")
    p.add_argument("--seed", type=int, help="seed for the random draw (--all, --mock)")
    p.add_argument("--all", action="store_true",
                   help="ignore spaced repetition: a random draw from every match")
    p.add_argument("--list-tags", action="store_true", help="list lessons and tags with counts")
    p.add_argument("--mock", action="store_true", help="a timed mock interview")
    p.add_argument("--minutes", type=float, default=20.0, help="mock interview length")
    p.add_argument("--report", metavar="FILE", help="write the mock interview's report here (Markdown)")
    p.add_argument("--set", dest="set_file", metavar="FILE", help="class mode: a class set file")
    p.add_argument("--name", help="class mode: your name, as the teacher knows it")
    p.add_argument("--results", metavar="FILE", help="class mode: results file "
                   "(default drills-<set>-<name>.json)")
    p.add_argument("--bank", action="append", help=argparse.SUPPRESS)  # testing: other files
    return p


def _list_tags(questions: list[Question], lang: str) -> None:
    t = UI[lang]
    print(t["lessons"])
    for lesson, n in sorted(collections.Counter(q.lesson for q in questions).items()):
        print(f"  {lesson:4s} {n:4d}  {LESSONS[lesson]}")
    print(t["tags"])
    for tag, n in sorted(collections.Counter(t for q in questions for t in q.tags).items()):
        print(f"  {tag:24s} {n:4d}")


def main(argv: list[str] | None = None, *, clock=time.monotonic) -> int:
    """Run the drill; ``clock`` (seconds, monotonic) times a mock interview."""
    parser = _parser()
    args = parser.parse_args(argv)
    lang = args.lang
    if args.count is not None and args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    if args.minutes <= 0:
        parser.error(f"--minutes must be more than 0, got {args.minutes:g}")
    if args.set_file and not args.name:
        parser.error("--set needs --name (your name, as your teacher knows it)")
    if (args.name or args.results) and not args.set_file:
        parser.error("--name and --results belong to class mode: give --set FILE too")
    if args.set_file and (args.mock or args.all):
        parser.error("--set asks the class set's questions: it cannot go with --mock or --all")
    if args.report and not args.mock:
        parser.error("--report writes a mock interview's report: add --mock")
    try:
        questions = load_questions(args.bank)
    except (BankError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.list_tags:
        _list_tags(questions, lang)
        return 0
    if args.set_file:
        return _class_mode(args, questions, lang, clock)
    try:
        pool = select(questions, lessons=args.lesson, tags=args.tag,
                      difficulties=args.difficulty, kinds=args.kind)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not pool:
        print(f"error: {UI[lang]['none']}", file=sys.stderr)
        return 2
    from lmcourse.drills.progress import DrillProgress

    progress = DrillProgress()
    rng = random.Random(args.seed)
    if args.mock:
        chosen = mock_questions(pool, args.count or 12, rng)
        start = clock()
        results = _collect(chosen, lang, clock, deadline=start + args.minutes * 60)
        _mark_mock(results, lang, progress)
        report = mock_report(results, lang, args.minutes)
        print()
        print(report)
        if args.report:
            from lmcourse import atomic

            try:
                atomic.write_text(args.report, report)
            except OSError as exc:
                print(f"error: cannot write the report to {args.report}: "
                      f"{exc.strerror or exc}", file=sys.stderr)
                return 1
            print(UI[lang]["wrote"].format(path=args.report))
        return 0
    count = args.count or 10
    if args.all:
        chosen = rng.sample(pool, min(count, len(pool)))
    else:
        chosen = progress.due(pool, limit=count)
        if not chosen:
            print(UI[lang]["nothing_due"].format(next=progress.summary()["next_due"] or "-"))
            return 0
    results, _ = _practice(chosen, lang, progress)
    _practice_summary(results, lang, progress)
    return 0


def _class_mode(args, questions, lang, clock) -> int:
    from lmcourse.drills import classroom

    try:
        class_set = classroom.load_set(args.set_file)
        chosen = class_set.questions(questions)
    except classroom.ClassError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = Path(args.results or f"drills-{classroom.results_filename(class_set, args.name)}")
    t = UI[lang]
    print(t["class_intro"].format(name=class_set.name, n=len(chosen), path=path))
    kept = 0
    for i, question in enumerate(chosen, 1):
        start = clock()
        _show(question, i, len(chosen), lang)
        try:
            raw = _read_answer(question, lang, reveal=False)
        except _Skip:
            print(t["skipped"])
            continue
        except _Quit:
            break
        try:
            classroom.record_answer(path, class_set, args.name, question, raw,
                                    max(0.0, clock() - start))
        except classroom.ClassError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        kept += 1
    print()
    print(t["class_done"].format(answered=kept, total=len(chosen), path=path))
    return 0
