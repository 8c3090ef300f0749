"""Run a learner's function so that nothing it does can break the check.

``call_safely(fn, args, kwargs, time_limit)`` always returns an ``Outcome``:
the value, or a description of what went wrong (an exception, ``sys.exit()``,
Ctrl-C, ``NotImplementedError``, or running past the time limit). It never
raises because of ``fn``.

The time limit works in-process, so the Jupyter kernel survives an endless
loop: a watchdog thread waits ``time_limit`` seconds and then asks the
interpreter to raise ``TimeLimitExceeded`` in the calling thread
(``PyThreadState_SetAsyncExc``, the same mechanism as Ctrl-C). The interpreter
delivers it at its next bytecode boundary, which interrupts any pure-Python
loop, even the one-line ``while True: pass``. We use this rather than a
``sys.settrace`` deadline because the tracer sees no line event in a loop that
jumps back to its own line (Python 3.11), and because it leaves debuggers and
coverage tools untouched.

Limits, stated plainly: a single long-running C call (a huge matrix multiply,
``time.sleep``) cannot be interrupted, so it is stopped when it returns and
reported as too slow; and code that swallows every exception with a bare
``except:`` inside an endless loop can swallow this one too.
"""
from __future__ import annotations

import ctypes
import sysconfig
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

GRADING_DIR = Path(__file__).resolve().parent


class TimeLimitExceeded(BaseException):
    """Raised inside the learner's code when it runs past the time limit.

    A ``BaseException`` so that the usual ``except Exception:`` in learner
    code does not swallow it.
    """


@dataclass
class Outcome:
    """What happened when we called the learner's function.

    ``kind`` is one of: "ok", "not implemented", "exception", "time limit",
    "exit" (``sys.exit()``), "interrupt" (Ctrl-C). ``message`` describes a
    failure in words, with the learner's line of code where we found it.
    """

    kind: str
    value: Any = None
    message: str = ""
    exception: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def _async_raise(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Ask the interpreter to raise ``exc_type`` in another thread (None clears)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class _Watchdog:
    """Raise ``TimeLimitExceeded`` in the starting thread once, after ``seconds``."""

    def __init__(self, seconds: float):
        self._target = threading.get_ident()
        self._done = threading.Event()
        self._lock = threading.Lock()  # makes "check done, then fire" one step
        self._fired = False
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self._thread.start()

    def _run(self, seconds: float) -> None:
        if self._done.wait(seconds):
            return
        with self._lock:
            if not self._done.is_set():
                _async_raise(self._target, TimeLimitExceeded)
                self._fired = True

    def stop(self) -> None:
        """Stop the watchdog; safe to call twice. Clears a shot not yet delivered."""
        with self._lock:
            self._done.set()
        self._thread.join()
        if self._fired:
            _async_raise(self._target, None)


def call_safely(
    fn: Callable, args: tuple = (), kwargs: dict | None = None, time_limit: float = 5.0
) -> Outcome:
    """Call ``fn(*args, **kwargs)`` with a time limit; report, never raise."""
    kwargs = kwargs or {}
    start = time.perf_counter()
    watchdog = _Watchdog(time_limit)
    try:
        try:
            value = fn(*args, **kwargs)
        finally:
            watchdog.stop()
    except TimeLimitExceeded:
        # The shot can land just after fn returned, inside stop(): stop again
        # (idempotent), so no second shot can be pending when we leave.
        watchdog.stop()
        return Outcome("time limit", seconds=time.perf_counter() - start,
                       message=f"took longer than {time_limit:g} s and was stopped")
    except NotImplementedError as exc:
        return Outcome("not implemented", exception=exc,
                       seconds=time.perf_counter() - start,
                       message=f"raised {describe_exception(exc)}")
    except SystemExit as exc:
        where = describe_location(exc)
        where = f" ({where})" if where else ""
        return Outcome("exit", exception=exc, seconds=time.perf_counter() - start,
                       message=f"called exit() or sys.exit(){where}; "
                               "a function should return its result instead")
    except KeyboardInterrupt as exc:
        return Outcome("interrupt", exception=exc, seconds=time.perf_counter() - start,
                       message="was interrupted (Ctrl-C or the notebook's stop button)")
    except BaseException as exc:  # noqa: BLE001 - anything the answer raises becomes feedback
        return Outcome("exception", exception=exc, seconds=time.perf_counter() - start,
                       message=f"raised {describe_exception(exc)}")
    seconds = time.perf_counter() - start
    if seconds > time_limit:  # a long C call that could not be interrupted
        return Outcome("time limit", seconds=seconds,
                       message=f"took {seconds:.1f} s, more than the {time_limit:g} s allowed")
    return Outcome("ok", value=value, seconds=seconds)


# ---------------------------------------------------------------------------
# Describing an exception in one line


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(str(Path(d).resolve()) for d in dirs)


_LIBRARY_DIRS = _library_dirs()


def _is_learner_frame(filename: str) -> bool:
    """True for code the learner wrote: not ours, not the standard library or torch."""
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return True
    if path.startswith(str(GRADING_DIR)):
        return False
    return not path.startswith(_LIBRARY_DIRS)


def raising_function(exc: BaseException) -> str | None:
    """Name of the learner's function in which ``exc`` was raised, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_frame(f.filename)]
    return frames[-1].name if frames else None


def describe_location(exc: BaseException) -> str:
    """Where ``exc`` was raised, preferring the learner's own line of code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not str(f.filename).startswith(str(GRADING_DIR))]
    if not frames:  # raised by a built-in function passed directly as the answer
        return ""
    learner = [f for f in frames if _is_learner_frame(f.filename)]
    frame = (learner or frames)[-1]
    where = f"line {frame.lineno} in {frame.name}"
    if frame.line:
        where += f": `{frame.line.strip()}`"
    return where


def describe_exception(exc: BaseException, max_chars: int = 300) -> str:
    """``"ValueError: bad shape (line 4 in softmax: `...`)"``, kept short."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if len(message) > max_chars:
        message = message[: max_chars - 3] + "..."
    name = type(exc).__name__
    head = f"{name}: {message}" if message else name
    where = describe_location(exc)
    return f"{head} ({where})" if where else head
