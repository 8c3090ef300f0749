"""Grade a class: run each submitted notebook in a sandbox and score it from outside.

    python -m lmcourse grade submissions/*/01_language_models.ipynb \\
        --gradebook gradebook.csv

For each submission, in order:

1. Its assignment is the solution notebook of the same file name (in
   ``--solutions``, by default the course's ``solutions/``): the exercises
   its ``check("id", function)`` calls name, each at its full max score.
2. A copy of the notebook runs in a sandboxed process (``sandbox.Worker``:
   bubblewrap where installed, else a plain process; its own scratch
   folder, HOME and limits). Its ``check()`` calls only say which function
   answers which exercise; a cell that fails, hangs or kills its process is
   skipped and the notebook is run again without it.
3. The grader builds every case, the reference outputs and the known
   mistakes in its own process and asks the sandbox only to call the
   student's function on the inputs; it reads back plain values (tensors,
   numbers, lists: ``wire``) and judges them with the same code as
   ``check()`` (``checks.evaluate``). Then the same exercise is scored again
   on hidden cases, built with the grader's own seed: scored, not revealed.
   Nothing the notebook prints, displays or saves counts.
4. The result is saved at once (``gradebook``) and the CSV files rewritten.

A rerun of the same command skips the submissions already graded (``--force``
grades them again). Ctrl-C (SIGINT) or SIGTERM stops after saving what is
done; the submission in progress is graded on the next run.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import nbformat
import torch

import lmcourse
from lmcourse import runtime
from lmcourse.grading import wire
from lmcourse.grading.checks import REGISTRY, Exercise, evaluate
from lmcourse.grading.gradebook import GradeBook, Graded, Row, markdown_text
from lmcourse.grading.result import NOT_ATTEMPTED, CheckResult
from lmcourse.grading.safe_call import Outcome
from lmcourse.grading.sandbox import (
    MODES,
    Dead,
    Limits,
    SandboxBroken,
    Worker,
    adopt_orphans,
    choose_mode,
    kill_all_workers,
)
from lmcourse.validate import positive_int

HIDDEN_SEED = 20261202  # an instructor's own --hidden-seed keeps the hidden cases private
MAX_ATTEMPTS = 2  # grader deaths while running one notebook before it is given up
GRACE_SECONDS = 10.0  # beyond a call's own limit, for a C call the sandbox cannot interrupt
DEFAULT_SOLUTIONS = Path(lmcourse.__file__).resolve().parent.parent / "solutions"

_CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([A-Za-z0-9_\-]+)["']\s*,\s*([A-Za-z_][\w.]*)""")


def assignment(solution: Path) -> dict[str, str]:
    """``{exercise id: function name}`` for the ``check()`` calls of a solution notebook."""
    nb = nbformat.read(solution, as_version=4)
    found: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for exercise, name in _CHECK_CALL.findall(cell.source):
                if exercise in REGISTRY:
                    found.setdefault(exercise, name)
    if not found:
        raise ValueError(f"{solution} has no check(\"id\", function) call of a known exercise")
    return found


def student_names(paths: list[Path]) -> list[str]:
    """The folder name of each submission, or its file name where folders repeat."""
    folders = Counter(p.resolve().parent for p in paths)
    return [p.parent.resolve().name if folders[p.resolve().parent] == 1 else p.stem
            for p in paths]


def hidden_exercise(exercise: Exercise, seed: int) -> Exercise:
    """The same exercise on cases drawn from another seed: new random inputs."""
    return dataclasses.replace(
        exercise, cases=lambda gen: exercise.cases(torch.Generator().manual_seed(seed)))


# ---------------------------------------------------------------------------
# The student's function, called in the sandbox


class RemoteAnswer:
    """``checks.Answer`` for a function that lives in a sandboxed notebook."""

    _ids = itertools.count()

    def __init__(self, worker: Worker, exercise_id: str, name: str):
        self.worker, self.exercise_id, self.name = worker, exercise_id, name
        self.dead: str | None = None

    def call(self, args, kwargs, time_limit):
        return self._ask("call", args, kwargs, None, time_limit)

    def gradients(self, args, kwargs, weight, time_limit):
        return self._ask("grad", args, kwargs, weight, time_limit)

    def _ask(self, op, args, kwargs, weight, time_limit) -> Outcome:
        if self.dead is None:
            request_id = next(self._ids)
            try:
                self.worker.send(op=op, id=request_id, exercise=self.exercise_id,
                                 args=wire.encode(args), kwargs=wire.encode(kwargs),
                                 weight=wire.encode(weight), time_limit=time_limit)
                wait = min(time_limit + GRACE_SECONDS, self.worker.seconds_left())
                reply = self.worker.receive(wait)
                if reply is None:
                    self.worker.kill()
                    self.dead = (f"did not return within {time_limit:g} s and its notebook's "
                                 "process had to be stopped")
                    return Outcome("time limit", message=self.dead)
                return _outcome(reply, request_id)
            except Dead as exc:
                self.dead = f"stopped the process running your notebook ({exc})"
            except wire.WireError as exc:
                self.worker.kill()
                self.dead = f"returned something the grader cannot read ({exc})"
        return Outcome("exception", message=self.dead, error_type="ProcessDied",
                       error_text=self.dead)


