"""A class of exercise-01 submissions, honest and hostile, with the points each earns.

``make_class(folder, gradebook)`` writes one ``<student>/01_language_models.ipynb``
per submission and returns ``{student: Expected}``. Honest ones are the
solution, the untouched exercise, partial work and a known mistake; the
hostile ones try everything a review of the old grader found: forged results,
pre-saved outputs, patched checks, calling the references, tensor subclasses,
reading the grader's command line, detached processes that outlive the run,
editing a classmate's notebook or the grade book, running a classmate's code
from ``../``, killing the grader, endless loops, memory hogs, ``exit()``,
formula-looking names, and answers whose failures are hard to report.

A hostile submission carries unattempted functions when its attack aims to
gain points (so any point it gets is undue) and the correct solution when its
attack aims to harm others or the grader (so it should still get full marks,
and every honest student too).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NAME = "01_language_models.ipynb"
MAX = {"softmax": 12, "cross_entropy": 7, "perplexity": 7}
SLEEPER = "1000.4242"  # a detached `sleep` with this argument must not outlive the grader


@dataclass
class Expected:
    scores: dict[str, int | str]  # exercise -> points, or "full", or "partial" (0 < s < max)
    kind: str  # "honest" or the attack
    bwrap_only: bool = False  # the attack only fails inside the bubblewrap sandbox


def _cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


SOLUTION = _cells(ROOT / "solutions" / NAME)
EXERCISE = _cells(ROOT / "exercises" / NAME)


def _function(cells: list[str], name: str) -> int:
    return next(i for i, c in enumerate(cells) if c.lstrip().startswith(f"def {name}("))


def _checks(cells: list[str]) -> list[int]:
    return [i for i, c in enumerate(cells) if c.lstrip().startswith("check(")]


def mixed(**take_solution: bool) -> list[str]:
    """The exercise notebook with the solution's version of the named functions."""
    cells = list(EXERCISE)
    for name, solved in take_solution.items():
        if solved:
            cells[_function(cells, name)] = SOLUTION[_function(SOLUTION, name)]
    return cells


def with_cell(cells: list[str], source: str, at: int | None = None) -> list[str]:
    cells = list(cells)
    cells.insert(len(cells) if at is None else at, source)
    return cells


def _forged_output(payload: dict) -> dict:
    return nbformat.v4.new_output("display_data", data={
        "application/vnd.lmcourse.check+json": payload, "text/plain": "forged"})


def _payload(exercise: str, score, max_score) -> dict:
    return {"version": 1, "exercise": exercise, "title": "", "status": "passed",
            "passed": True, "score": score, "max_score": max_score, "feedback": [],
            "cases": []}


