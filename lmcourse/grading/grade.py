"""Grade a class: run each submitted notebook and collect its check results.

    python -m lmcourse.grading.grade submissions/*/01_language_models.ipynb \\
        --gradebook gradebook.csv [--solutions solutions] [--timeout 120]

Each notebook is executed from scratch in a fresh kernel (nbclient), with
errors allowed so that one broken cell does not hide the later checks, and a
time limit per cell. The results that ``check()`` displayed are read back from
the outputs (the last one per exercise counts). An exercise that has no
result (its check cell was deleted, or never reached) scores 0.

The grade book is a CSV file with one row per submission and exercise:
``student, notebook, exercise, score, max_score, status``. The student is the
name of the folder holding the notebook (``submissions/ada/01.ipynb`` ->
``ada``), or the file name when several submissions share a folder. It is
written atomically, once every submission is graded; one broken submission
(unreadable, a crashing kernel, an endless cell) never stops the others.

Kernels run with ``LMCOURSE_HOME`` pointing to a temporary folder, so grading
never touches the grader's own progress file, and at the ``smoke`` budget
unless ``--budget`` says otherwise.

The results are only as trustworthy as the notebooks: a student who wants to
can fake a result in their notebook. This tool is for teaching, not exams.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from collections import Counter
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import nbformat

from lmcourse import atomic
from lmcourse.grading.checks import REGISTRY
from lmcourse.grading.notebooks import check_results, checked_exercises

DEFAULT_TIMEOUT = 120  # seconds per cell


@dataclass
class Row:
    student: str
    notebook: str
    exercise: str
    score: float
    max_score: float
    status: str


def _max_score(exercise: str) -> int:
    return REGISTRY[exercise].max_score if exercise in REGISTRY else 0


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int,
            budget: str = "smoke") -> str | None:
    """Run ``nb`` in place in a fresh kernel; return what stopped it early, or None."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    with tempfile.TemporaryDirectory(prefix="lmcourse-grade-") as home:
        env = dict(os.environ, LMCOURSE_HOME=home, LMCOURSE_BUDGET=budget, MPLBACKEND="Agg")
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                allow_errors=True, resources={"metadata": {"path": str(cwd)}})
        try:
            client.execute(env=env)
        except CellTimeoutError:
            return f"a cell ran longer than {timeout} s"
        except DeadKernelError:
            return "the kernel died"
        except Exception as exc:  # noqa: BLE001 - a bad submission must not stop the class
            return f"could not run the notebook ({exc.__class__.__name__}: {exc})"
    return None


def grade_notebook(path: str | Path, student: str, *, timeout: int = DEFAULT_TIMEOUT,
                   solutions: str | Path | None = None, budget: str = "smoke") -> list[Row]:
    """Rows for one submission: one per expected exercise, plus any other checked."""
    path = Path(path)
    expected: list[str] = []
    if solutions is not None and (Path(solutions) / path.name).exists():
        expected = checked_exercises(nbformat.read(Path(solutions) / path.name, as_version=4))
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook, unreadable...
        reason = f"unreadable notebook ({exc.__class__.__name__})"
        return [Row(student, path.name, ex, 0, _max_score(ex), reason)
                for ex in expected or ["*"]]
    if solutions is None:
        expected = checked_exercises(nb)
    stopped = execute(nb, path.parent, timeout, budget)
    results = check_results(nb)
    rows = []
    for exercise in expected + [ex for ex in results if ex not in expected]:
        result = results.get(exercise)
        if result is None:
            status = f"no result ({stopped})" if stopped else "no result"
            rows.append(Row(student, path.name, exercise, 0, _max_score(exercise), status))
        else:
            rows.append(Row(student, path.name, exercise, result.score, result.max_score,
                            result.status))
    return rows


def student_names(paths: list[Path]) -> list[str]:
    """The folder name of each submission, or its file name where folders repeat."""
    folders = Counter(p.resolve().parent for p in paths)
    return [p.parent.resolve().name if folders[p.resolve().parent] == 1 else p.stem
            for p in paths]


def gradebook_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(Row)])
    writer.writerows(astuple(row) for row in rows)
    return out.getvalue()


def grade(paths: list[str | Path], gradebook: str | Path, *, timeout: int = DEFAULT_TIMEOUT,
          solutions: str | Path | None = None, budget: str = "smoke",
          echo: bool = False) -> list[Row]:
    """Grade every notebook in ``paths`` and write the grade book; return its rows."""
    paths = [Path(p) for p in paths]
    rows: list[Row] = []
    for path, student in zip(paths, student_names(paths)):
        graded = grade_notebook(path, student, timeout=timeout, solutions=solutions,
                                budget=budget)
        rows += graded
        if echo:
            score = sum(r.score for r in graded)
            total = sum(r.max_score for r in graded)
            print(f"{student:20s} {path.name:32s} {score:g}/{total:g}", flush=True)
    atomic.write_text(gradebook, gradebook_csv(rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmcourse.grading.grade",
        description="Execute submitted exercise notebooks and write a CSV grade book.")
    parser.add_argument("notebooks", nargs="+", help="the submitted notebooks")
    parser.add_argument("--gradebook", required=True, help="CSV file to write")
    parser.add_argument("--solutions", help="folder of solution notebooks: an exercise they "
                        "check counts even if a student deleted its check cell")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per cell (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--budget", default="smoke",
                        help="LMCOURSE_BUDGET for the kernels (default smoke)")
    args = parser.parse_args(argv)
    grade(args.notebooks, args.gradebook, timeout=args.timeout, solutions=args.solutions,
          budget=args.budget, echo=True)
    print(f"wrote {args.gradebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
