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
import os
import random
import re
import sys
import warnings
from contextlib import contextmanager
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


def load_set(path: str | Path) -> ClassSet:
    """The set saved at ``path``; ``ClassError`` says what is wrong with a bad file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClassError(f"cannot read the set file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ClassError(f"{path} is not a set file (not valid JSON: {exc})") from None
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


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``<path>.lock`` (other processes wait for it)."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: lock the file's first byte instead
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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
    entry = {"answer": str(answer), "seconds": seconds,
             "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with _locked(path):
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
            raise ClassError(f"{path} holds {data['student']!r}'s answers, not {student!r}'s: "
                             "use another results file")
        data["answers"][qid] = entry
        atomic.write_json(path, data)
    return data


def read_results(path: str | Path) -> dict:
    """A results file, its structure checked; ``ClassError`` says what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClassError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ClassError(f"{path} is not a results file (not valid JSON: {exc})") from None
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