_OUTCOME_KINDS = {"ok", "not implemented", "exception", "time limit", "exit", "interrupt"}


def _outcome(reply: dict, request_id: int) -> Outcome:
    """A worker's reply as an ``Outcome``, checking every field it sends."""
    if reply.get("event") != "outcome" or reply.get("id") != request_id:
        raise wire.WireError("an answer to a question the grader did not ask")
    kind = reply.get("kind")
    if kind not in _OUTCOME_KINDS:
        raise wire.WireError(f"unknown outcome {kind!r:.40}")

    def text(key):
        value = reply.get(key)
        return None if value is None else str(value)[:2000]

    value = wire.decode(reply.get("value")) if kind == "ok" else None
    inputs = wire.decode(reply.get("inputs")) if reply.get("inputs") is not None else None
    seconds = reply.get("seconds")
    return Outcome(kind, value=value, message=text("message") or "",
                   seconds=float(seconds) if type(seconds) in (int, float) else 0.0,
                   error_type=text("error_type"), error_text=text("error_text"),
                   location=text("location"), raiser=text("raiser"), inputs=inputs)


# ---------------------------------------------------------------------------
# One submission


@dataclasses.dataclass
class Settings:
    limits: Limits
    mode: str
    budget: str = "smoke"
    hidden_seed: int | None = HIDDEN_SEED
    data_dir: Path | None = None

    def signature(self, exercises: dict[str, str]) -> str:
        """What decides a grade besides the notebook: a saved result needs the same."""
        return json.dumps({"exercises": exercises, "budget": self.budget,
                           "hidden_seed": self.hidden_seed,
                           "limits": dataclasses.asdict(self.limits),
                           "max": {e: REGISTRY[e].max_score for e in exercises}},
                          sort_keys=True)


