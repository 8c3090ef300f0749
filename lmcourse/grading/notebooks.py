"""Notebooks in and out: the exercise notebooks made from the solutions.

Solutions are the single source of truth. In a solution notebook the answer
sits between two marker lines inside a code cell::

    def softmax(x, dim=-1):
        \"\"\"...\"\"\"
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

``make_exercise`` replaces each marked block with
``raise NotImplementedError("Write your solution here")`` at the marker's
indentation (keeping the signature and docstring above it) and strips every
output, so the exercise notebook runs top to bottom and its checks report
"not attempted yet".
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from lmcourse import atomic

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Write your solution here")'


class MarkerError(ValueError):
    """The solution markers in a notebook do not pair up."""


# ---------------------------------------------------------------------------
# Solutions -> exercises


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every marked solution block in ``source`` with the stub line."""
    out: list[str] = []
    begin_line = 0  # 1-based line of the open BEGIN marker, 0 when none is open
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin_line:
                raise MarkerError(f"{where}, line {number}: {BEGIN!r} inside the block "
                                  f"opened on line {begin_line}; close it with {END!r} first")
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB)
        elif marker == END:
            if not begin_line:
                raise MarkerError(f"{where}, line {number}: {END!r} without a {BEGIN!r} "
                                  "before it")
            begin_line = 0
        elif not begin_line:
            out.append(line)
    if begin_line:
        raise MarkerError(f"{where}, line {begin_line}: {BEGIN!r} has no matching {END!r}")
    return "\n".join(out)


def _marker_lines(source: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in source.split("\n"))


def make_exercise(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The exercise version of solution notebook ``nb`` (a new object)."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells, start=1):
        where = f"{name}, cell {index}"
        if cell.cell_type != "code":
            if _marker_lines(cell.source):
                raise MarkerError(f"{where}: solution markers only work in code cells, "
                                  f"but this is a {cell.cell_type} cell")
            continue
        cell.source = strip_solutions(cell.source, where)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The exact text we write for ``nb``, so that a fresh generation compares equal."""
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def _solution_notebooks(solutions: Path) -> list[Path]:
    if not solutions.is_dir():
        raise FileNotFoundError(f"solutions folder {solutions} does not exist")
    return sorted(solutions.glob("*.ipynb"))


def generate(solutions: str | Path) -> dict[str, str]:
    """Exercise notebook text for every notebook in ``solutions``, keyed by file name."""
    solutions = Path(solutions)
    texts = {}
    for path in _solution_notebooks(solutions):
        nb = nbformat.read(path, as_version=4)
        texts[path.name] = notebook_text(make_exercise(nb, name=str(path)))
    return texts


def make_exercises(solutions: str | Path, exercises: str | Path) -> list[Path]:
    """Write ``exercises/NAME.ipynb`` for every ``solutions/NAME.ipynb``; return the paths.

    Every notebook is generated before any is written, so a marker error in
    one leaves the exercises folder as it was.
    """
    exercises = Path(exercises)
    written = []
    for name, text in generate(solutions).items():
        path = exercises / name
        atomic.write_text(path, text)
        written.append(path)
    return written


def exercise_differences(solutions: str | Path, exercises: str | Path) -> list[str]:
    """What differs between ``exercises`` and a fresh generation (empty when in sync)."""
    exercises = Path(exercises)
    fresh = generate(solutions)
    problems = []
    for name, text in fresh.items():
        path = exercises / name
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path} differs from the one generated from {Path(solutions) / name}")
    if exercises.is_dir():
        for path in sorted(exercises.glob("*.ipynb")):
            if path.name not in fresh:
                problems.append(f"{path} has no solution notebook in {solutions}")
    return problems
