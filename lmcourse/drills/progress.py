"""Spaced repetition for the drills: Leitner boxes (Leitner 1972), kept in ``drills.json``.

Every question a learner has answered has a ``Card`` in one of five boxes. A
right answer moves the card up one box (it stays in box 5), a wrong one sends it
back to box 1; the card is next due ``INTERVALS[box]`` days after the answer:

    box       1   2   3   4   5
    days      0   1   3   7  16

A question never answered is new, and due now.

    progress = DrillProgress()                 # $LMCOURSE_HOME/drills.json
    for q in progress.due(questions, limit=10):
        ...
        progress.record(q.id, correct)

The file is JSON, ``{"version": 1, "cards": {id: {box, due, reviews, lapses, last}}}``.
Every ``record`` takes an exclusive lock on ``drills.json.lock``, reads the file
again, applies its one update and writes it atomically, so two kernels (or a
kernel and a terminal drill) drilling at once lose nothing. A damaged file is set
aside (renamed ``drills.json.corrupt-<time>``, with a warning naming it) and
drilling goes on with a fresh one.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from lmcourse import atomic

VERSION = 1
BOXES = (1, 2, 3, 4, 5)
INTERVALS = {1: 0, 2: 1, 3: 3, 4: 7, 5: 16}  # days until a card in this box is due again


class ProgressError(ValueError):
    """A drills progress file whose content cannot be used."""


@dataclass(frozen=True)
class Card:
    box: int
    due: str        # ISO 8601, UTC: when the question is next due
    reviews: int    # answers recorded
    lapses: int     # wrong answers recorded
    last: str       # ISO 8601, UTC: the last answer

    @property
    def due_at(self) -> datetime:
        return _parse_time(self.due, "due")


def _now(now) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime (or None for the current time), got "
                        f"{type(now).__name__}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc)), got a "
                         "naive datetime")
    return now.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _parse_time(text, name: str) -> datetime:
    if not isinstance(text, str):
        raise ProgressError(f"{name}: expected an ISO 8601 time, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ProgressError(f"{name}: expected an ISO 8601 time, got {text!r}") from None
    if moment.tzinfo is None:
        raise ProgressError(f"{name}: expected a time with its UTC offset, got {text!r}")
    return moment.astimezone(timezone.utc)


def _check_card(qid, raw) -> Card:
    where = f"card {qid!r}"
    if not isinstance(qid, str) or not qid:
        raise ProgressError(f"expected question ids as keys, got {qid!r}")
    if not isinstance(raw, dict) or set(raw) != {"box", "due", "reviews", "lapses", "last"}:
        raise ProgressError(f"{where}: expected an object with box, due, reviews, lapses, last")
    for key in ("box", "reviews", "lapses"):
        if isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 0:
            raise ProgressError(f"{where}: {key} must be a whole number >= 0, got {raw[key]!r}")
    if raw["box"] not in BOXES:
        raise ProgressError(f"{where}: box must be 1-5, got {raw['box']!r}")
    if raw["lapses"] > raw["reviews"]:
        raise ProgressError(f"{where}: more lapses ({raw['lapses']}) than reviews "
                            f"({raw['reviews']})")
    _parse_time(raw["due"], f"{where}: due")
    _parse_time(raw["last"], f"{where}: last")
    return Card(**raw)


def _question_id(question) -> str:
    qid = question if isinstance(question, str) else getattr(question, "id", None)
    if not isinstance(qid, str) or not qid:
        raise TypeError(f"expected a question id (a non-empty string) or a Question, got "
                        f"{question!r}"[:160])
    return qid


class DrillProgress:
    """A learner's Leitner boxes, in ``path`` (default ``$LMCOURSE_HOME/drills.json``)."""

    def __init__(self, path: str | Path | None = None):
        if path is None:
            from lmcourse.grading.learner_progress import home

            path = home() / "drills.json"
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a file path (str or Path) or None, got "
                            f"{type(path).__name__}")
        self.path = Path(path)

    # -- reading --------------------------------------------------------------------------------
    def _parse(self, text: str) -> dict[str, Card]:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProgressError(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(
                data.get("cards"), dict):
            raise ProgressError(f'expected {{"version": {VERSION}, "cards": {{...}}}}')
        return {qid: _check_card(qid, raw) for qid, raw in data["cards"].items()}

    def _read(self) -> dict[str, Card]:
        """The cards on disk; a damaged file is set aside with a warning (call under the lock
        when about to write)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError as exc:
            return self._set_aside(f"not UTF-8 text ({exc.reason})")
        try:
            return self._parse(text)
        except ProgressError as exc:
            return self._set_aside(str(exc))

    def _set_aside(self, why: str) -> dict[str, Card]:
        try:
            aside = atomic.set_aside(self.path)
        except FileNotFoundError:  # another process set it aside first
            return {}
        warnings.warn(f"the drills progress file {self.path} could not be used ({why}); it was "
                      f"moved to {aside} and drilling goes on with a fresh file", stacklevel=3)
        return {}

    def cards(self) -> dict[str, Card]:
        """Every card, by question id."""
        with atomic.locked(self.path):
            return self._read()

    def card(self, question_id) -> Card | None:
        """The card of one question (an id or a ``Question``), None if never answered."""
        return self.cards().get(_question_id(question_id))

    # -- writing --------------------------------------------------------------------------------
    def record(self, question_id, correct: bool, *, now: datetime | None = None) -> Card:
        """Record one answer: right moves the card up a box, wrong back to box 1."""
        qid = _question_id(question_id)
        if not isinstance(correct, bool):
            raise TypeError(f"correct must be True or False, got {correct!r}")
        moment = _now(now)
        with atomic.locked(self.path):
            cards = self._read()
            old = cards.get(qid)
            if old is None:
                box = 2 if correct else 1  # a new card starts in box 1; this answer moves it
                reviews, lapses = 1, int(not correct)
            else:
                box = min(old.box + 1, BOXES[-1]) if correct else 1
                reviews, lapses = old.reviews + 1, old.lapses + int(not correct)
            card = Card(box=box, due=_iso(moment + timedelta(days=INTERVALS[box])),
                        reviews=reviews, lapses=lapses, last=_iso(moment))
            cards[qid] = card
            atomic.write_json(self.path, {"version": VERSION,
                                          "cards": {k: asdict(v) for k, v in cards.items()}})
        return card

    # -- choosing -------------------------------------------------------------------------------
    def due(self, questions: Iterable, *, now: datetime | None = None,
            limit: int | None = None, include_later: bool = False) -> list:
        """The questions to ask now, from ``questions``.

        Cards that are due come first, the most overdue first (ties in the order given), then
        new questions in the order given. Questions not yet due are left out, unless
        ``include_later``: then they follow, soonest due first. ``limit`` caps the list.
        """
        if isinstance(questions, (str, bytes)):
            raise TypeError("questions must be a list of Question objects, not a string")
        questions = list(questions)
        for q in questions:
            _question_id(q)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {limit!r}")
        moment = _now(now)
        cards = self.cards()
        overdue, new, later = [], [], []
        for i, q in enumerate(questions):
            card = cards.get(q.id)
            if card is None:
                new.append(q)
            elif card.due_at <= moment:
                overdue.append((card.due_at, i, q))
            else:
                later.append((card.due_at, i, q))
        chosen = [q for _, _, q in sorted(overdue, key=lambda t: (t[0], t[1]))] + new
        if include_later:
            chosen += [q for _, _, q in sorted(later, key=lambda t: (t[0], t[1]))]
        return chosen if limit is None else chosen[:limit]

    def summary(self, *, now: datetime | None = None) -> dict:
        """``{"boxes": {1: n, ...}, "cards", "due_now", "reviews", "lapses", "next_due"}``;
        ``due_now`` counts the cards due (new questions are not counted: they have no card)."""
        moment = _now(now)
        cards = self.cards()
        boxes = {box: 0 for box in BOXES}
        for card in cards.values():
            boxes[card.box] += 1
        later = [c.due_at for c in cards.values() if c.due_at > moment]
        return {"boxes": boxes, "cards": len(cards),
                "due_now": sum(c.due_at <= moment for c in cards.values()),
                "reviews": sum(c.reviews for c in cards.values()),
                "lapses": sum(c.lapses for c in cards.values()),
                "next_due": _iso(min(later)) if later else None}


def days_until(card: Card, now: datetime | None = None) -> float:
    """Days from ``now`` until ``card`` is due (negative when overdue)."""
    seconds = (card.due_at - _now(now)).total_seconds()
    return 0.0 if math.isclose(seconds, 0.0, abs_tol=1e-9) else seconds / 86400