class _Run:
    """Grading of one submission: the notebook's runs and the exercises' results."""

    def __init__(self, path: Path, data: bytes, exercises: dict[str, str], settings: Settings):
        self.path, self.data, self.exercises, self.settings = path, data, exercises, settings
        self.notes: list[str] = []
        self.skip: set[int] = set()
        self.started = time.monotonic()

    def seconds_left(self) -> float:
        return self.settings.limits.notebook_seconds - (time.monotonic() - self.started)

    def start(self, cells: list[str]) -> tuple[Worker, dict]:
        """A worker that has run the notebook (skipping cells that broke it) and is ready."""
        limits = self.settings.limits
        self.cells = cells
        false_starts = 0
        while True:
            remaining = self.seconds_left()
            if remaining <= 0:
                raise Dead(f"the notebook's time limit ({limits.notebook_seconds:g} s) ran out")
            worker = Worker(self.path.name, self.data,
                            dataclasses.replace(limits, notebook_seconds=remaining),
                            self.settings.mode, budget=self.settings.budget,
                            data_dir=self.settings.data_dir)
            try:
                worker.send(cells=cells, skip=sorted(self.skip), names=self.exercises)
                ready = self._run_cells(worker, limits.cell_seconds)
                if ready is not None:
                    return worker, ready
            except SandboxBroken:
                worker.kill()
                false_starts += 1
                if false_starts == 2:  # once may be a fluke of a busy machine; twice is not
                    raise
                continue
            except BaseException:  # Dead, Ctrl-C: end this process too
                worker.kill()
                raise
            worker.kill()

    def _run_cells(self, worker: Worker, cell_seconds: float) -> dict | None:
        """Follow the cells; None if one had to be stopped (it is skipped next time)."""
        current, seen = None, False
        while True:
            wait = min(cell_seconds, worker.seconds_left()) if current is not None else \
                worker.seconds_left()
            try:
                message = worker.receive(wait)
            except Dead as exc:
                if not seen:  # no notebook code has run yet: not the student's doing
                    raise SandboxBroken(
                        f"the sandbox ({self.settings.mode}) could not start Python for "
                        f"{self.path}: {exc}; "
                        f"{worker.startup_error() or 'no error output'}. Is --memory "
                        f"({self.settings.limits.memory_mb} MiB) too low?") from None
                self._note(f"{self._cell(current)} stopped the notebook's process ({exc}); "
                           "the notebook was run again without it")
                self.skip.add(current)
                return None
            if message is None:
                if worker.seconds_left() <= 0 or current is None:
                    limit = self.settings.limits.notebook_seconds
                    raise Dead(f"the notebook's time limit ({limit:g} s) ran out")
                self._note(f"{self._cell(current)} ran longer than {cell_seconds:g} s; the "
                           "notebook was run again without it")
                self.skip.add(current)
                return None
            seen = True
            event = message.get("event")
            index = message.get("index")
            if event == "cell" and type(index) is int:
                current = index
            elif event == "cell_done" and index == current:
                if message.get("error"):
                    self._note(f"{self._cell(current)} raised {str(message['error'])[:300]}")
                current = None
            elif event == "ready" and current is None and isinstance(message.get("offered"), dict):
                return message["offered"]
            else:
                raise Dead(f"it wrote a message out of order ({str(event)[:40]!r})")

    def _cell(self, index: int) -> str:
        """``code cell 6 (`while True:`)``: which cell, as the student can find it."""
        lines = [line.strip() for line in self.cells[index].splitlines() if line.strip()]
        first = lines[0][:60] if lines else ""
        return f"code cell {index + 1} (`{first}`)"

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def grade_submission(path: Path, data: bytes | None, student: str, exercises: dict[str, str],
                     settings: Settings) -> tuple[list[Row], str]:
    """The rows and the feedback (Markdown) for one submission whose bytes are ``data``."""
    results: dict[str, tuple[CheckResult, CheckResult | None]] = {}
    problems: dict[str, str] = {}
    run = _Run(path, data, exercises, settings)
    try:
        if data is None:
            raise OSError("the file could not be read")
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        cells = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook, unreadable...
        problems = {e: f"unreadable notebook ({exc.__class__.__name__})" for e in exercises}
        cells = None
    todo = [e for e in exercises if e not in problems]
    while todo:
        try:
            worker, offered = run.start(cells)
        except Dead as exc:
            for exercise in todo:
                problems[exercise] = f"not graded: {exc}"
            break
        try:
            while todo:
                exercise = todo.pop(0)
                what = offered.get(exercise)
                if what != "callable":
                    problems[exercise] = _no_answer(what, exercises[exercise])
                    continue
                answer = RemoteAnswer(worker, exercise, exercises[exercise])
                visible, _ = evaluate(REGISTRY[exercise], answer,
                                      settings.limits.call_seconds)
                hidden = None
                if settings.hidden_seed is not None and answer.dead is None:
                    hidden, _ = evaluate(hidden_exercise(REGISTRY[exercise], settings.hidden_seed),
                                         answer, settings.limits.call_seconds)
                elif settings.hidden_seed is not None:
                    hidden = _zero(REGISTRY[exercise], "not run: the notebook's process had "
                                   "stopped")
                results[exercise] = (visible, hidden)
                if answer.dead is not None:
                    run._note(f"{exercise}: your function {answer.dead}")
                    break  # a fresh process for the next exercise
        finally:
            worker.kill()
    rows = []
    for exercise in exercises:
        max_score = _max_score(exercise, settings)
        if exercise in results:
            visible, hidden = results[exercise]
            score = visible.score + (hidden.score if hidden else 0)
            status = visible.status
            if hidden is not None and visible.passed and not hidden.passed:
                status = "failed (hidden cases)"
            rows.append(Row(student, path.name, exercise, score, max_score, status))
        else:
            rows.append(Row(student, path.name, exercise, 0, max_score, problems[exercise]))
    return rows, feedback_markdown(student, path.name, rows, results, run.notes)


def _max_score(exercise: str, settings: Settings) -> int:
    """Points for one exercise: its cases, twice over with the hidden ones."""
    return REGISTRY[exercise].max_score * (2 if settings.hidden_seed is not None else 1)


def _no_answer(what: str | None, name: str) -> str:
    if what in (None, "missing"):
        return (f"no answer: no check() call for it ran and no function named {name} "
                "was defined")
    return f"no answer: check() was given {what}, not a function"


def _zero(exercise: Exercise, why: str) -> CheckResult:
    return CheckResult(exercise=exercise.id, title=exercise.title, passed=False, score=0,
                       max_score=exercise.max_score, feedback=[why])


