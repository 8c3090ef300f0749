"""Every solution notebook, graded in the sandbox, gets full marks on the visible and
the hidden cases; every untouched exercise notebook gets "not attempted"."""
from __future__ import annotations

from pathlib import Path

import pytest

from lmcourse.grading.grade import assignment, grade, main, student_names
from lmcourse.grading.sandbox import Limits, SandboxBroken

ROOT = Path(__file__).resolve().parents[1]


def test_solutions_score_full_marks_and_exercises_not_attempted(tmp_path):
    names = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    paths = [ROOT / folder / name for name in names for folder in ("solutions", "exercises")]
    rows = grade(paths, tmp_path / "g.csv", solutions=ROOT / "solutions", jobs=2,
                 limits=Limits(cell_seconds=120, notebook_seconds=300))
    for name in names:  # rows come in the order of the paths: solution, then exercise
        exercises = list(assignment(ROOT / "solutions" / name))
        solved, todo = rows[:len(exercises)], rows[len(exercises):2 * len(exercises)]
        rows = rows[2 * len(exercises):]
        assert [r.exercise for r in solved] == exercises == [r.exercise for r in todo]
        for row in solved:
            assert row.notebook == name and row.score == row.max_score > 0, row
            assert row.status == "passed", row
        for row in todo:
            assert row.score == 0 and row.status == "not attempted", row
    assert rows == []


def test_student_names_come_from_folders_or_files(tmp_path):
    paths = [tmp_path / "ada" / "01.ipynb", tmp_path / "all" / "bo.ipynb",
             tmp_path / "all" / "cy.ipynb"]
    assert student_names(paths) == ["ada", "bo", "cy"]


def test_a_notebook_that_matches_no_assignment_says_so(tmp_path, capsys):
    stray = tmp_path / "ada" / "homework.ipynb"
    stray.parent.mkdir()
    stray.write_text("{}")
    code = main([str(stray), "--gradebook", str(tmp_path / "g.csv"), "--sandbox", "process"])
    assert code == 0
    text = (tmp_path / "g.csv").read_text()
    assert "no assignment is named homework.ipynb" in text and "01_language_models.ipynb" in text


def test_a_sandbox_that_cannot_start_stops_the_grading_with_the_reason(tmp_path):
    # 64 MiB of address space cannot even load torch: the machine's problem, not the
    # student's, so the class is not silently given zeros.
    with pytest.raises(SandboxBroken, match="could not start Python.*--memory"):
        grade([ROOT / "solutions" / "01_language_models.ipynb"], tmp_path / "g.csv",
              limits=Limits(memory_mb=64), sandbox="process")
    assert not (tmp_path / "g.csv").exists()
