"""The batch grader end to end: a hostile class, then a grader killed and resumed.

The class (``tests/hostile_class.py``) is graded once per module, in the
strongest sandbox this machine has (bubblewrap if it works, else plain
processes, where the attacks that only a real sandbox stops are left out).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile_class import (
    MAX,
    NAME,
    SOLUTION,
    make_class,
    points,
    sleepers,
    submission_paths,
    with_cell,
    write_notebook,
)
from lmcourse.grading.grade import grade
from lmcourse.grading.sandbox import Limits, choose_mode

ROOT = Path(__file__).resolve().parents[1]
# LMCOURSE_TEST_SANDBOX=process tests the plain-process mode on a machine with bubblewrap.
MODE = choose_mode(os.environ.get("LMCOURSE_TEST_SANDBOX", "auto"))
LIMITS = Limits(cell_seconds=5, notebook_seconds=120, call_seconds=1)
JOBS = 2  # two submissions at a time: the class takes half the time on two cores


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    folder, gradebook, home = root / "submissions", root / "out" / "gradebook.csv", root / "home"
    progress = home / ".lmcourse" / "progress.json"
    progress.parent.mkdir(parents=True)
    progress.write_text('{"version": 1, "exercises": {}}\n')
    expected = make_class(folder, gradebook, home)
    if MODE != "bwrap":
        for student in [s for s, e in expected.items() if e.bwrap_only]:
            (folder / student / NAME).unlink()
            del expected[student]
    paths = submission_paths(folder)
    originals = {p: p.read_bytes() for p in paths}
    sleepers_before = set(sleepers())  # left by something else on this machine
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        start = time.perf_counter()
        rows = grade(paths, gradebook, solutions=ROOT / "solutions", limits=LIMITS, sandbox=MODE,
                     jobs=JOBS)
        seconds = time.perf_counter() - start
    finally:
        os.environ["HOME"] = old_home or ""
    return dict(rows=rows, expected=expected, gradebook=gradebook, progress=progress,
                originals=originals, seconds=seconds, paths=paths,
                sleepers_before=sleepers_before)


def test_the_class_is_big_and_hostile(graded_class):
    expected = graded_class["expected"]
    assert len(expected) >= 25
    assert sum(e.kind != "honest" for e in expected.values()) >= 20


def test_every_student_gets_exactly_the_points_earned(graded_class):
    by = {(r.student, r.exercise): r for r in graded_class["rows"]}
    assert {s for s, _ in by} == set(graded_class["expected"])
    wrong = []
    for student, exp in graded_class["expected"].items():
        for exercise in MAX:
            row = by[student, exercise]
            want = points(exp.scores, exercise)
            assert row.max_score == MAX[exercise] * 2  # visible and hidden cases, always
            ok = (0 < row.score < row.max_score) if want == "partial" else row.score == want
            if not ok:
                wrong.append(f"{student} ({exp.kind}) {exercise}: {row.score}/{row.max_score} "
                             f"{row.status!r}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_only_the_assignments_exercises_are_in_the_grade_book(graded_class):
    assert {r.exercise for r in graded_class["rows"]} == set(MAX)
    assert all(0 <= r.score <= r.max_score for r in graded_class["rows"])


def test_the_grade_book_on_disk_is_the_graders_even_after_the_attackers_waited(graded_class):
    time.sleep(2.5)  # the detached writer would strike 2 s after its cell ran
    rows = list(csv.DictReader(graded_class["gradebook"].open()))
    got = [(r["student"], r["exercise"], int(r["score"]), int(r["max_score"])) for r in rows]
    want = [(r.student if not r.student.startswith("=") else "'" + r.student, r.exercise,
             r.score, r.max_score) for r in graded_class["rows"]]
    assert got == want
    totals = {r["student"]: int(r["score"]) for r in
              csv.DictReader(graded_class["gradebook"].with_name("gradebook_totals.csv").open())}
    assert totals["ada"] == 2 * sum(MAX.values()) and totals["bo"] == 0
    assert "'=1+1" in totals  # a formula-looking name is escaped


def test_no_process_a_submission_started_outlives_the_grader(graded_class):
    assert set(sleepers()) - graded_class["sleepers_before"] == set()


def test_submissions_and_the_instructors_files_are_untouched(graded_class):
    for path, data in graded_class["originals"].items():
        if MODE != "bwrap" and path.parent.name == "yan":
            continue  # a plain process can write there; yan's grade (above) is unharmed
        assert path.read_bytes() == data, f"{path} was changed"
    assert json.loads(graded_class["progress"].read_text()) == {"version": 1, "exercises": {}}


def test_feedback_names_the_mistakes_and_hides_the_hidden_cases(graded_class):
    folder = graded_class["gradebook"].with_name("gradebook_feedback")
    di = (folder / f"di-{Path(NAME).stem}.md").read_text()
    assert "softmax" in di and "Hidden cases (new random inputs, not shown)" in di
    assert "Looks like" in di or "NaN" in di or "inf" in di
    endless = (folder / f"endless_cell-{Path(NAME).stem}.md").read_text()
    assert f"ran longer than {LIMITS.cell_seconds:g} s" in endless


# ---------------------------------------------------------------------------
# The grader killed half-way, and interrupted


HONEST = ["ada", "bo", "cy", "fa"]


def _small_class(folder: Path, graded_class) -> list[Path]:
    paths = []
    for student in HONEST:
        source = next(p for p in graded_class["paths"] if p.parent.name == student)
        target = folder / student / NAME
        target.parent.mkdir(parents=True)
        target.write_bytes(graded_class["originals"][source])
        paths.append(target)
    return paths


def _command(paths, gradebook) -> list[str]:
    return [sys.executable, "-m", "lmcourse", "grade", *map(str, paths), "--gradebook",
            str(gradebook), "--solutions", str(ROOT / "solutions"), "--sandbox", MODE,
            "--timeout", str(LIMITS.cell_seconds), "--call-timeout", str(LIMITS.call_seconds),
            "--jobs", str(JOBS)]


def _run_until(command, lines: int, sig: int) -> tuple[int, str]:
    """Start the grader, send ``sig`` once it has printed ``lines`` graded lines."""
    # A shell that starts the tests in the background (``make test &``) ignores SIGINT, and
    # children inherit that: give the grader the default, as a terminal's Ctrl-C would find it.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    out = []
    for line in proc.stdout:
        out.append(line)
        if len(out) == lines:
            proc.send_signal(sig)
    return proc.wait(timeout=120), "".join(out)


def _rows(gradebook: Path) -> list[tuple]:
    return [(r["student"], r["exercise"], r["score"], r["max_score"], r["status"])
            for r in csv.DictReader(gradebook.open())]


def test_killed_grader_resumes_to_the_same_grade_book(graded_class, tmp_path):
    paths = _small_class(tmp_path / "class", graded_class)
    gradebook = tmp_path / "gradebook.csv"
    code, _ = _run_until(_command(paths, gradebook), 2, signal.SIGKILL)
    assert code == -signal.SIGKILL
    partial = _rows(gradebook)  # whole submissions only, in the class's order
    students = [r[0] for r in partial][::3]
    assert len(partial) == 3 * len(students) and 2 <= len(students) < len(HONEST)
    assert students == [s for s in HONEST if s in students]
    done = subprocess.run(_command(paths, gradebook), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    uninterrupted = [(r.student, r.exercise, str(r.score), str(r.max_score), r.status)
                     for r in graded_class["rows"] if r.student in HONEST]
    assert _rows(gradebook) == uninterrupted


def test_ctrl_c_stops_after_saving_what_is_done(graded_class, tmp_path):
    paths = _small_class(tmp_path / "class", graded_class)
    gradebook = tmp_path / "gradebook.csv"
    code, out = _run_until(_command(paths, gradebook), 1, signal.SIGINT)
    assert code == 130 and "interrupted" in out and "run the same command again" in out
    rows = _rows(gradebook)
    done = [line.split()[0] for line in out.splitlines() if "/" in line.split()[-1]]
    assert sorted({r[0] for r in rows}) == sorted(done) and len(rows) == 3 * len(done)
    assert 1 <= len(done) < len(HONEST)


def test_a_notebook_that_kills_the_grader_twice_is_set_aside(tmp_path):
    # Only a plain process can reach the grader; bubblewrap hides it (the class above).
    folder = tmp_path / "class"
    paths = []
    for student, source in (("ada", SOLUTION), ("kills_parent", None), ("yan", SOLUTION)):
        cells = source or with_cell(SOLUTION, "import os, signal\n"
                                              "os.kill(os.getppid(), signal.SIGKILL)")
        paths.append(write_notebook(folder, student, cells))
    gradebook = tmp_path / "gradebook.csv"
    command = _command(paths, gradebook)
    command[command.index("--sandbox") + 1] = "process"
    command[command.index("--jobs") + 1] = "1"
    for _ in range(2):  # the notebook kills the grader, the instructor reruns it
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {(r[0], r[1]): r for r in _rows(gradebook)}
    assert all(rows["ada", e][2] == rows["yan", e][2] == str(2 * MAX[e]) for e in MAX)
    for exercise in MAX:
        assert rows["kills_parent", exercise][2] == "0"
        assert "the grader was killed 2 times" in rows["kills_parent", exercise][4]
