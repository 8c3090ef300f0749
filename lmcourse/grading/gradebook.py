"""The class's grade book: one saved result per submission, then the CSV files.

Every graded submission is saved at once, atomically, as its own JSON file in
``<gradebook>.results/`` next to the CSV, and the CSV files are then rewritten
(atomically) from all the saved results of the run. So a crash, a SIGKILL of
the grader or a power cut loses at most the submission being graded, and a
rerun of the same command skips what is saved (unless the notebook changed,
or the settings did, or ``--force``) and writes the same grade book as an
uninterrupted run.

Files written:

``gradebook.csv``
    ``student, notebook, exercise, score, max_score, status``: one row per
    submission and exercise of its assignment.
``gradebook_totals.csv``
    ``student, notebook, score, max_score``: the totals, which always count
    every exercise of the assignment at its full max score.
``gradebook_feedback/<student>-<notebook>.md``
    what each student gets back: every exercise's result and hints.

Text that came from a submission (a student's folder name, an error message)
is escaped: CSV cells that a spreadsheet would run as a formula get a leading
apostrophe, and Markdown gets HTML-escaped text.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from lmcourse import atomic

FORMAT_VERSION = 1


@dataclass
class Row:
    student: str
    notebook: str
    exercise: str
    score: int
    max_score: int
    status: str


@dataclass
class Graded:
    """Everything saved about one graded submission."""

    path: str  # the submission, resolved
    sha256: str  # of its bytes when graded
    settings: str  # what else decides the grade (assignment, budget, seeds, limits)
    student: str
    rows: list[Row]
    feedback: str  # Markdown

    @property
    def score(self) -> int:
        return sum(r.score for r in self.rows)

    @property
    def max_score(self) -> int:
        return sum(r.max_score for r in self.rows)


class GradeBook:
    """The grade book at ``csv_path`` and the saved results beside it."""

    def __init__(self, csv_path: str | Path):
        self.csv_path = Path(csv_path)
        if self.csv_path.is_dir():
            raise ValueError(f"--gradebook must be a CSV file name, but {self.csv_path} is a "
                             "directory")
        stem = self.csv_path.with_suffix("")
        self.results_dir = Path(f"{self.csv_path}.results")
        self.totals_path = Path(f"{stem}_totals.csv")
        self.feedback_dir = Path(f"{stem}_feedback")

    def _entry(self, path: str) -> Path:
        return self.results_dir / (hashlib.sha256(path.encode()).hexdigest()[:32] + ".json")

    def load(self, path: str, sha256: str, settings: str) -> Graded | None:
        """The saved result for ``path`` if it is for these bytes and settings, else None."""
        entry = self._entry(path)
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
            if data.get("version") != FORMAT_VERSION:
                return None
            graded = Graded(
                path=str(data["path"]), sha256=str(data["sha256"]),
                settings=str(data["settings"]), student=str(data["student"]),
                rows=[Row(**{f.name: r[f.name] for f in fields(Row)}) for r in data["rows"]],
                feedback=str(data["feedback"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: grade it again
        if (graded.path, graded.sha256, graded.settings) != (path, sha256, settings):
            return None
        if not all(type(r.score) is int and type(r.max_score) is int
                   and 0 <= r.score <= r.max_score for r in graded.rows):
            return None
        return graded

    def save(self, graded: Graded) -> None:
        data = asdict(graded)
        data["version"] = FORMAT_VERSION
        atomic.write_json(self._entry(graded.path), data)
        self._running(graded.path).unlink(missing_ok=True)

    # A marker while a submission is graded counts the runs that never finished.
    def _running(self, path: str) -> Path:
        return self._entry(path).with_suffix(".running")

    def attempts(self, path: str, sha256: str) -> int:
        """How many runs started grading these bytes of ``path`` and never finished."""
        try:
            data = json.loads(self._running(path).read_text(encoding="utf-8"))
            return int(data["attempts"]) if data.get("sha256") == sha256 else 0
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def abandon(self, path: str) -> None:
        """Forget an unfinished run that the instructor stopped (Ctrl-C)."""
        self._running(path).unlink(missing_ok=True)

    def begin(self, path: str, sha256: str) -> None:
        atomic.write_json(self._running(path),
                          {"sha256": sha256, "attempts": self.attempts(path, sha256) + 1})

    def write(self, results: list[Graded]) -> None:
        """Rewrite the CSV files and the feedback from ``results`` (in this order)."""
        rows = [row for graded in results for row in graded.rows]
        atomic.write_text(self.csv_path, to_csv([f.name for f in fields(Row)],
                                                [list(asdict(r).values()) for r in rows]))
        totals = [[g.student, g.rows[0].notebook if g.rows else Path(g.path).name,
                   g.score, g.max_score] for g in results]
        atomic.write_text(self.totals_path,
                          to_csv(["student", "notebook", "score", "max_score"], totals))
        used: set[str] = set()
        for graded in results:
            name = feedback_name(graded, used)
            atomic.write_text(self.feedback_dir / name, graded.feedback)


def feedback_name(graded: Graded, used: set[str]) -> str:
    """A safe, unique file name for a submission's feedback."""
    notebook = Path(graded.path).stem
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{graded.student}-{notebook}").strip("._") or "x"
    name, n = f"{base}.md", 1
    while name in used:
        n += 1
        name = f"{base}-{n}.md"
    used.add(name)
    return name


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value) -> object:
    """``value`` safe for a spreadsheet: text that would start a formula gets a ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return out.getvalue()


def markdown_text(text: str) -> str:
    """Text from a submission, safe inside Markdown (no raw HTML, one line)."""
    return html.escape(" ".join(str(text).split()))
