"""Exercise notebooks are generated from solutions: markers, outputs, and the committed copies."""
import ast
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from lmcourse.grading.make_exercises import main
from lmcourse.grading.notebooks import (
    BEGIN,
    END,
    STUB,
    MarkerError,
    exercise_differences,
    make_exercise,
    strip_solutions,
)

ROOT = Path(__file__).resolve().parents[1]


def test_committed_exercises_match_a_fresh_generation():
    problems = exercise_differences(ROOT / "solutions", ROOT / "exercises")
    assert problems == [], "\n".join(problems) + "\nrun: make exercises"


def test_committed_exercises_hold_no_solution_code():
    solutions = nbformat.read(ROOT / "solutions" / "01_language_models.ipynb", as_version=4)
    exercises = nbformat.read(ROOT / "exercises" / "01_language_models.ipynb", as_version=4)
    exercise_code = "\n".join(c.source for c in exercises.cells)
    for cell in solutions.cells:
        inside = False
        for line in cell.source.split("\n"):
            if line.strip() in (BEGIN, END):
                inside = line.strip() == BEGIN
            elif inside and line.strip():
                assert line not in exercise_code
    stubs = [c for c in exercises.cells if c.cell_type == "code" and STUB in c.source]
    assert len(stubs) == 3
    for cell in exercises.cells:
        if cell.cell_type == "code":
            ast.parse(cell.source)  # the stubs keep valid indentation


SOURCE = f'''class Model:
    def forward(self, x):
        """Docstring stays."""
        {BEGIN}
        y = x * 2
        return y
        {END}

def helper():
    setup = 1
    {BEGIN}
    answer = setup + 41
    {END}
    return answer
{BEGIN}
top_level = True
{END}'''


def test_markers_are_replaced_at_their_indentation():
    out = strip_solutions(SOURCE)
    assert out == f'''class Model:
    def forward(self, x):
        """Docstring stays."""
        {STUB}

def helper():
    setup = 1
    {STUB}
    return answer
{STUB}'''
    ast.parse(out)


def test_text_without_markers_is_unchanged():
    source = "x = 1\n\nprint(x)\n"
    assert strip_solutions(source) == source


@pytest.mark.parametrize("source, message", [
    (f"def f():\n    {BEGIN}\n    return 1\n", "line 2: '### BEGIN SOLUTION' has no matching"),
    (f"def f():\n    return 1\n    {END}\n", "line 3: '### END SOLUTION' without"),
    (f"{BEGIN}\n{BEGIN}\n{END}\n",
     "line 2: '### BEGIN SOLUTION' inside the block opened on line 1"),
])
def test_unbalanced_markers_are_a_clear_error(source, message):
    with pytest.raises(MarkerError, match=message):
        strip_solutions(source, where="nb.ipynb, cell 3")
    with pytest.raises(MarkerError, match="nb.ipynb, cell 3"):
        strip_solutions(source, where="nb.ipynb, cell 3")


def tiny_solution_notebook():
    nb = new_notebook(cells=[
        new_markdown_cell("# Title\nThe answer goes between `### BEGIN SOLUTION` markers."),
        new_code_cell(SOURCE, execution_count=3,
                      outputs=[new_output("stream", name="stdout", text="hi\n")]),
        new_code_cell("print('no markers')", execution_count=4,
                      outputs=[new_output("stream", name="stdout", text="no markers\n")],
                      metadata={"execution": {"iopub.status.idle": "2024"}, "tags": ["keep"]}),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def test_make_exercise_strips_solutions_and_outputs():
    solution = tiny_solution_notebook()
    exercise = make_exercise(solution)
    assert solution.cells[1].outputs  # the input notebook is not modified
    assert exercise.cells[0].source == solution.cells[0].source
    assert exercise.cells[1].source == strip_solutions(SOURCE)
    assert exercise.cells[2].source == "print('no markers')"
    for cell in exercise.cells[1:]:
        assert cell.outputs == [] and cell.execution_count is None
    assert exercise.cells[2].metadata == {"tags": ["keep"]}
    assert exercise.metadata == solution.metadata


def test_markers_in_a_markdown_cell_are_an_error():
    nb = new_notebook(cells=[new_markdown_cell(f"{BEGIN}\nsecret\n{END}")])
    with pytest.raises(MarkerError, match="only work in code cells"):
        make_exercise(nb, name="x.ipynb")


def test_command_line_writes_then_checks(tmp_path, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nbformat.write(tiny_solution_notebook(), solutions / "01_tiny.ipynb")

    assert main([str(solutions), str(exercises), "--check"]) == 1
    assert "01_tiny.ipynb is missing" in capsys.readouterr().out

    assert main([str(solutions), str(exercises)]) == 0
    written = nbformat.read(exercises / "01_tiny.ipynb", as_version=4)
    assert STUB in written.cells[1].source and "41" not in written.cells[1].source
    assert main([str(solutions), str(exercises), "--check"]) == 0

    # A hand edit, and a notebook without a solution, are both reported.
    path = exercises / "01_tiny.ipynb"
    path.write_text(path.read_text().replace("no markers", "edited"))
    nbformat.write(new_notebook(), exercises / "02_orphan.ipynb")
    assert main([str(solutions), str(exercises), "--check"]) == 1
    out = capsys.readouterr().out
    assert "01_tiny.ipynb differs" in out and "02_orphan.ipynb has no solution notebook" in out


def test_command_line_reports_a_marker_error_without_writing(tmp_path, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nb = new_notebook(cells=[new_code_cell("print(1)"),
                             new_code_cell(f"def f():\n    {BEGIN}\n    return 1")])
    nbformat.write(nb, solutions / "01_bad.ipynb")
    assert main([str(solutions), str(exercises)]) == 2
    err = capsys.readouterr().err
    assert "01_bad.ipynb, cell 2, line 2" in err and "no matching" in err
    assert not exercises.exists()
