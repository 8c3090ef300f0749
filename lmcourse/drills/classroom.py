"""Class mode: an instructor hands out a fixed set of questions and grades what comes back.

    python -m lmcourse drill-class make --lesson 06 --tag seed --count 20 --seed 1 \\
        --name week3 --out week3.json
    python -m lmcourse drill-class grade results/*.json --set week3.json --gradebook drills.csv

1. ``make_set`` chooses the questions once (a seeded choice, so the same command
   makes the same set) and ``save_set`` writes them as a small JSON file with a
   hash of the chosen questions' content, so the instructor sees if the bank
   changed between handing out and grading.
2. Each learner answers with the terminal drill or the lesson 12 quiz; both call
   ``record_answer``, which keeps the raw answers in the learner's results file
   (JSON, written atomically under a lock, so two processes never lose one).
3. ``grade`` marks every raw answer again (a results file's own opinion of its
   score is never read): choice and numeric with ``answers.mark``, code with the
   exercise's check run in the exercise grader's sandbox (hidden cases included),
   and short answers are listed for the instructor to read, scored 0 of 0 as
   "not marked". The rows go into the same ``GradeBook`` as the exercise grader's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import re
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from lmcourse import atomic
from lmcourse.drills.bank import Question, load_questions, select

SET_VERSION = 1
RESULTS_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ClassError(ValueError):
    """A class set or results file that cannot be used: the message says what was expected."""


# ---- the set ----------------------------------------------------------------------------------

def content_sha256(questions: Iterable[Question]) -> str:
    """A hash of the questions' ids and content (every field but the file they came from)."""
    records = []
    for q in questions:
        record = dataclasses.asdict(q)
        record.pop("source", None)
        records.append(record)
    text = json.dumps(records, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ClassSet:
    name: str
    question_ids: tuple[str, ...]
    bank_sha256: str  # of the chosen questions' ids and content when the set was made

    @property
    def sha256(self) -> str:
        """Identifies the set: a results file records it, and grading checks it."""
        text = json.dumps([self.name, list(self.question_ids), self.bank_sha256])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def questions(self, bank_questions: Iterable[Question]) -> list[Question]:
        """The set's questions, in the set's order, from ``bank_questions``.

        Raises ``ClassError`` naming the ids the bank no longer has."""
        by_id = {q.id: q for q in bank_questions}
        missing = [qid for qid in self.question_ids if qid not in by_id]
        if missing:
            raise ClassError(f"set {self.name!r}: the question bank has no question "
                             f"{', '.join(repr(m) for m in missing)}; grade with the bank the "
                             "set was made from (--bank), or make the set again")
        return [by_id[qid] for qid in self.question_ids]

    def bank_changed(self, bank_questions: Iterable[Question]) -> bool:
        """Whether the set's questions now differ from when the set was made."""
        return content_sha256(self.questions(bank_questions)) != self.bank_sha256


def check_name(name: str, what: str = "set name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ClassError(f"the {what} must be 1-64 letters, digits, '.', '_' or '-' (starting "
                         f"with a letter or digit), got {name!r}")
    return name


def make_set(questions: Iterable[Question], *, name: str, lessons=None, tags=None,
             difficulties=None, kinds=None, count: int | None = None, seed: int = 0,
             shuffle: bool = False) -> ClassSet:
    """A fixed set of the questions that match the filters (as ``bank.select``).

    With ``count``, ``count`` of them are drawn with ``random.Random(seed)``; they are
    kept in bank order unless ``shuffle``, which shuffles them once, with the same seed.
    The same bank, filters and seed always give the same set.
    """
    check_name(name)
    pool = select(questions, lessons=lessons, tags=tags, difficulties=difficulties, kinds=kinds)
    if not pool:
        raise ClassError("no question matches those filters (lesson, tag, difficulty, kind)")
    rng = random.Random(seed)
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ClassError(f"count must be a whole number of at least 1, got {count!r}")
        if count > len(pool):
            raise ClassError(f"count is {count}, but only {len(pool)} questions match those "
                             "filters")
        picked = set(rng.sample(range(len(pool)), count))
        pool = [q for i, q in enumerate(pool) if i in picked]
    if shuffle:
        rng.shuffle(pool)
    return ClassSet(name, tuple(q.id for q in pool), content_sha256(pool))


def save_set(path: str | Path, class_set: ClassSet) -> None:
    atomic.write_json(path, {"version": SET_VERSION, "name": class_set.name,
                             "question_ids": list(class_set.question_ids),
                             "bank_sha256": class_set.bank_sha256})


def _read_json(path: Path, what: str):
    """The JSON in ``path`` (``what`` it should be, for the message); ``ClassError`` if not."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClassError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ClassError(f"{path} is not {what} (not valid JSON: {exc})") from None


def load_set(path: str | Path) -> ClassSet:
    """The set saved at ``path``; ``ClassError`` says what is wrong with a bad file."""
    path = Path(path)
    data = _read_json(path, "a set file")
    expected = (f"{path} is not a set file: expected a JSON object with version "
                f"{SET_VERSION}, name, question_ids (a list of ids) and bank_sha256")
    if not isinstance(data, dict) or data.get("version") != SET_VERSION:
        raise ClassError(expected)
    ids, sha = data.get("question_ids"), data.get("bank_sha256")
    if (not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids)
            or len(set(ids)) != len(ids) or not isinstance(sha, str)
            or not re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise ClassError(expected)
    try:
        name = check_name(data.get("name"))
    except ClassError as exc:
        raise ClassError(f"{path}: {exc}") from None
    return ClassSet(name, tuple(ids), sha)


# ---- the learner's side -----------------------------------------------------------------------

def results_filename(class_set: ClassSet, student: str) -> str:
    """A file name for a learner's results: ``<set>-<student>.json``, safe on any system."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(student)).strip("._") or "learner"
    return f"{class_set.name}-{safe[:64]}.json"


def _new_results(class_set: ClassSet, student: str) -> dict:
    return {"version": RESULTS_VERSION, "set": class_set.name, "set_sha256": class_set.sha256,
            "student": student, "answers": {}}


def record_answer(results_path: str | Path, class_set: ClassSet, student: str,
                  question: Question | str, answer, seconds: float | None = None) -> dict:
    """Keep ``answer`` (raw, as text) to ``question`` in the learner's results file.

    The file is JSON: ``{"version": 1, "set", "set_sha256", "student", "answers":
    {id: {"answer", "seconds", "at"}}}``. A second answer to the same question
    replaces the first. The update holds a lock on ``<results_path>.lock``, reads
    the file again and writes it atomically, so two processes (a terminal drill
    and a notebook) never lose each other's answers. A file for another set or
    another student raises ``ClassError`` and is left as it is; a damaged file is
    set aside (renamed ``.corrupt-<time>``, with a warning) and a new one begun.
    For a choice question (given as a ``Question``) an option index (from 0) is kept as its
    letter ("a", "b", ...), so the file never leaves in doubt which option was meant.
    Returns the file's new content.
    """
    path = Path(results_path)
    qid = question if isinstance(question, str) else getattr(question, "id", None)
    if qid not in class_set.question_ids:
        raise ClassError(f"question {qid!r} is not in set {class_set.name!r}")
    if not isinstance(student, str) or not student.strip():
        raise ClassError(f"student must be a non-empty name, got {student!r}")
    student = student.strip()
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
                math.isfinite(seconds) and seconds >= 0):
            raise ClassError(f"seconds must be a number of seconds >= 0 or None, got "
                             f"{seconds!r}")
        seconds = float(seconds)
    if (getattr(question, "kind", None) == "choice" and isinstance(answer, int)
            and not isinstance(answer, bool) and 0 <= answer < 26):
        answer = chr(ord("a") + answer)  # an option index (from 0) is kept as its letter
    entry = {"answer": str(answer), "seconds": seconds,
             "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with atomic.locked(path):
        data = None
        if path.exists():
            try:
                data = read_results(path)
            except ClassError as exc:
                aside = atomic.set_aside(path)
                warnings.warn(f"{exc}; it was renamed {aside.name} and a new results file "
                              "begun", stacklevel=2)
        if data is None:
            data = _new_results(class_set, student)
        elif (data["set"], data["set_sha256"]) != (class_set.name, class_set.sha256):
            raise ClassError(f"{path} holds answers to set {data['set']!r}, not to this set "
                             f"({class_set.name!r}): use another results file")
        elif data["student"] != student:
            raise ClassError(f"{path} holds the answers of {data['student']!r}, not of "
                             f"{student!r}: use another results file")
        data["answers"][qid] = entry
        atomic.write_json(path, data)
    return data


def read_results(path: str | Path) -> dict:
    """A results file, its structure checked; ``ClassError`` says what is wrong."""
    path = Path(path)
    data = _read_json(path, "a results file")
    expected = (f"{path} is not a results file: expected a JSON object with version "
                f"{RESULTS_VERSION}, set, set_sha256, student (text) and answers "
                '({question id: {"answer": text, "seconds": number or null, "at": time}})')
    if not isinstance(data, dict) or data.get("version") != RESULTS_VERSION:
        raise ClassError(expected)
    if not all(isinstance(data.get(k), str) for k in ("set", "set_sha256", "student")):
        raise ClassError(expected)
    if not data["student"].strip() or not isinstance(data.get("answers"), dict):
        raise ClassError(expected)
    for qid, entry in data["answers"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("answer"), str):
            raise ClassError(f"{expected} (the entry for {str(qid)[:60]!r} is not)")
        s = entry.get("seconds")
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float))):
            raise ClassError(f"{expected} (the entry for {str(qid)[:60]!r} is not)")
    return data


