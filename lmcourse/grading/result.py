"""The result of one check, and how it shows itself.

A ``CheckResult`` displays itself in a notebook as a coloured box (green when
passed, red when not, amber when not attempted yet). It also carries a
machine-readable copy under the MIME type ``MIME_TYPE``, so the grading tool
can read every result back out of an executed notebook's outputs.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

MIME_TYPE = "application/vnd.lmcourse.check+json"
JSON_VERSION = 1

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED)

# (border, background, symbol) per status; dark text on a light background
# stays readable in dark notebook themes too.
_STYLE = {
    PASSED: ("#2e7d32", "#edf7ed", "\u2714"),
    FAILED: ("#c62828", "#fdecea", "\u2718"),
    NOT_ATTEMPTED: ("#b26a00", "#fff4e5", "\u270e"),
}


@dataclass
class CheckResult:
    """What ``check()`` found.

    ``score`` counts the test cases passed out of ``max_score``; ``feedback``
    names the likely mistakes with hints; ``cases`` lists every case as
    ``(name, passed)``.
    """

    exercise: str
    passed: bool
    score: int
    max_score: int
    feedback: list[str]
    status: str = FAILED
    title: str = ""
    cases: list[tuple[str, bool]] = field(default_factory=list)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if isinstance(self.feedback, str):
            self.feedback = [self.feedback]

    # -- machine-readable form --------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "exercise": self.exercise,
            "title": self.title,
            "status": self.status,
            "passed": self.passed,
            "score": self.score,
            "max_score": self.max_score,
            "feedback": list(self.feedback),
            "cases": [{"name": name, "passed": ok} for name, ok in self.cases],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CheckResult":
        """Rebuild a result from ``to_json()`` output (as found in a notebook)."""
        try:
            return cls(
                exercise=str(data["exercise"]),
                passed=bool(data["passed"]),
                score=data["score"],
                max_score=data["max_score"],
                feedback=[str(line) for line in data.get("feedback", [])],
                status=data.get("status", PASSED if data["passed"] else FAILED),
                title=str(data.get("title", "")),
                cases=[(str(c["name"]), bool(c["passed"])) for c in data.get("cases", [])],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a check result: {exc!r} in {data!r:.200}") from exc

    # -- display -------------------------------------------------------------

    def _heading(self) -> str:
        name = f"{self.exercise} ({self.title})" if self.title else self.exercise
        return f"{name}: {self.status}, {self.score}/{self.max_score}"

    def __str__(self) -> str:
        lines = [self._heading()]
        lines += [f"  - {line}" for line in self.feedback]
        if self.cases and self.status != NOT_ATTEMPTED:
            marks = ", ".join(f"{'ok' if ok else 'FAIL'} {name}" for name, ok in self.cases)
            lines.append(f"  cases: {marks}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"CheckResult(exercise={self.exercise!r}, status={self.status!r}, "
                f"score={self.score}, max_score={self.max_score})")

    def _repr_html_(self) -> str:
        border, background, symbol = _STYLE[self.status]
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.feedback)
        cases = ""
        if self.cases and self.status != NOT_ATTEMPTED:
            marks = " &middot; ".join(
                f"{'&#10003;' if ok else '&#10007;'}&nbsp;{html.escape(name)}"
                for name, ok in self.cases
            )
            cases = f'<div style="font-size:85%;color:#555;margin-top:4px">{marks}</div>'
        return (
            f'<div style="border-left:6px solid {border};background:{background};'
            'color:#1b1b1b;padding:8px 12px;margin:4px 0;border-radius:4px;'
            'font-family:sans-serif;line-height:1.4">'
            f'<div style="font-weight:bold;color:{border}">{symbol} '
            f"{html.escape(self._heading())}</div>"
            f'<ul style="margin:4px 0 0 0;padding-left:20px">{items}</ul>{cases}</div>'
        )

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {
            "text/plain": str(self),
            "text/html": self._repr_html_(),
            MIME_TYPE: self.to_json(),
        }
