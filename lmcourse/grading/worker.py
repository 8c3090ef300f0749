"""The process that runs one student's notebook for the batch grader.

Started by ``lmcourse.grading.sandbox`` inside the sandbox, as a script
(``python -I .../worker.py``) so that importing it does not import the
``lmcourse.grading`` package: the exercises' references and the grader's
checks are never loaded into the student's process. Instead, before any
student code runs, ``lmcourse.grading`` is replaced by a small stand-in whose
``check()`` only remembers which function the notebook offers for which
exercise, and the modules holding references and checks refuse to import.

It speaks JSON lines (``lmcourse.grading.wire``) with the grader on the
stdin and stdout it was started with; the notebook's own prints go to
/dev/null. The conversation:

1. the grader sends the notebook's code cells, the cells to skip, and the
   function name to fall back on for each exercise;
2. the worker runs the cells in an IPython shell (so ``%magics`` work),
   reporting ``cell`` before and ``cell_done`` after each one, so the grader
   can time every cell with its own clock;
3. it reports ``ready`` with the exercises it can offer, then answers
   ``call`` and ``grad`` requests, each running the student's function on the
   inputs sent, until ``bye``.

Nothing the student's code does here can add points: the grader computes
every expected output itself and only reads plain values back from this
process. A student's code can of course write to these pipes too; the grader
validates each message and a forged one can at most lose that student's
points.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from pathlib import Path

GRADING_DIR = Path(__file__).resolve().parent
# The only grading modules a notebook's process may import.
ALLOWED = {"lmcourse.grading.wire", "lmcourse.grading.safe_call", "lmcourse.grading.plain",
           "lmcourse.grading.result", "lmcourse.grading.worker"}


class _Refuse(importlib.abc.MetaPathFinder):
    """Refuse every ``lmcourse.grading`` module but the few the worker needs."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith("lmcourse.grading.") and name not in ALLOWED:
            raise ImportError(f"{name} is not available while a notebook is being graded")
        return None


def _stand_in_package() -> types.ModuleType:
    """``lmcourse.grading`` as a notebook being graded sees it."""
    package = types.ModuleType("lmcourse.grading", "lmcourse.grading while grading")
    package.__path__ = [str(GRADING_DIR)]
    package.__spec__ = importlib.machinery.ModuleSpec("lmcourse.grading", None, is_package=True)
    package.__spec__.submodule_search_locations = package.__path__
    package.OFFERED = {}

    def check(exercise_id, answer, *args, **kwargs):
        """Remember ``answer`` for ``exercise_id``; the grader scores it afterwards."""
        if isinstance(exercise_id, str):
            package.OFFERED[exercise_id] = answer
        return _Recorded(exercise_id)

    package.check = check
    package.progress = lambda: {}
    return package


class _Recorded:
    def __init__(self, exercise_id):
        self.exercise_id = exercise_id

    def __repr__(self) -> str:
        return f"recorded for grading: {self.exercise_id!r} (the grader scores it)"


def main() -> None:
    # The protocol keeps the original stdin/stdout; the notebook gets /dev/null.
    inbox = os.fdopen(os.dup(0), "rb")
    outbox = os.fdopen(os.dup(1), "wb")
    log = os.fdopen(os.dup(2), "w")  # the grader's log of this worker: our own errors only
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        _serve(inbox, outbox)
    except BaseException:  # noqa: BLE001 - a failure of the worker itself, for the grader's log
        import traceback

        traceback.print_exc(file=log)
        log.flush()
        os._exit(1)


def _serve(inbox, outbox) -> None:
    import lmcourse  # noqa: F401 - the real package, for lmcourse.runtime, data, models...

    package = _stand_in_package()
    sys.modules["lmcourse.grading"] = package
    lmcourse.grading = package
    sys.meta_path.insert(0, _Refuse())

    from lmcourse.grading import wire
    from lmcourse.grading.safe_call import describe_exception, run_answer

    def send(**message):
        outbox.write(wire.dumps(message))
        outbox.flush()

    def receive() -> dict:
        line = inbox.readline(wire.MAX_MESSAGE_BYTES + 1)
        if not line:
            os._exit(0)  # the grader has gone
        return wire.loads(line)

    hello = receive()
    cells, skip, names = hello["cells"], set(hello["skip"]), hello["names"]

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="NoColor")
    for index, source in enumerate(cells):
        if index in skip:
            continue
        send(event="cell", index=index)
        result = shell.run_cell(source, store_history=True)
        error = result.error_before_exec or result.error_in_exec
        send(event="cell_done", index=index,
             error=describe_exception(error) if error is not None else None)

    def answer_for(exercise_id):
        if exercise_id in package.OFFERED:
            return package.OFFERED[exercise_id]
        name = names.get(exercise_id)
        return shell.user_ns.get(name) if name else None

    offered = {}
    for exercise_id in names:
        fn = answer_for(exercise_id)
        offered[exercise_id] = ("missing" if fn is None else
                                "callable" if callable(fn) else _type_name(fn))
    send(event="ready", offered=offered)

    while True:
        request = receive()
        if request.get("op") == "bye":
            break
        fn = answer_for(request.get("exercise"))
        args, kwargs = wire.decode(request["args"]), wire.decode(request["kwargs"])
        outcome = run_answer(fn, args, kwargs, float(request["time_limit"]),
                             gradients=request.get("op") == "grad",
                             weight=wire.decode(request.get("weight")))
        send(event="outcome", id=request.get("id"), **_message(outcome, wire))
    os._exit(0)


def _message(outcome, wire) -> dict:
    """An ``Outcome`` of ``safe_call.run_answer`` as a message: plain fields only."""
    message = {"kind": outcome.kind, "message": outcome.message, "seconds": outcome.seconds,
               "error_type": outcome.error_type, "error_text": outcome.error_text,
               "location": outcome.location, "raiser": outcome.raiser}
    try:
        message["value"] = wire.encode(outcome.value) if outcome.ok else None
        message["inputs"] = wire.encode(outcome.inputs) if outcome.inputs is not None else None
    except wire.WireError as exc:  # plain() let through a type the wire does not carry
        message.update(kind="exception", value=None, inputs=None, error_type="AnswerError",
                       error_text=str(exc), message=f"returned something the grader cannot "
                       f"read ({exc})")
    return message


def _type_name(value) -> str:
    """``"a numpy.ndarray"``, whatever the student's class does with its attributes."""
    try:
        cls = type(value)
        return f"a {cls.__module__}.{cls.__qualname__}".replace("builtins.", "")
    except BaseException:  # noqa: BLE001 - a metaclass whose attributes raise
        return "an object of a class that cannot be named"


if __name__ == "__main__":
    main()