# ---- the instructor's side: grading -----------------------------------------------------------

RIGHT, WRONG, NOT_ANSWERED, NOT_MARKED, UNREADABLE = (
    "right", "wrong", "not answered", "not marked", "unreadable")


def student_name(raw: str, fallback: str) -> str:
    """The name a results file gives, made safe: one line, no control characters, 64 at most."""
    text = "".join(ch for ch in str(raw) if ch.isprintable() or ch.isspace())
    text = " ".join(text.split())[:64].strip()
    return text or fallback


def _code_batches(items: list[tuple[Question, str]]) -> list[list[tuple[Question, str]]]:
    """Code answers grouped so that no exercise or function name appears twice in a group:
    each group is one notebook, one sandboxed process."""
    batches: list[list[tuple[Question, str]]] = []
    for item in items:
        q = item[0]
        for batch in batches:
            if all(o.code.exercise != q.code.exercise and o.code.function != q.code.function
                   for o, _ in batch):
                batch.append(item)
                break
        else:
            batches.append([item])
    return batches


def _grade_code(items: list[tuple[Question, str]], student: str, set_name: str,
                settings) -> dict[str, tuple[bool, str, list[str]]]:
    """question id -> (passed, a summary, the check's feedback lines), each snippet run in the
    sandbox."""
    import nbformat

    from lmcourse.grading.grade import grade_submission

    out: dict[str, tuple[bool, str]] = {}
    for n, batch in enumerate(_code_batches(items), 1):
        nb = nbformat.v4.new_notebook()
        # The drills run a snippet with torch and math at hand (answers.run_snippet): so here.
        nb.cells = [nbformat.v4.new_code_cell("import math\nimport torch")] + [
            nbformat.v4.new_code_cell(source) for _, source in batch]
        data = nbformat.writes(nb).encode("utf-8")
        path = Path(f"{set_name}-code-{n}.ipynb")
        exercises = {q.code.exercise: q.code.function for q, _ in batch}
        rows, feedback = grade_submission(path, data, student, exercises, settings)
        by_exercise = {row.exercise: row for row in rows}
        for q, _ in batch:
            row = by_exercise[q.code.exercise]
            passed = row.max_score > 0 and row.score == row.max_score
            out[q.id] = (passed, f"the exercise's check ({q.code.exercise}, hidden cases "
                                 f"included): {row.score}/{row.max_score}, {row.status}",
                         _section(feedback, q.code.exercise))
    return out