def feedback_markdown(student: str, notebook: str, rows: list[Row],
                      results: dict[str, tuple[CheckResult, CheckResult | None]],
                      notes: list[str]) -> str:
    score, total = sum(r.score for r in rows), sum(r.max_score for r in rows)
    lines = [f"# {markdown_text(notebook)}: {markdown_text(student)}", "",
             f"**Total: {score}/{total}**", ""]
    for row in rows:
        lines += [f"## {row.exercise}: {row.score}/{row.max_score}", ""]
        visible, hidden = results.get(row.exercise, (None, None))
        if visible is None:
            lines += [f"- {markdown_text(row.status)}", ""]
            continue
        lines.append(f"Your cases: {visible.score}/{visible.max_score} ({visible.status})")
        lines += [f"- {markdown_text(line)}" for line in visible.feedback]
        if visible.cases and visible.status != NOT_ATTEMPTED:
            marks = ", ".join(f"{'ok' if ok else 'FAIL'} {markdown_text(name)}"
                              for name, ok in visible.cases)
            lines.append(f"- cases: {marks}")
        if hidden is not None:
            lines.append("")
            lines.append(f"Hidden cases (new random inputs, not shown): "
                         f"{hidden.score}/{hidden.max_score}")
        lines.append("")
    if notes:
        lines += ["## Notes on running your notebook", ""]
        lines += [f"- {markdown_text(note)}" for note in notes]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The class