def write_notebook(folder: Path, student: str, cells: list[str],
                   outputs: dict[int, list] | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    for index, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = (outputs or {}).get(index, [])
        nb.cells.append(cell)
    path = folder / student / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


FULL = {"softmax": "full", "cross_entropy": "full", "perplexity": "full"}
ZERO = {"softmax": 0, "cross_entropy": 0, "perplexity": 0}


def make_class(folder: Path, gradebook: Path, instructor_home: Path) -> dict[str, Expected]:
    folder.mkdir(parents=True, exist_ok=True)
    yan = folder / "yan" / NAME  # an honest student graded after the one who edits the file
    expected: dict[str, Expected] = {}

    def add(student, cells, scores, kind="honest", outputs=None, bwrap_only=False):
        write_notebook(folder, student, cells, outputs)
        expected[student] = Expected(scores, kind, bwrap_only)

    # -- honest ------------------------------------------------------------
    add("ada", SOLUTION, FULL)
    add("bo", EXERCISE, ZERO)
    add("cy", mixed(softmax=True, perplexity=True),
        {"softmax": "full", "cross_entropy": 0, "perplexity": 0})  # perplexity needs cross_entropy
    naive = SOLUTION[_function(SOLUTION, "softmax")].split("### BEGIN SOLUTION")[0].rstrip() + (
        "\n    return torch.exp(x) / torch.exp(x).sum(dim=dim, keepdim=True)\n")
    cells = list(SOLUTION)
    cells[_function(cells, "softmax")] = naive
    add("di", cells, {"softmax": "partial", "cross_entropy": "full", "perplexity": "full"})
    cells = [c for i, c in enumerate(SOLUTION) if i not in _checks(SOLUTION)]
    add("ed", cells, FULL)  # deleted every check cell: the functions still count
    add("fa", with_cell(SOLUTION, "undefined_name + 1", at=3), FULL)  # an error cell
    add("yan", SOLUTION, FULL)

    # -- forged results: unattempted functions, so every point would be undue --
    stub = mixed()
    add("forged_payload", stub, ZERO, "result payload 1012/15 displayed",
        outputs={len(stub) - 1: [_forged_output(_payload("softmax", 1012, 15))]})
    add("extra_rows", stub, ZERO, "results for exercises that do not exist",
        outputs={0: [_forged_output(_payload("made_up", 99, 99))]})
    add("changed_max", stub, ZERO, "max_score changed to 0",
        outputs={0: [_forged_output(_payload("cross_entropy", 0, 0))]})
    add("string_score", stub, ZERO, "a string score in a payload",
        outputs={0: [_forged_output(_payload("softmax", "12", "12"))]})
    display = ("from IPython.display import display\n"
               f"display({{'application/vnd.lmcourse.check+json': "
               f"{json.dumps(_payload('softmax', 12, 12))}, 'text/plain': 'x'}}, raw=True)")
    add("displays_payload", with_cell(stub, display), ZERO, "displays a forged payload when run")
    presaved = with_cell(stub, "raise SystemExit('stop here')")
    add("presaved_outputs", with_cell(presaved, 'check("softmax", softmax)'), ZERO,
        "outputs pre-saved in cells that never run",
        outputs={len(presaved): [_forged_output(_payload("softmax", 12, 12))]})
    identity = [c.replace('raise NotImplementedError("Write your solution here")', "return x")
                for c in stub]
    patch = ("import lmcourse.grading.checks as checks\n"
             "checks._same_values = lambda *a, **k: True\n"
             "checks._value_problem = lambda *a, **k: None\n"
             "checks._form_problem = lambda *a, **k: None")
    add("patches_checks", with_cell(identity, patch, at=3), ZERO, "monkeypatches the checks")
    registry = ("from lmcourse.grading import get_exercise\n"
                "softmax = lambda x, dim=-1: get_exercise('softmax').reference(x, dim)")
    add("calls_registry", with_cell(stub, registry), ZERO, "calls the reference via the registry")
    module = ("import lmcourse.grading.exercises_lm as ex\n"
              "softmax = lambda x, dim=-1: ex.REFERENCE_SOFTMAX(x, dim)")
    add("imports_references", with_cell(stub, module), ZERO, "imports the references' module")
    reads = ("import pathlib, lmcourse\n"
             "src = pathlib.Path(lmcourse.__file__).parent / 'grading' / 'exercises_lm.py'\n"
             "ns = {}\nexec(compile(src.read_text(), str(src), 'exec'), ns)\n"
             "softmax = lambda x, dim=-1: ns['torch'].softmax(x, dim)\n"
             "solved = pathlib.Path(lmcourse.__file__).parents[1] / 'solutions'\n"
             "assert not solved.exists(), 'the solutions are visible'")
    add("reads_reference_files", with_cell(stub, reads), ZERO,
        "reads the references' source file", bwrap_only=True)
    subclass = (
        "class Liar(torch.Tensor):\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        out = super().__torch_function__(func, types, args, kwargs or {})\n"
        "        return True if isinstance(out, (bool, torch.Tensor)) and func.__name__ in "
        "('allclose', 'equal', 'eq', '__eq__') else out\n"
        "def softmax(x, dim=-1):\n"
        "    return torch.zeros_like(x).as_subclass(Liar)\n"
        "check('softmax', softmax)")
    add("tensor_subclass", with_cell(stub, subclass), ZERO, "__torch_function__ says equal")

    # -- harming others or the grader: correct functions, so full marks are right --
    add("reads_cmdline", with_cell(SOLUTION, (
        "import os\nfound = []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n        found.append(open(f'/proc/{pid}/cmdline','rb').read())\n"
        "    except OSError:\n        pass\n"
        "assert not any(b'pytest' in c or b'--gradebook' in c for c in found), "
        "'saw the grader'")), FULL, "reads the grader's command line from /proc",
        bwrap_only=True)
    daemon = (
        "import os, time, subprocess\n"
        f"book = {str(gradebook)!r}\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        subprocess.Popen(['sleep', '{SLEEPER}'], start_new_session=True)\n"
        "        time.sleep(2)\n"
        "        try:\n"
        "            open(book, 'w').write('student,notebook,exercise,score,max_score,status\\n'"
        "'ada,x,softmax,0,12,failed\\n')\n"
        "        except OSError:\n            pass\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)")
    add("detached_writer", with_cell(SOLUTION, daemon), FULL,
        "a detached process rewrites the grade book later")
    add("edits_classmate", with_cell(SOLUTION, (
        f"try:\n    open({str(yan)!r}, 'w').write('{{}}')\nexcept OSError:\n    pass")), FULL,
        "overwrites a classmate's notebook before it is graded")
    add("writes_gradebook", with_cell(SOLUTION, (
        f"try:\n    open({str(gradebook)!r}, 'a').write('ada,x,softmax,-99,12,x\\n')\n"
        "except OSError:\n    pass")), FULL, "writes into the grade book while graded")
    add("runs_classmate", with_cell(mixed(), (
        "import json\n"
        "nb = json.load(open('../ada/01_language_models.ipynb'))\n"
        "for cell in nb['cells']:\n"
        "    if cell['cell_type'] == 'code' and 'def ' in ''.join(cell['source']):\n"
        "        exec(''.join(cell['source']))")), ZERO, "runs a classmate's code from ../")
    add("home_writer", with_cell(SOLUTION, (
        "import pathlib\n"
        "target = pathlib.Path.home() / '.lmcourse' / 'progress.json'\n"
        "target.parent.mkdir(parents=True, exist_ok=True)\n"
        "target.write_text('{\"hacked\": true}')")), FULL,
        "overwrites ~/.lmcourse/progress.json")
    add("writes_instructor_file", with_cell(SOLUTION, (
        f"import pathlib\ntarget = pathlib.Path({str(instructor_home)!r}) / '.lmcourse' / "
        "'progress.json'\n"
        "try:\n    target.write_text('{\"hacked\": true}')\nexcept OSError:\n    pass")), FULL,
        "overwrites the instructor's progress file by absolute path", bwrap_only=True)
    kill = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    add("kills_parent", with_cell(SOLUTION, kill),
        FULL, "kills its parent process", bwrap_only=True)
    add("endless_cell", with_cell(SOLUTION, "while True:\n    pass", at=5), FULL,
        "an endless loop in a cell")
    add("memory_hog", with_cell(SOLUTION, "hog = bytearray(64 * 2**30)", at=5), FULL,
        "allocates 64 GB")
    add("exits", with_cell(SOLUTION, "import os\nos._exit(3)", at=5), FULL,
        "os._exit() in a cell")
    hang = SOLUTION[_function(SOLUTION, "softmax")].replace(
        "    shifted =", "    while True:\n        pass\n    shifted =")
    cells = list(SOLUTION)
    cells[_function(cells, "softmax")] = hang
    add("endless_function", cells, {"softmax": 0, "cross_entropy": "full", "perplexity": "full"},
        "an endless loop in a graded function")
    cells = list(SOLUTION)
    cells[_function(cells, "perplexity")] = (
        "def perplexity(logits, targets):\n    return 10**400\n")
    add("huge_number", cells, {"softmax": "full", "cross_entropy": "full", "perplexity": 0},
        "returns 10**400")
    cells = list(SOLUTION)
    cells[_function(cells, "softmax")] = (
        "class Odd(Exception):\n    def __str__(self):\n        raise SystemExit('no')\n"
        "def softmax(x, dim=-1):\n    raise Odd()\n")
    add("odd_exception", cells, {"softmax": 0, "cross_entropy": "full", "perplexity": "full"},
        "raises an exception whose __str__ raises SystemExit")
    cells = list(SOLUTION)
    cells[_function(cells, "softmax")] = (
        "def softmax(x, dim=-1):\n    return torch.zeros(40_000_000)\n")
    add("huge_output", cells, {"softmax": 0, "cross_entropy": "full", "perplexity": "full"},
        "returns 160 MB")
    add("=1+1", SOLUTION, FULL, "a formula-looking name")
    broken = folder / "zed" / NAME
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("{ this is not a notebook")
    expected["zed"] = Expected(ZERO, "not a notebook")
    return expected


def sleepers() -> list[int]:
    """Processes the detached_writer submission started, if they are still running."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if SLEEPER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def points(scores: dict[str, int | str], exercise: str, hidden: bool = True) -> int | str:
    value = scores[exercise]
    full = MAX[exercise] * (2 if hidden else 1)
    return full if value == "full" else value


def submission_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*/{NAME}"))
