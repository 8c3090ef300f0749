"""Run a learner's function so that nothing it does can break the check.

``run_answer(fn, args, kwargs, time_limit)`` always returns an ``Outcome``:
the value made plain (``lmcourse.grading.plain``) and the inputs as the call
left them, or a description of what went wrong (an exception, ``sys.exit()``,
Ctrl-C, ``NotImplementedError``, an output that cannot be read, or running
past the time limit). With ``gradients=True`` it also differentiates the
output, for the gradient check. It never raises because of ``fn``, and
everything it reports about a failure is plain text (``error_type``,
``error_text``, ``location``, ``raiser``) filled in where the failure
happened, so the judging code never touches the learner's objects. The
batch grader runs this function inside the sandboxed process that holds the
student's code and sends the ``Outcome`` back; ``check()`` runs it in the
learner's own kernel.

How the time limit works, in-process so that the Jupyter kernel survives an
endless loop: the function runs in a worker thread (a daemon) while the
calling thread waits for it with a timeout. On time-out the caller asks the
interpreter to raise ``TimeLimitExceeded`` in the worker
(``PyThreadState_SetAsyncExc``, the mechanism behind Ctrl-C), and in any
thread the function started during the call, a few times over half a second;
the interpreter delivers it at the thread's next bytecode boundary, which
stops any pure-Python loop, even ``while True: pass``. The calling thread
itself never receives an asynchronous exception, so a shot can never land in
the checking code. Ctrl-C arrives in the waiting caller as
``KeyboardInterrupt``: it stops the worker the same way and becomes the
"interrupt" outcome.

Limits, stated plainly: a long call into C (``time.sleep``, a huge matrix
multiply, waiting on a lock) cannot be interrupted; nor can a loop that
catches every exception, ``BaseException`` included. After half a second of
trying, such a worker is abandoned: the check reports the time limit and
goes on, while the abandoned thread finishes in the background (it stops at
its next bytecode once the C call returns). Restart the kernel if one keeps
the notebook busy.

None of this is a security boundary. Anything in the learner's own process
can be patched by a determined learner; in-kernel ``check()`` is for honest
self-study. The boundary is the batch grader (``python -m lmcourse grade``),
which runs the student's code in a separate, sandboxed process.
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

import torch

from lmcourse.grading.plain import AnswerError, plain, tensors_in

GRADING_DIR = Path(__file__).resolve().parent

# After a time-out: how many times, and how often, to raise TimeLimitExceeded in the
# answer's threads before giving up on them (a loop stops at the first shot; a shot
# can be lost in a thread that is between two calls into C).
_SHOTS = 20
_SHOT_GAP = 0.025  # seconds


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
    failure in words, with the learner's line of code where we found it, so
    that "your function {message}" reads as a sentence.

    For an exception: ``error_type`` is its class name ("ValueError"),
    ``error_text`` its message, ``location`` where it was raised (the
    learner's line, as ``describe_location`` gives it) and ``raiser`` the
    learner's function that raised it (see ``raising_function``). These are
    plain strings, safe to send between processes; judging uses only them.
    ``exception`` keeps the live exception for local use (it is None when the
    outcome came from another process). ``inputs`` is ``(args, kwargs)`` as
    the call left them, made plain, for noticing inputs changed in place.
    """

    kind: str
    value: Any = None
    message: str = ""
    exception: BaseException | None = None
    seconds: float = 0.0
    error_type: str | None = None
    error_text: str | None = None
    location: str | None = None
    raiser: str | None = None
    inputs: Any = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


# ---------------------------------------------------------------------------
# Calling the function in a worker thread


def _async_raise(thread_id: int | None, exc_type: type[BaseException] | None) -> None:
    """Ask the interpreter to raise ``exc_type`` in another thread (None clears)."""
    if thread_id is None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class _AnswerThread(threading.Thread):
    """The worker thread of one call; its class tells it apart from the answer's own threads."""


class _Call:
    """One call of the learner's code in a worker thread, and what became of it."""

    def __init__(self, work: Callable[[], tuple[Any, Any]]):
        self.work = work
        self.lock = threading.Lock()  # makes "is it still running? then shoot" one step
        self.finished = False  # set under the lock once no more shots may come
        self.done = threading.Event()
        self.outcome: Outcome | None = None
        self.thread = _AnswerThread(target=self._run, name="lmcourse-answer", daemon=True)

    def _run(self) -> None:
        outcome = None
        try:
            outcome = _outcome_of(self.work)
        except BaseException:  # noqa: BLE001 - a shot delivered while describing a failure
            pass  # outcome None: reported as the time limit
        while True:
            try:
                with self.lock:
                    self.finished = True
                    _async_raise(threading.get_ident(), None)  # a shot fired, not yet delivered
                break
            except BaseException:  # noqa: BLE001 - that shot, delivered just now: retry
                continue
        self.outcome = outcome
        self.done.set()


