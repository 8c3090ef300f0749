"""What the batch grader's isolation costs: the hostile class graded, against the same
notebooks simply executed in Jupyter kernels (nbclient, no isolation, no scoring).

    python benchmarks/bench_grader.py [--sandbox auto|bwrap|process]

Both run the same submissions one after another on this machine, side by side
in one run, and the ratio is what to quote (absolute times on a shared machine
swing). The grader does more than run them: it scores every exercise twice
(visible and hidden cases), reruns a notebook without a cell that hung or
killed its process, and starts one sandboxed process per notebook.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from hostile_class import MAX, NAME, make_class, points, sleepers, submission_paths  # noqa: E402

import nbformat  # noqa: E402

from lmcourse.grading.grade import grade  # noqa: E402
from lmcourse.grading.sandbox import Limits, choose_mode  # noqa: E402


def run_plainly(paths: list[Path], cell_seconds: float) -> float:
    """Execute each notebook in a fresh kernel, errors allowed, as the old grader did."""

    start = time.perf_counter()
    quiet = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the kernels' start-up warnings
    try:
        _execute_all(paths, cell_seconds)
    finally:
        os.dup2(quiet, 2)
    return time.perf_counter() - start


def _execute_all(paths: list[Path], cell_seconds: float) -> None:
    from nbclient import NotebookClient

    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - the unreadable submission
            continue
        with tempfile.TemporaryDirectory() as home:
            client = NotebookClient(nb, timeout=cell_seconds, kernel_name="python3",
                                    allow_errors=True,
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                client.execute(env={"HOME": home, "LMCOURSE_HOME": home,
                                    "LMCOURSE_BUDGET": "smoke", "MPLBACKEND": "Agg",
                                    "PATH": "/usr/bin:/bin"})
            except Exception:  # noqa: BLE001 - a timeout, a dead kernel
                pass


def print_table(rows, expected) -> None:
    """Each submission: what it tried, whether the grader handled it, undue points."""
    got = {(r.student, r.exercise): r.score for r in rows}
    print("| submission | tried | points (expected) | handled | undue points |")
    print("|---|---|---|---|---|")
    for student, exp in expected.items():
        score = sum(got[student, e] for e in MAX)
        want = [points(exp.scores, e) for e in MAX]
        partial = "partial" in want
        total = None if partial else sum(want)
        handled = all((0 < got[student, e] < 2 * MAX[e]) if w == "partial" else got[student, e] == w
                      for e, w in zip(MAX, want))
        undue = 0 if partial else max(0, score - total)
        print(f"| {student} | {exp.kind} | {score} ({'some' if partial else total}) | "
              f"{'yes' if handled else 'NO'} | {undue} |")
    honest = [s for s, e in expected.items() if e.kind == "honest"]
    harmed = [s for s in honest if any(
        got[s, e] != w for e, w in zip(MAX, (points(expected[s].scores, e) for e in MAX))
        if w != "partial")]
    print(f"honest students harmed: {len(harmed)} of {len(honest)} {harmed or ''}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args(argv)
    mode = choose_mode(args.sandbox)
    limits = Limits(cell_seconds=8, notebook_seconds=120, call_seconds=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected = make_class(root / "class", root / "gradebook.csv", root / "home")
        if mode != "bwrap":  # attacks on the grader itself need the real sandbox
            for student, exp in expected.items():
                if exp.bwrap_only:
                    (root / "class" / student / NAME).unlink()
        paths = submission_paths(root / "class")
        safe = [p for p in paths if not expected[p.parent.name].bwrap_only
                and p.parent.name not in ("kills_parent",)]
        start = time.perf_counter()
        rows = grade(paths, root / "gradebook.csv", limits=limits, sandbox=mode)
        graded = time.perf_counter() - start
        left_by_grader = len(sleepers())
        plain = run_plainly(safe, limits.cell_seconds)
        left_by_plain = sleepers()
        for pid in left_by_plain:
            os.kill(pid, signal.SIGKILL)
    print_table(rows, {s: e for s, e in expected.items() if mode == "bwrap" or not e.bwrap_only})
    print(f"{len(paths)} submissions of {NAME}, sandbox: {mode}")
    print(f"  graded (sandboxed, scored twice)  {graded:7.1f} s  {graded / len(paths):5.2f} s each")
    print(f"  executed plainly ({len(safe)}, nbclient) {plain:7.1f} s  "
          f"{plain / len(safe):5.2f} s each")
    print(f"  ratio per submission: {graded / len(paths) / (plain / len(safe)):.2f}x")
    print(f"  detached processes left running: graded {left_by_grader}, "
          f"executed plainly {len(left_by_plain)}")


if __name__ == "__main__":
    main()