def _section(feedback: str, exercise: str) -> list[str]:
    """The grader's feedback lines (already escaped) on one exercise."""
    lines, inside = [], False
    for line in feedback.splitlines():
        if line.startswith("## "):
            inside = line.startswith(f"## {exercise}:")
            continue
        if inside and line.strip():
            lines.append(line if line.startswith("- ") else f"- {line}")
    return lines


def _pre(text: str) -> str:
    """Code as a Markdown block that nothing in it can break out of (escaped HTML)."""
    import html

    return f"<pre>{html.escape(text)}</pre>"


def grade_results(data: dict, class_set: ClassSet, questions: list[Question], student: str,
                  settings, language: str = "en"):
    """The rows and feedback (Markdown) for one learner's results ``data`` (already read)."""
    from lmcourse.drills.answers import mark
    from lmcourse.grading.gradebook import Row, markdown_text

    answers = data["answers"]
    code = [(q, answers[q.id]["answer"]) for q in questions
            if q.kind == "code" and q.id in answers]
    code_marks = _grade_code(code, student, class_set.name, settings) if code else {}
    rows, sections = [], []
    for q in questions:
        given = answers.get(q.id, {}).get("answer") if q.id in answers else None
        max_score = 0 if q.kind == "short" else 1
        details: list[str] = []
        if given is None:
            status, note = NOT_ANSWERED, ""
        elif q.kind == "short":
            status, note = NOT_MARKED, ("a short answer is self-assessed practice: not marked "
                                        "(0 of 0); your instructor reads it")
        elif q.kind == "code":
            passed, note, details = code_marks[q.id]
            status = RIGHT if passed else WRONG
        else:
            result = mark(q, given, language)
            status, note = (RIGHT if result.correct else WRONG), result.feedback
        score = 1 if status == RIGHT else 0
        rows.append(Row(student, class_set.name, q.id, score, max_score, status))
        lines = [f"## {markdown_text(q.id)}: {score}/{max_score} ({status})", "",
                 markdown_text(q.text("question", language)), ""]
        if q.kind == "choice":
            lines += [f"- {chr(ord('a') + i)}) {markdown_text(t)}"
                      for i, t in enumerate(q.choice_texts(language))] + [""]
        if q.kind == "code":
            lines += ["The code:", "", _pre(q.code.broken), ""]
        if given is None:
            lines += ["Your answer: (none)", ""]
        elif q.kind == "code":
            lines += ["Your answer:", "", _pre(given), ""]
        else:
            lines += [f"Your answer: {markdown_text(given)}", ""]
        if note:
            lines += [f"Marked: {markdown_text(note)}", ""]
        if details:
            lines += details + [""]
        lines += [f"Model answer: {markdown_text(q.text('answer', language))}", ""]
        if q.kind == "code":
            lines += [_pre(q.code.fixed), ""]
        lines += [f"Why: {markdown_text(q.text('explanation', language))}", ""]
        sections.append("\n".join(lines))
    score, total = sum(r.score for r in rows), sum(r.max_score for r in rows)
    shorts = sum(q.kind == "short" for q in questions)
    head = [f"# {markdown_text(class_set.name)}: {markdown_text(student)}", "",
            f"**Total: {score}/{total}**", ""]
    if shorts:
        head += [f"{shorts} short answer(s) are not marked: they are practice, listed below "
                 "with the model answer for you and your instructor to compare.", ""]
    extra = sorted(set(answers) - set(class_set.question_ids))
    if extra:
        head += [f"Answers to questions not in this set were ignored: "
                 f"{markdown_text(', '.join(extra))}", ""]
    return rows, "\n".join(head + sections)