def _outcome_of(work: Callable[[], tuple[Any, Any]]) -> Outcome:
    """Run ``work`` (in the worker) and describe what happened, in plain text."""
    start = time.perf_counter()
    try:
        value, inputs = work()
    except TimeLimitExceeded:
        return Outcome("time limit", seconds=time.perf_counter() - start)
    except AnswerError as exc:  # plain() could not read the output; its message is ours
        text = _text(str, exc)
        return Outcome("exception", message=text, exception=exc, error_type="AnswerError",
                       error_text=text, seconds=time.perf_counter() - start)
    except BaseException as exc:  # noqa: BLE001 - anything the answer raises becomes feedback
        return _failure(exc, time.perf_counter() - start)
    return Outcome("ok", value=value, inputs=inputs, seconds=time.perf_counter() - start)


def _failure(exc: BaseException, seconds: float) -> Outcome:
    """The outcome of an exception, every text read from it safely (its ``__str__``
    may raise, even ``SystemExit``)."""
    fields = dict(exception=exc, seconds=seconds,
                  error_type=_text(lambda: type(exc).__name__),
                  error_text=_text(str, exc)[:2000],
                  location=_safe(describe_location, exc, default=""),
                  raiser=_safe(raising_function, exc))
    if isinstance(exc, NotImplementedError):
        return Outcome("not implemented", message=f"raised {describe_exception(exc)}", **fields)
    if isinstance(exc, SystemExit):
        where = f" ({fields['location']})" if fields["location"] else ""
        return Outcome("exit", message=f"called exit() or sys.exit(){where}; a function "
                                       "should return its result instead", **fields)
    if isinstance(exc, KeyboardInterrupt):
        return Outcome("interrupt", message="was interrupted (Ctrl-C or the notebook's "
                                            "stop button)", **fields)
    return Outcome("exception", message=f"raised {describe_exception(exc)}", **fields)


def _quiet_when_stopped() -> None:
    """Make ``threading.excepthook`` pass over the threads we stop on purpose.

    A thread the answer started ends with the ``TimeLimitExceeded`` we raised in
    it; without this, each would print "Exception in thread ..." under the
    notebook cell. Other exceptions go to the hook as before.
    """
    hook = threading.excepthook
    if getattr(hook, "_lmcourse_quiet", False):
        return

    def excepthook(args):
        if not (isinstance(args.exc_type, type) and issubclass(args.exc_type, TimeLimitExceeded)):
            hook(args)

    excepthook._lmcourse_quiet = True
    threading.excepthook = excepthook


def _stop(call: _Call, before: set[int | None]) -> None:
    """Raise TimeLimitExceeded in the worker and in the threads the answer started
    (those alive now but not before the call), until they end or we give up."""
    _quiet_when_stopped()
    strays: dict[int, threading.Thread] = {}
    for _ in range(_SHOTS):
        with call.lock:
            if not call.finished:
                _async_raise(call.thread.ident, TimeLimitExceeded)
        for thread in threading.enumerate():
            if (thread.ident not in before and not isinstance(thread, _AnswerThread)
                    and not isinstance(thread, threading._DummyThread) and thread.is_alive()):
                strays[thread.ident] = thread
                _async_raise(thread.ident, TimeLimitExceeded)
        if call.done.wait(_SHOT_GAP):
            if not any(t.is_alive() for t in strays.values()):
                return
            time.sleep(_SHOT_GAP)
    # A thread still alive now is blocked in C, an idle pool thread say: take back the
    # shot, so that it does not fire whenever the thread next runs. (The worker keeps
    # its shot: if it is stuck in a C call, that stops it as soon as the call returns.)
    for thread in strays.values():
        if thread.is_alive():
            _async_raise(thread.ident, None)


def _run_in_worker(work: Callable[[], tuple[Any, Any]], time_limit: float) -> Outcome:
    before = {t.ident for t in threading.enumerate()}
    call = _Call(work)
    start = time.perf_counter()
    interrupted = finished = False
    try:
        call.thread.start()
        finished = call.done.wait(time_limit)
    except KeyboardInterrupt:  # Ctrl-C while we wait: stop the answer, report it
        interrupted = True
    if not finished:
        try:
            _stop(call, before)
        except KeyboardInterrupt:  # a second Ctrl-C: stop trying at once
            interrupted = True
    seconds = time.perf_counter() - start
    if interrupted:
        return Outcome("interrupt", seconds=seconds,
                       message="was interrupted (Ctrl-C or the notebook's stop button)")
    if not finished:
        if not call.done.is_set():
            return Outcome("time limit", seconds=seconds, message=(
                f"took longer than {time_limit:g} s and could not be stopped (a long call "
                "into C code, or a loop that catches every exception?); it may still be "
                "running in the background: restart the kernel if the notebook stays slow"))
        return Outcome("time limit", seconds=seconds,
                       message=f"took longer than {time_limit:g} s and was stopped")
    outcome = call.outcome
    if outcome is None or outcome.kind == "time limit":  # cannot happen without a shot
        return Outcome("time limit", seconds=seconds,
                       message=f"took longer than {time_limit:g} s and was stopped")
    if outcome.seconds > time_limit:
        return Outcome("time limit", seconds=outcome.seconds,
                       message=f"took {outcome.seconds:.1f} s, more than the "
                               f"{time_limit:g} s allowed")
    return outcome