def grade(paths: list[str | Path], gradebook: str | Path, *, solutions: str | Path | None = None,
          limits: Limits | None = None, sandbox: str = "auto", budget: str = "smoke",
          hidden_seed: int | None = HIDDEN_SEED, force: bool = False, jobs: int = 1,
          data_dir: str | Path | None = None, echo: bool = False) -> list[Row]:
    """Grade every notebook in ``paths`` into ``gradebook``; return the rows.

    Every submission is read once, before any is run, and graded from that
    copy: a notebook that edits a classmate's file changes nothing. ``jobs``
    submissions are graded at a time. Raises ``KeyboardInterrupt`` after
    saving what was done if interrupted.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no submissions to grade")
    jobs = positive_int("jobs", jobs)
    runtime.budget(budget)  # an unknown budget name fails here, before any notebook runs
    solutions = Path(solutions) if solutions is not None else DEFAULT_SOLUTIONS
    if not solutions.is_dir():
        raise ValueError(f"the solutions folder {solutions} does not exist: pass --solutions, "
                         "the folder of solution notebooks that defines each assignment")
    book = GradeBook(gradebook)
    settings = Settings(limits or Limits(), choose_mode(sandbox), budget, hidden_seed,
                        Path(data_dir) if data_dir is not None else None)
    snapshots = [_read(path) for path in paths]
    students = student_names(paths)
    assignments = {name: _assignment(solutions, name) for name in {p.name for p in paths}}
    done: dict[int, Graded] = {}
    lock, stop = threading.Lock(), threading.Event()

    def grade_one(index: int) -> None:
        if stop.is_set():
            return
        path, student = paths[index], students[index]
        try:
            graded = _grade_one(path, snapshots[index], student, solutions,
                                assignments[path.name], settings, book, force)
        except KeyboardInterrupt:
            book.abandon(str(path.resolve()))  # stopped by the instructor, not by the notebook
            raise
        with lock:
            if stop.is_set():  # interrupted while this one ran: it is graded next time
                book.abandon(str(path.resolve()))
                return
            book.save(graded)
            done[index] = graded
            book.write([done[i] for i in sorted(done)])
        if echo:
            print(f"{student:20s} {path.name:32s} {graded.score:>4}/{graded.max_score:<4}",
                  flush=True)

    adopt_orphans(True)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the checks' tensors are tiny; threads only add waiting
    try:
        if jobs == 1:
            for index in range(len(paths)):
                grade_one(index)
        else:
            with ThreadPoolExecutor(jobs) as pool:
                futures = [pool.submit(grade_one, i) for i in range(len(paths))]
                try:
                    while not all(f.done() for f in futures):
                        wait(futures, timeout=0.2)
                except KeyboardInterrupt:
                    stop.set()
                    kill_all_workers()
                    raise
                for future in futures:
                    future.result()
    except KeyboardInterrupt:
        stop.set()
        with lock:
            book.write([done[i] for i in sorted(done)])
        if echo:
            print(f"interrupted: {len(done)} of {len(paths)} submissions are graded and saved "
                  f"in {book.csv_path}; run the same command again to grade the rest",
                  flush=True)
        raise
    finally:
        adopt_orphans(False)
        torch.set_num_threads(torch_threads)
    return [row for i in sorted(done) for row in done[i].rows]


def _assignment(solutions: Path, name: str) -> dict[str, str]:
    solution = solutions / name
    return assignment(solution) if solution.exists() else {}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _grade_one(path: Path, data: bytes | None, student: str, solutions: Path,
               exercises: dict[str, str], settings: Settings, book: GradeBook,
               force: bool) -> Graded:
    resolved = str(path.resolve())
    sha = hashlib.sha256(data).hexdigest() if data is not None else "unreadable"
    signature = settings.signature(exercises)
    saved = None if force else book.load(resolved, sha, signature)
    if saved is not None and saved.student == student:
        return saved
    if not exercises:
        known = ", ".join(sorted(p.name for p in solutions.glob("*.ipynb")))
        why = f"no assignment is named {path.name} (the solutions are: {known})"
        rows, feedback = [Row(student, path.name, "*", 0, 0, why)], f"# {path.name}\n\n{why}\n"
    elif not force and book.attempts(resolved, sha) >= MAX_ATTEMPTS:
        # The grader died twice while running this notebook (a notebook can kill
        # its grader in process mode): do not let it stop the class a third time.
        why = (f"not graded: the grader was killed {MAX_ATTEMPTS} times while running this "
               "notebook; check it by hand, or grade it again with --force")
        rows = [Row(student, path.name, e, 0, _max_score(e, settings), why) for e in exercises]
        feedback = feedback_markdown(student, path.name, rows, {}, [])
    else:
        book.begin(resolved, sha)
        rows, feedback = grade_submission(path, data, student, exercises, settings)
    return Graded(resolved, sha, signature, student, rows, feedback)


def main(argv: list[str] | None = None, prog: str = "python -m lmcourse grade") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run submitted exercise notebooks in a sandbox, score them "
        "with the course's checks, and write a CSV grade book with feedback per student.")
    parser.add_argument("notebooks", nargs="+", help="the submitted notebooks "
                        "(the student is the folder name: submissions/ada/01_....ipynb)")
    parser.add_argument("--gradebook", required=True, help="CSV file to write")
    parser.add_argument("--solutions", help="folder of solution notebooks; the one with the "
                        "submission's file name is its assignment (default: the course's)")
    defaults = Limits()
    parser.add_argument("--timeout", type=float, default=defaults.cell_seconds,
                        help=f"seconds allowed per cell (default {defaults.cell_seconds:g})")
    parser.add_argument("--notebook-timeout", type=float, default=defaults.notebook_seconds,
                        help="seconds allowed per submission, grading included "
                        f"(default {defaults.notebook_seconds:g})")
    parser.add_argument("--call-timeout", type=float, default=defaults.call_seconds,
                        help="seconds allowed per call of a graded function "
                        f"(default {defaults.call_seconds:g})")
    parser.add_argument("--memory", type=int, default=defaults.memory_mb,
                        help=f"MiB of address space per notebook (default {defaults.memory_mb})")
    parser.add_argument("--sandbox", choices=MODES, default="auto",
                        help="bwrap (bubblewrap), process (no sandbox: see the README), or "
                        "auto: bwrap where it works (default)")
    parser.add_argument("--budget", default="smoke",
                        help="LMCOURSE_BUDGET for the notebooks (default smoke)")
    parser.add_argument("--hidden-seed", type=int, default=HIDDEN_SEED,
                        help="seed of the hidden cases: choose your own to keep them private")
    parser.add_argument("--no-hidden", action="store_true", help="score the visible cases only")
    parser.add_argument("--jobs", type=int, default=1,
                        help="submissions graded at a time (default 1; at most one per core)")
    parser.add_argument("--force", action="store_true",
                        help="grade again the submissions already in the grade book")
    parser.add_argument("--data", help="course data cache to lend the notebooks (read-only "
                        "under bwrap; default: none)")
    args = parser.parse_args(argv)
    try:
        limits = Limits(cell_seconds=args.timeout, notebook_seconds=args.notebook_timeout,
                        call_seconds=args.call_timeout, memory_mb=args.memory)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    mode = choose_mode(args.sandbox)
    if mode == "process":
        print("note: submissions run as plain processes of your user, not in a sandbox "
              "(install bubblewrap for one; see the README)", file=sys.stderr)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        grade(args.notebooks, args.gradebook, solutions=args.solutions, limits=limits,
              sandbox=mode, budget=args.budget,
              hidden_seed=None if args.no_hidden else args.hidden_seed, force=args.force,
              jobs=args.jobs,
              data_dir=args.data, echo=True)
    except KeyboardInterrupt:
        return 130
    except (TypeError, ValueError, SandboxBroken) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.gradebook}")
    return 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main(prog="python -m lmcourse.grading.grade"))