def grade(results_paths: Iterable[str | Path], class_set: ClassSet | str | Path,
          gradebook: str | Path, *, bank_paths: Iterable[str | Path] | None = None,
          sandbox: str = "auto", hidden_seed: int | None = None, language: str = "en",
          force: bool = False, echo: bool = False, limits=None) -> list:
    """Grade learners' results files for ``class_set`` into ``gradebook``; return the rows.

    Every answer is marked again from its raw text. A file that cannot be read, is not a
    results file, or answers another set gets one row with status "unreadable" and a message,
    and the others are graded. Each learner's result is saved as soon as it is graded.
    ``hidden_seed`` None uses the exercise grader's default seed.
    """
    from lmcourse.drills.bank import check_language
    from lmcourse.grading.grade import HIDDEN_SEED, Settings
    from lmcourse.grading.gradebook import GradeBook, Graded, Row, markdown_text
    from lmcourse.grading.sandbox import Limits, choose_mode

    language = check_language(language)
    paths = [Path(p) for p in results_paths]
    if not paths:
        raise ClassError("no results files to grade")
    if not isinstance(class_set, ClassSet):
        class_set = load_set(class_set)
    bank = load_questions(bank_paths)
    questions = class_set.questions(bank)
    if content_sha256(questions) != class_set.bank_sha256:
        print(f"note: the questions of set {class_set.name!r} changed in the bank since the set "
              "was made; they are graded as the bank has them now", file=sys.stderr)
    book = GradeBook(gradebook)
    settings = Settings(limits or Limits(), choose_mode(sandbox), "smoke",
                        HIDDEN_SEED if hidden_seed is None else hidden_seed, None)
    signature = json.dumps({"set": class_set.sha256, "bank": content_sha256(questions),
                            "hidden_seed": settings.hidden_seed, "language": language,
                            "limits": dataclasses.asdict(settings.limits)}, sort_keys=True)
    done, claimed = [], set()
    seen_paths: set[str] = set()
    for path in paths:
        resolved = str(path.resolve())
        if resolved in seen_paths:
            print(f"note: {path} is named twice; graded once", file=sys.stderr)
            continue
        seen_paths.add(resolved)
        try:
            raw = path.read_bytes()
            sha = hashlib.sha256(raw).hexdigest()
        except OSError:
            raw, sha = None, "unreadable"
        data, problem = None, None
        try:
            data = read_results(path)
        except ClassError as exc:
            problem = str(exc)
        if data is not None and (data["set"], data["set_sha256"]) != (class_set.name,
                                                                      class_set.sha256):
            problem = (f"{path} holds answers to set {data['set'][:64]!r}, not to set "
                       f"{class_set.name!r} (or to another version of it)")
        base = student_name(data["student"] if data else path.stem, path.stem[:64] or "learner")
        student, n = base, 1
        while student in claimed:
            n += 1
            student = f"{base}-{n}"
        if student != base:
            print(f"note: {path} says it is {base!r}'s, as an earlier file did; graded as "
                  f"{student!r}", file=sys.stderr)
        claimed.add(student)
        saved = None if force or raw is None else book.load(resolved, sha, signature)
        if saved is not None and saved.student == student:
            graded = saved
        elif problem is not None:
            print(f"unreadable: {problem}", file=sys.stderr)
            graded = Graded(resolved, sha, signature, student,
                            [Row(student, class_set.name, "*", 0, 0, UNREADABLE)],
                            f"# {markdown_text(class_set.name)}: {markdown_text(student)}\n\n"
                            f"Not graded: {markdown_text(problem)}\n")
        else:
            rows, feedback = grade_results(data, class_set, questions, student, settings,
                                           language)
            graded = Graded(resolved, sha, signature, student, rows, feedback)
        book.save(graded)
        done.append(graded)
        book.write(done)
        if echo:
            shown = (UNREADABLE if graded.rows and graded.rows[0].status == UNREADABLE
                     else f"{graded.score:>4}/{graded.max_score}")
            print(f"{student:24s} {shown}", flush=True)
    return [row for graded in done for row in graded.rows]