def _gradients(out: Any, leaves: list[torch.Tensor], weight: torch.Tensor | None):
    """Gradients of ``out`` (times ``weight``, summed) with respect to ``leaves``,
    or None if ``out`` is not a tensor connected to autograd."""
    if not issubclass(type(out), torch.Tensor):
        return None
    with torch._C.DisableTorchFunction():  # differentiate the values, not a subclass's story
        out = torch.Tensor.as_subclass(out, torch.Tensor)
    if not out.requires_grad:
        return None
    loss = out if weight is None else (out * weight).sum()
    return torch.autograd.grad(loss, leaves, allow_unused=True)


def run_answer(fn: Callable, args: tuple, kwargs: dict, time_limit: float, *,
               gradients: bool = False, weight: torch.Tensor | None = None) -> Outcome:
    """Call the learner's ``fn(*args, **kwargs)`` with a time limit; report, never raise.

    ``args`` and ``kwargs`` are the call's own copies: the function may change
    them, and ``Outcome.inputs`` says how it left them (plain). The value is
    ``plain(output)``; an output that cannot be made plain is the "exception"
    outcome with ``error_type`` "AnswerError".

    With ``gradients=True`` the floating-point tensors of ``(args, kwargs)``
    (in ``tensors_in`` order) are made to require gradients, and the value is
    a tuple of plain gradients (None where unused) of ``out`` if ``weight``
    is None, else of ``(out * weight).sum()``; or None if the output is not a
    tensor connected to autograd. Forward and backward both run in the worker
    thread under ``torch.enable_grad()`` (grad mode is per thread).
    """
    grad_mode = torch.is_grad_enabled()

    def work():
        if not gradients:
            with torch.set_grad_enabled(grad_mode):
                out = fn(*args, **kwargs)
            return plain(out), _inputs_after(args, kwargs)
        leaves = [t.requires_grad_() for t in tensors_in((args, kwargs)) if t.is_floating_point()]
        with torch.enable_grad():
            grads = _gradients(fn(*args, **kwargs), leaves, weight)
        return (None if grads is None else plain(tuple(grads))), _inputs_after(args, kwargs)

    return _run_in_worker(work, time_limit)


def _inputs_after(args: tuple, kwargs: dict) -> Any:
    try:
        return plain((args, kwargs))
    except AnswerError as exc:
        raise AnswerError(f"changed its inputs in place into something check() cannot read "
                          f"({exc})") from None


# ---------------------------------------------------------------------------
# Describing an exception in one line


def _safe(fn: Callable, *args: Any, default: Any = None) -> Any:
    """``fn(*args)``, or ``default`` if it raises anything at all (a learner's
    ``__str__`` may raise, even ``SystemExit``)."""
    try:
        return fn(*args)
    except TimeLimitExceeded:
        raise  # a __str__ that loops forever: let the time limit report it
    except BaseException:  # noqa: BLE001 - describing a failure must not fail
        return default


def _text(fn: Callable, *args: Any) -> str:
    """``fn(*args)`` as text, whatever the learner's objects do when printed."""
    return _safe(lambda: str(fn(*args)),
                 default="(a message that cannot be printed: its __str__ raised an exception)")


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(str(Path(d).resolve()) for d in dirs)


_LIBRARY_DIRS = _library_dirs()


def _is_learner_frame(filename: str) -> bool:
    """True for code the learner wrote: not ours, not the standard library or torch.

    A notebook cell is a file like ``/tmp/ipykernel_123/456.py`` (ipykernel) or
    the pseudo-file ``<ipython-input-3-...>`` (older IPython). Other
    pseudo-files, ``<frozen os>`` or ``<frozen _sitebuiltins>`` (where
    ``exit()`` raises) and ``<string>``, are the interpreter's.
    """
    name = str(filename)
    if name.startswith("<"):
        return name.startswith("<ipython-input-")
    try:
        path = str(Path(name).resolve())
    except (OSError, ValueError):
        return True
    if path.startswith(str(GRADING_DIR)):
        return False
    return not path.startswith(_LIBRARY_DIRS)


def raising_function(exc: BaseException) -> str | None:
    """Name of the learner's function in which ``exc`` was raised, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_frame(f.filename)]
    return str(frames[-1].name) if frames else None


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
    """``"ValueError: bad shape (line 4 in softmax: `...`)"``, kept short; never raises
    because of the exception (its ``__str__`` may raise)."""
    text = _text(str, exc).strip().splitlines()
    message = text[0] if text else ""
    if len(message) > max_chars:
        message = message[: max_chars - 3] + "..."
    name = _text(lambda: type(exc).__name__)
    head = f"{name}: {message}" if message else name
    where = _safe(describe_location, exc, default="")
    return f"{head} ({where})" if where else head
