"""Every notebook has the shape the course promises: Colab cell first, outputs where they belong."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
COLAB_REPO = "https://github.com/lmcourse/lmcourse"
COLAB_CELL = f'''# Colab set-up: on Google Colab this installs the course package; elsewhere it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "lmcourse @ git+{COLAB_REPO}"], check=True)'''

LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
ALL = LESSONS + SOLUTIONS + EXERCISES


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_there_are_lessons_and_exercises():
    assert [p.stem for p in LESSONS][:3] == [
        "00_welcome", "01_language_models", "02_data_and_tokenization"]
    assert SOLUTIONS and [p.name for p in SOLUTIONS] == [p.name for p in EXERCISES]


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_is_the_colab_cell(path):
    assert re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", path.name)  # 07b: a lesson in two parts
    assert _code_cells(path)[0].source.strip() == COLAB_CELL


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lessons_are_committed_with_outputs_and_no_errors(path):
    cells = _code_cells(path)
    assert any(c.outputs for c in cells), "run `make outputs` to save a cpu-budget run"
    for cell in cells:
        for out in cell.outputs:
            assert out.output_type != "error", f"saved error output in {path.name}"
            text = out.get("text", "")
            assert "oneDNN" not in text and "cpu_feature_guard" not in text


@pytest.mark.parametrize("path", SOLUTIONS + EXERCISES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_solutions_and_exercises_have_no_outputs(path):
    for cell in _code_cells(path):
        assert not cell.outputs and cell.execution_count is None


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_readme_has_an_open_in_colab_link(path):
    readme = (ROOT / "README.md").read_text()
    rel = f"{path.parent.name}/{path.name}"
    assert f"https://colab.research.google.com/github/lmcourse/lmcourse/blob/main/{rel}" in readme


def test_lessons_are_small():
    for path in LESSONS:
        assert path.stat().st_size < 2_000_000, f"{path.name} is too large: shrink its figures"