# ---- the command ------------------------------------------------------------------------------

def main(argv: list[str] | None = None, prog: str = "python -m lmcourse drill-class") -> int:
    import argparse

    from lmcourse.drills.bank import BankError, DIFFICULTIES, KINDS, LESSONS
    from lmcourse.grading.sandbox import MODES, SandboxBroken

    parser = argparse.ArgumentParser(prog=prog, description="Class mode for the interview "
                                     "drills: make a fixed question set, grade the learners' "
                                     "results files into a CSV grade book with feedback.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="choose a set of questions and save it",
                               description="Choose the questions that match every filter "
                               "(a question matches --tag if it has any of them).")
    make.add_argument("--name", required=True, help="the set's name, e.g. week3")
    make.add_argument("--out", required=True, help="the set file to write (JSON)")
    make.add_argument("--lesson", action="append", choices=sorted(LESSONS),
                      help="a lesson (repeat for more)")
    make.add_argument("--tag", action="append", help="a tag (repeat for more)")
    make.add_argument("--difficulty", action="append", choices=DIFFICULTIES)
    make.add_argument("--kind", action="append", choices=KINDS)
    make.add_argument("--count", type=int, help="draw this many of the matching questions")
    make.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    make.add_argument("--shuffle", action="store_true",
                      help="shuffle the questions once (default: bank order)")
    make.add_argument("--bank", action="append", help="a question file (repeat for more; "
                      "default: the course's bank)")
    grade_cmd = commands.add_parser("grade", help="grade the learners' results files",
                                    description="Mark every answer again from its raw text: "
                                    "choice and numeric answers directly, code answers by the "
                                    "exercise's check in the grader's sandbox (hidden cases "
                                    "included); short answers are listed, not marked.")
    grade_cmd.add_argument("results", nargs="+", help="the learners' results files (JSON)")
    grade_cmd.add_argument("--set", required=True, help="the set file they answered")
    grade_cmd.add_argument("--gradebook", required=True, help="CSV file to write")
    grade_cmd.add_argument("--bank", action="append", help="a question file (repeat for more; "
                           "default: the course's bank)")
    grade_cmd.add_argument("--sandbox", choices=MODES, default="auto",
                           help="for code answers: bwrap, process or auto (default)")
    grade_cmd.add_argument("--hidden-seed", type=int,
                           help="seed of the code checks' hidden cases (default: the grader's)")
    grade_cmd.add_argument("--lang", choices=("en", "zh"), default="en",
                           help="language of the feedback (default en)")
    grade_cmd.add_argument("--force", action="store_true",
                           help="grade again the files already in the grade book")
    args = parser.parse_args(argv)
    try:
        if args.command == "make":
            class_set = make_set(load_questions(args.bank), name=args.name, lessons=args.lesson,
                                 tags=args.tag, difficulties=args.difficulty, kinds=args.kind,
                                 count=args.count, seed=args.seed, shuffle=args.shuffle)
            save_set(args.out, class_set)
            print(f"wrote {args.out}: set {class_set.name!r}, {len(class_set.question_ids)} "
                  "questions")
            return 0
        grade(args.results, args.set, args.gradebook, bank_paths=args.bank,
              sandbox=args.sandbox, hidden_seed=args.hidden_seed, language=args.lang,
              force=args.force, echo=True)
    except KeyboardInterrupt:
        return 130
    except (BankError, ValueError, SandboxBroken) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.gradebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m lmcourse.drills.classroom"))
