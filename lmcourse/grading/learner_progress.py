"""The learner's progress: the best score reached on each exercise.

Stored as JSON in ``$LMCOURSE_HOME/progress.json`` (default
``~/.lmcourse/progress.json``) and always written atomically, so a crash or a
full disk never leaves half a file. A file that cannot be read is never
deleted: it is renamed aside (``progress.json.corrupt-<time>``) and a fresh
one is started, and the learner is told where the old one went.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from lmcourse import atomic
from lmcourse.grading.result import NOT_ATTEMPTED, CheckResult

FORMAT_VERSION = 1


def home() -> Path:
    """The course's per-user folder: ``$LMCOURSE_HOME``, else ``~/.lmcourse``."""
    return Path(os.environ.get("LMCOURSE_HOME") or Path.home() / ".lmcourse")


def progress_path() -> Path:
    return home() / "progress.json"


def _valid_entry(entry: Any) -> bool:
    return (isinstance(entry, dict)
            and all(isinstance(entry.get(k), (int, float)) for k in ("best_score", "max_score")))


def _load() -> tuple[dict[str, Any], str | None]:
    """(exercises mapping, note for the learner or None). Never raises for a bad file."""
    path = progress_path()
    if not path.exists():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        exercises = data["exercises"]
        if not isinstance(exercises, dict) or not all(map(_valid_entry, exercises.values())):
            raise ValueError("unexpected structure")
        return exercises, None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        reason = exc.__class__.__name__ if not str(exc) else f"{exc.__class__.__name__}: {exc}"
        return {}, _set_aside(path, reason)


def _set_aside(path: Path, reason: str) -> str:
    try:
        aside = atomic.set_aside(path)
    except OSError as exc:
        return (f"Your progress file {path} could not be read ({reason}) or moved aside "
                f"({exc}); progress is not being saved.")
    return (f"Your progress file {path} could not be read ({reason}); it was kept as "
            f"{aside.name} and a new one was started.")


def progress() -> dict[str, dict[str, Any]]:
    """Best result per exercise id: ``{"softmax": {"best_score": 12, "max_score": 12, ...}}``.

    Each entry also has ``passed`` (best attempt passed), ``attempts`` and
    ``last_attempt`` (UTC, ISO 8601).
    """
    exercises, note = _load()
    if note:
        warnings.warn(note, stacklevel=2)
    return exercises


def record(result: CheckResult) -> str | None:
    """Add ``result`` to the progress file; return a note for the learner if it failed.

    "Not attempted" results are not recorded. Nothing here raises: a progress
    problem must never hide the check's feedback.
    """
    if result.status == NOT_ATTEMPTED:
        return None
    exercises, note = _load()
    entry = exercises.get(result.exercise) or {"best_score": 0, "attempts": 0, "passed": False}
    best = max(entry["best_score"], result.score)
    exercises[result.exercise] = {
        "best_score": best,
        "max_score": result.max_score,
        "passed": bool(entry.get("passed")) or result.passed,
        "attempts": int(entry.get("attempts", 0)) + 1,
        "last_attempt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        atomic.write_json(progress_path(),
                          {"version": FORMAT_VERSION, "exercises": exercises})
    except OSError as exc:
        failure = f"Your progress could not be saved to {progress_path()} ({exc})."
        return f"{note} {failure}" if note else failure
    return note
