"""Checks that know the common mistakes.

An exercise is declared once, as data:

- a reference implementation,
- test cases (random and edge-case inputs, built from a seeded generator),
- known wrong variants (``Mistake``): wrong implementations paired with the
  message that explains that mistake.

``check(exercise_id, answer)`` runs the learner's function on every case and
compares it with the reference. When an answer is wrong on a case, its output
is compared with each wrong variant's output on the same inputs: if one
matches, the feedback names that mistake and gives its hint. Otherwise the
feedback says what differs (type, shape, dtype, NaN/inf, values) and what
was expected. Feedback never contains the solution.

Calling the answer is kept apart from judging it. An ``Answer`` calls the
learner's function on given inputs and reports an ``Outcome`` made of plain
values and strings (``safe_call.run_answer``); ``evaluate(exercise, answer,
time_limit)`` builds the cases, computes the expected outputs and judges the
outcomes. ``check()`` uses a ``LocalAnswer``, which runs the function in this
process; the batch grader passes its own ``Answer``, which runs it in a
sandboxed process, to the same ``evaluate``. ``check()`` never raises because
of the answer.

What in-kernel ``check()`` guards against, and what it does not. It is for
honest self-study, and in-kernel cheating of one's own self-study is not a
security boundary: anything in the learner's process can be patched by a
determined learner. It does make the easy shortcuts fail rather than pass:
a reference called while an answer runs raises inside the answer (the
references are wrapped when registered, and the exercise modules' names
rebound to the wrapped functions); the judging code looks names up in a
private copy of this module's namespace, made at import time, so reassigning
``checks._same_values`` (or ``checks.torch``) later changes nothing; and
every output is made plain before it is judged, so a tensor subclass cannot
answer the comparisons itself. The boundary is the batch grader
(``python -m lmcourse grade``), which runs the student's code in a separate,
sandboxed process and judges it in its own.
"""
from __future__ import annotations

import numbers
import os
import re
import sys
import threading
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch

from lmcourse.grading import learner_progress
from lmcourse.grading.plain import tensors_in
from lmcourse.grading.result import FAILED, NOT_ATTEMPTED, PASSED, CheckResult
from lmcourse.grading.safe_call import Outcome, run_answer

# The comparisons, bound once: a cell that later reassigns torch.allclose does not
# reach the checks (see the module docstring for what this is and is not).
_allclose, _equal, _isfinite, _isnan = torch.allclose, torch.equal, torch.isfinite, torch.isnan

DEFAULT_TIME_LIMIT = 5.0  # seconds per call of the learner's function
SEED = 1234


def _default_time_limit() -> float:
    """Seconds allowed per call: ``$LMCOURSE_CHECK_TIME_LIMIT``, else 5."""
    value = os.environ.get("LMCOURSE_CHECK_TIME_LIMIT")
    try:
        return float(value) if value else DEFAULT_TIME_LIMIT
    except ValueError:
        return DEFAULT_TIME_LIMIT


@dataclass
class Case:
    """One call of the function under test: ``fn(*args, **kwargs)``.

    ``name`` is shown to the learner, so it says what is special about the
    case ("large logits (±1000)"). With ``grad=True`` the case also compares
    gradients with respect to the floating-point inputs.
    """

    name: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    grad: bool = False


@dataclass
class Mistake:
    """A classic wrong answer: an implementation of it, and what to tell the learner.

    ``wrong`` takes the same arguments as the exercise's function. The
    feedback reads "Looks like {what}. Hint: {hint}".
    """

    what: str
    hint: str
    wrong: Callable

    def message(self) -> str:
        return f"Looks like {self.what}. Hint: {self.hint}"


@dataclass
class Exercise:
    """Everything ``check()`` needs to grade one exercise.

    ``cases(gen)`` builds the test cases from a seeded ``torch.Generator``.
    ``unstable`` is the message for NaN/inf outputs where the reference is
    finite. ``diagnose(got, case)`` may add a property-based hint when no known
    mistake matches ("your probabilities do not sum to 1"). ``error_hints``
    maps a fragment of an exception message to a hint. ``output_names`` names
    the items of a tuple or list result ("h_next", "c_next") in feedback.
    ``inplace_message`` replaces the default feedback for an answer that
    changes its inputs in place.
    """

    id: str
    title: str
    reference: Callable
    cases: Callable[[torch.Generator], list[Case]]
    mistakes: Sequence[Mistake] = ()
    unstable: str = ""
    diagnose: Callable[[Any, Case], str | None] | None = None
    error_hints: dict[str, str] = field(default_factory=dict)
    passed_message: str = ""
    output_names: tuple[str, ...] = ()
    inplace_message: str = ""

    def build_cases(self) -> list[Case]:
        gen = torch.Generator().manual_seed(SEED)
        return self.cases(gen)

    @property
    def max_score(self) -> int:
        return len(self.build_cases())


REGISTRY: dict[str, Exercise] = {}


class _Guard:
    """Who may call a reference, or ``check()``, while ``check()`` grades an answer here.

    While a check of a ``LocalAnswer`` runs, only the thread running it (the
    judge) may: the learner's function runs in a worker thread, and neither it
    nor a thread it starts is a judge. A reference called from there raises
    inside the answer, so the answer fails and says why.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._checks = 0  # local checks in progress, in any thread
        self._local = threading.local()  # .depth: how many checks this thread is judging

    def inside_answer(self) -> bool:
        """True in code that runs while a local check is in progress, outside its judge."""
        return self._checks > 0 and getattr(self._local, "depth", 0) == 0

    def enter(self) -> None:
        with self._lock:
            self._checks += 1
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def leave(self) -> None:
        self._local.depth -= 1
        with self._lock:
            self._checks -= 1


_GUARD = _Guard()
_REENTRY = ("check() was called from inside the answer being checked (or while another "
            "check() is running); call check() only from a notebook cell")


def _guarded_reference(reference: Callable, exercise_id: str) -> Callable:
    """``reference``, refusing to run inside an answer that ``check()`` is grading."""
    def guarded(*args, **kwargs):
        if _GUARD.inside_answer():
            raise RuntimeError(
                f"your function called the reference solution of {exercise_id!r} (through "
                "get_exercise(...).reference or lmcourse's own function): check() grades "
                "your own code, so write the computation yourself")
        return reference(*args, **kwargs)

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(guarded, name, getattr(reference, name, None))
    guarded._lmcourse_reference = True
    return guarded


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the registry, its reference wrapped so that an answer cannot call it.

    The module that registers the exercise, and the module that defines the
    reference, get the wrapped function under every name that held the
    original, so that importing the function does not skip the guard either.
    """
    if exercise.id in REGISTRY:
        raise ValueError(f"exercise {exercise.id!r} is registered twice")
    raw = exercise.reference
    if not getattr(raw, "_lmcourse_reference", False):
        exercise.reference = _guarded_reference(raw, exercise.id)
        home = sys.modules.get(getattr(raw, "__module__", None) or "")
        for namespace in (sys._getframe(1).f_globals, getattr(home, "__dict__", {})):
            for name, value in list(namespace.items()):
                if value is raw:
                    namespace[name] = exercise.reference
    REGISTRY[exercise.id] = exercise
    return exercise


def known_exercises() -> list[str]:
    return sorted(REGISTRY)


def get_exercise(exercise_id: str) -> Exercise:
    if not isinstance(exercise_id, str) or exercise_id not in REGISTRY:
        known = ", ".join(repr(k) for k in known_exercises())
        raise ValueError(f"unknown exercise {exercise_id!r}; the known exercises are: {known}")
    return REGISTRY[exercise_id]


# ---------------------------------------------------------------------------
# Comparing an answer with the reference


def _clone_inputs(value: Any) -> Any:
    """A deep copy of the tensors in ``value``, so each call gets fresh inputs."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, torch.Generator):
        # A seeded generator is an input too: every call must draw the same numbers.
        copy = torch.Generator(device=value.device)
        copy.set_state(value.get_state())
        return copy
    if isinstance(value, (tuple, list)):
        return type(value)(_clone_inputs(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone_inputs(v) for k, v in value.items()}
    return value


def _unchanged(after: Any, before: Any) -> bool:
    """True if the inputs a call got are as they were: tensors equal, and lists,
    tuples and dicts (a list of token ids, say) with the same items.

    ``after`` is plain (``Outcome.inputs``), so comparing it runs none of the
    answer's code.
    """
    if isinstance(before, torch.Tensor):
        return (isinstance(after, torch.Tensor) and after.dtype == before.dtype
                and after.shape == before.shape and _equal(after, before))
    if isinstance(before, torch.Generator):
        return True  # each call gets its own copy (_clone_inputs); drawing from it is its use
    if isinstance(before, (tuple, list)):
        return (isinstance(after, (tuple, list)) and len(after) == len(before)
                and all(_unchanged(a, b) for a, b in zip(after, before)))
    if isinstance(before, dict):
        return (isinstance(after, dict) and after.keys() == before.keys()
                and all(_unchanged(after[k], before[k]) for k in before))
    try:
        return after is before or bool(after == before)
    except Exception:  # an object that cannot be compared: assume unchanged
        return True


def _changed_input(after: Any, case: Case) -> str | None:
    """What kind of input the call changed in place ("tensor", "list"...), or None.

    ``after`` is ``Outcome.inputs``; None means the answer did not report its
    inputs, and they are not checked.
    """
    if after is None:
        return None
    if not (isinstance(after, (tuple, list)) and len(after) == 2
            and isinstance(after[0], (tuple, list))
            and isinstance(after[1], dict) and len(after[0]) == len(case.args)):
        return "argument"
    pairs = list(zip(after[0], case.args))
    pairs += [(after[1].get(k), v) for k, v in case.kwargs.items()]
    for got, given in pairs:
        if not _unchanged(got, given):
            tensors = isinstance(given, (tuple, list)) and given and all(
                isinstance(g, torch.Tensor) for g in given)  # clip_grad_norm's list of grads
            if isinstance(given, torch.Tensor) or tensors:
                return "tensor"
            return {list: "list", dict: "dict", tuple: "tuple"}.get(type(given), "argument")
    return None


_tensors = tensors_in


def _input_dtype(case: Case) -> torch.dtype:
    floats = [t.dtype for t in _tensors((case.args, case.kwargs)) if t.is_floating_point()]
    return floats[0] if floats else torch.float32


def _tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing results computed in ``dtype``.

    Loose enough for any correct formula (loop or vectorised, a different
    summation order), tight enough to catch a wrong one.
    """
    if dtype == torch.float64:
        return 1e-6, 1e-9
    return 1e-4, 1e-6


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_double(value: Any) -> torch.Tensor | None:
    """``value`` as a float64 tensor for comparing, or None if it is not numeric."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            return None
        return value.detach().to("cpu", torch.float64)
    if _is_number(value):
        try:
            return torch.tensor(float(value), dtype=torch.float64)
        except OverflowError:  # an int like 10**400: as a float, it is infinite
            return torch.tensor(float("inf") if value > 0 else float("-inf"), dtype=torch.float64)
    return None


def _shape(value: Any) -> tuple[int, ...] | None:
    """The shape of a tensor or number (a number is 0-d), None for anything else."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return () if _is_number(value) else None


def _same_values(got: Any, expected: Any, dtype: torch.dtype, slack: float = 1.0) -> bool:
    """Same shape and close values (NaN matches NaN, inf matches inf).

    ``slack`` widens the _tolerances: recognising a mistake can afford to be
    looser than grading, since a learner's version of a wrong formula may
    round differently from ours.
    """
    if isinstance(expected, (tuple, list)):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(_same_values(g, e, dtype, slack) for g, e in zip(got, expected)))
    # Shapes first: a wrong output may be large, and is never converted if it cannot match.
    if _shape(got) is None or _shape(got) != _shape(expected):
        return False
    a, b = _as_double(got), _as_double(expected)
    if a is None or b is None:
        return False
    rtol, atol = _tolerances(dtype)
    return _allclose(a, b, rtol=rtol * slack, atol=atol * slack, equal_nan=True)


def _type_name(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if value is None:
        return "None (is a return statement missing?)"
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")


def _item_name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"item {index}"


def _form_problem(got: Any, expected: Any, names: Sequence[str] = ()) -> str | None:
    """What is wrong with the *form* of ``got`` (type, shape, dtype), if anything.

    A tuple or list result is checked item by item; ``names`` names the items.
    """
    if isinstance(expected, (tuple, list)):
        kind = "tuple" if isinstance(expected, tuple) else "list"
        items = "tensors" if all(isinstance(e, torch.Tensor) for e in expected) else "items"
        what = f"a {kind} of {len(expected)} {items}"
        if names:
            what += f" ({', '.join(names)})"
        if not isinstance(got, (tuple, list)):
            return f"expected {what}, got {_type_name(got)}"
        if len(got) != len(expected):
            return f"expected {what}, got a {type(got).__name__} of {len(got)} items"
        for index, (g, e) in enumerate(zip(got, expected)):
            problem = _form_problem(g, e)
            if problem is not None:
                return f"{_item_name(names, index)}: {problem}"
        return None
    if isinstance(expected, torch.Tensor):
        shape = tuple(expected.shape)
        if not isinstance(got, torch.Tensor):
            if expected.dim() == 0 and _is_number(got):
                return ("you returned a Python number, but a 0-d torch.Tensor was expected: "
                        "converting to a number cuts the result off from autograd, so "
                        "backward() could not train through it")
            return f"expected a torch.Tensor of shape {shape}, got {_type_name(got)}"
        if tuple(got.shape) != shape:
            return f"expected shape {shape}, got shape {tuple(got.shape)}"
        if got.dtype != expected.dtype:
            return (f"expected dtype {expected.dtype} (the dtype of the input), got "
                    f"{got.dtype}: keep the input's dtype (new tensors default to float32)")
        return None
    # A number is expected: a Python int or float, or (accepted too) a 0-d tensor.
    if _is_number(got):
        return None
    if isinstance(got, torch.Tensor) and got.dim() == 0 and got.is_floating_point():
        return None
    kind = "int" if isinstance(expected, numbers.Integral) else "float"
    return f"expected a Python {kind}, got {_type_name(got)}"


def _blows_up(got: Any, expected: Any) -> bool:
    """True where ``got`` has NaN/inf and ``expected`` is finite (same form assumed)."""
    if isinstance(expected, (tuple, list)):
        return any(_blows_up(g, e) for g, e in zip(got, expected))
    a, b = _as_double(got), _as_double(expected)
    return bool((~_isfinite(a) & _isfinite(b)).any())


def _value_problem(got: Any, expected: Any, dtype: torch.dtype,
                  names: Sequence[str] = ()) -> str | None:
    """How the values of ``got`` differ from ``expected`` (same form assumed)."""
    if isinstance(expected, (tuple, list)):
        for index, (g, e) in enumerate(zip(got, expected)):
            problem = _value_problem(g, e, dtype)
            if problem is not None:
                return f"{_item_name(names, index)}: {problem}"
        return None
    a, b = _as_double(got), _as_double(expected)
    if (~_isfinite(a) & _isfinite(b)).any():
        bad = "NaN" if _isnan(a).any() else "inf"
        return f"your result contains {bad} where the correct result is finite"
    rtol, atol = _tolerances(dtype)
    if _allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
        return None
    if a.dim() == 0:
        return f"expected {b.item():.6g}, got {a.item():.6g}"
    err = (a - b).abs()
    worst = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
    return (f"wrong values: the largest difference is {err.max().item():.3g} at index "
            f"{worst} (expected {b[worst].item():.6g}, got {a[worst].item():.6g})")


# ---------------------------------------------------------------------------
# The answer under test


class Answer(Protocol):
    """The learner's function, as ``evaluate`` sees it: something that can call it.

    Both methods get the call's own copies of the inputs and return an
    ``Outcome`` of plain values (``lmcourse.grading.plain``) and strings; they
    never raise because of the learner's code. ``LocalAnswer`` runs the
    function in this process; the batch grader's runs it in a sandbox.
    """

    name: str | None  # the learner function's __name__, for messages

    def call(self, args: tuple, kwargs: dict, time_limit: float) -> Outcome:
        """``value``: ``plain(fn(*args, **kwargs))``; ``inputs``: ``(args, kwargs)``
        as the call left them, plain, for noticing inputs changed in place."""
        ...

    def gradients(self, args: tuple, kwargs: dict, weight: torch.Tensor | None,
                  time_limit: float) -> Outcome:
        """``value``: None if the output is not a tensor that requires grad, else a
        tuple of plain gradients (None where unused) with respect to the
        floating-point tensors of ``(args, kwargs)``, in ``tensors_in`` order, of
        ``out`` if ``weight`` is None, else of ``(out * weight).sum()``."""
        ...


def _name_of(fn: Any) -> str | None:
    try:
        name = getattr(fn, "__name__", None)
    except BaseException:  # noqa: BLE001 - an object whose attributes raise
        return None
    return name if type(name) is str else None


class LocalAnswer:
    """An ``Answer`` for a function in this process, called in a worker thread
    with a time limit (``safe_call.run_answer``)."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.name = _name_of(fn)

    def call(self, args: tuple, kwargs: dict, time_limit: float) -> Outcome:
        return run_answer(self.fn, args, kwargs, time_limit)

    def gradients(self, args: tuple, kwargs: dict, weight: torch.Tensor | None,
                  time_limit: float) -> Outcome:
        return run_answer(self.fn, args, kwargs, time_limit, gradients=True, weight=weight)


# ---------------------------------------------------------------------------
# Running one exercise


@dataclass
class _CaseResult:
    passed: bool
    message: str = ""
    outcome: Outcome | None = None  # set when the learner's call failed
    value: Any = None  # what the learner's function returned, when it passed
    expected: Any = None  # what the reference returned, when it passed
    mistakes: tuple[int, ...] = ()  # the declared mistakes the wrong output matches

    @property
    def key(self) -> str:
        """Failures with the same key are reported once, naming all their cases.

        An exception raised at the same place counts as one mistake even when
        its message quotes each case's sizes.
        """
        outcome = self.outcome
        if outcome is not None and outcome.error_type and outcome.error_type != "AnswerError":
            return f"{outcome.error_type} at {outcome.location or ''}"
        # "expected shape (4,), got (2,)" and "... (3,), got (1,)" are one mistake.
        return re.sub(r"[-+.\d]+", "#", self.message)


def _backward(out: Any, inputs: list[torch.Tensor], weight: torch.Tensor | None):
    """Gradients of a fixed random projection of ``out`` with respect to ``inputs``."""
    loss = out if weight is None else (out * weight).sum()
    return torch.autograd.grad(loss, inputs, allow_unused=True)


def _with_grad(case: Case) -> tuple[tuple, dict, list[torch.Tensor]]:
    args, kwargs = _clone_inputs(case.args), _clone_inputs(case.kwargs)
    leaves = [t.requires_grad_() for t in _tensors((args, kwargs)) if t.is_floating_point()]
    return args, kwargs, leaves


_INPLACE_HINTS = {
    "tensor": ("Hint: in-place operations (x -= ..., x.exp_(), x[...] = ...) on the input "
               "modify it; compute into new tensors"),
    "list": ("Hint: list methods such as .clear(), .append(), .pop(), .sort() and item "
             "assignment (a[i] = ...) change the caller's list; build a new list, or "
             "work on a copy (list(a))"),
    "dict": ("Hint: assigning, deleting or .update()-ing keys changes the caller's dict; "
             "work on a copy (dict(d))"),
}


def _inplace_message(kind: str) -> str:
    hint = _INPLACE_HINTS.get(kind, "Hint: work on a copy of the input and leave it as it was")
    return (f"your function changed its input {kind} in place, so the caller's data "
            f"would be corrupted. {hint}")


class _Runner:
    def __init__(self, exercise: Exercise, answer: Answer, time_limit: float):
        self.ex = exercise
        self.answer = answer
        self.time_limit = time_limit

    def run_case(self, case: Case) -> _CaseResult:
        expected = self.ex.reference(*_clone_inputs(case.args), **_clone_inputs(case.kwargs))
        outcome = self.answer.call(_clone_inputs(case.args), _clone_inputs(case.kwargs),
                                   self.time_limit)
        if not outcome.ok:
            return _CaseResult(False, self._failure_message(outcome), outcome)
        changed = _changed_input(outcome.inputs, case)
        if changed:
            return _CaseResult(False, self.ex.inplace_message or _inplace_message(changed))
        got = outcome.value
        dtype = _input_dtype(case)
        problem = _form_problem(got, expected, self.ex.output_names)
        if problem is not None:
            return self._explain(case, got, expected, problem, form=True)
        problem = _value_problem(got, expected, dtype, self.ex.output_names)
        if problem is not None:
            return self._explain(case, got, expected, problem, form=False)
        if case.grad:
            return self._check_gradients(case, expected)
        return _CaseResult(True, value=got, expected=expected)

    def _explain(self, case: Case, got: Any, expected: Any, problem: str, form: bool) -> _CaseResult:
        """A failed case that names the mistake if the output matches a known wrong variant.

        Where several variants match (a small case can make two mistakes look
        alike), the first is named here and ``_consistent_mistakes`` may pick
        another. Otherwise say what is wrong (``problem``), adding the exercise's
        hints for NaN/inf and for wrong values (not for a wrong type, shape or dtype).
        """
        dtype = _input_dtype(case)
        matched = []
        for index, mistake in enumerate(self.ex.mistakes):
            try:
                wrong = mistake.wrong(*_clone_inputs(case.args), **_clone_inputs(case.kwargs))
            except Exception:  # a variant may not apply to this case's shapes
                continue
            if _same_values(wrong, expected, dtype):
                continue  # this case cannot tell the variant from the right answer
            if _same_values(got, wrong, dtype, slack=10.0):
                matched.append(index)
        if matched:
            return _CaseResult(False, self.ex.mistakes[matched[0]].message(), mistakes=tuple(matched))
        if form:
            return _CaseResult(False, problem)
        if self.ex.unstable and _blows_up(got, expected):
            return _CaseResult(False, f"{problem}. {self.ex.unstable}")
        if self.ex.diagnose is not None:
            try:
                extra = self.ex.diagnose(got, case)
            except Exception:
                extra = None
            if extra:
                return _CaseResult(False, f"{problem}. {extra}")
        return _CaseResult(False, problem)

    def _check_gradients(self, case: Case, expected: Any) -> _CaseResult:
        weight = None
        if isinstance(expected, torch.Tensor) and expected.dim() > 0:
            gen = torch.Generator().manual_seed(SEED + 1)
            weight = torch.randn(expected.shape, generator=gen, dtype=expected.dtype)
        args, kwargs, leaves = _with_grad(case)
        with torch.enable_grad():
            ref_grads = _backward(self.ex.reference(*args, **kwargs), leaves, weight)

        outcome = self.answer.gradients(_clone_inputs(case.args), _clone_inputs(case.kwargs),
                                        weight, self.time_limit)
        if not outcome.ok:
            return _CaseResult(False, self._failure_message(outcome), outcome)
        if outcome.value is None:
            return _CaseResult(False, (
                "your result is not connected to autograd, so no gradient can flow "
                "back to the inputs. Hint: build it from torch operations on the input; "
                ".item(), .tolist(), .numpy(), torch.tensor(...) of computed values, "
                "or torch.no_grad() all cut the graph"))
        dtype = _input_dtype(case)
        grads = outcome.value
        right = isinstance(grads, tuple) and len(grads) == len(ref_grads)
        for got, ref in zip(grads if right else (), ref_grads):
            if got is not None and not isinstance(got, torch.Tensor):
                right = False
                break
            ref = torch.zeros_like(got) if ref is None and got is not None else ref
            got = torch.zeros_like(ref) if got is None and ref is not None else got
            if got is not None and not _same_values(got, ref, dtype):
                right = False
                break
        if not right:
            return _CaseResult(False, (
                "the values are right but the gradients are not: something in your "
                "computation blocks or changes the gradient (a .detach() or .data on a "
                "term that matters, or an in-place change of an intermediate)"))
        return _CaseResult(True)

    def _failure_message(self, outcome: Outcome) -> str:
        text = f"your function {outcome.message}"
        if outcome.kind == "time limit":
            text += (". Is there an endless loop, or a Python loop over every element "
                     "of a large tensor? The remaining cases were skipped")
        if outcome.error_type and outcome.error_text:
            for fragment, hint in self.ex.error_hints.items():
                if fragment in outcome.error_text:
                    text += f". Hint: {hint}"
                    break
        return text


def _consistent_mistakes(ex: Exercise, results: list[_CaseResult]) -> None:
    """Name one mistake for one bug: where a case matches several known mistakes,
    name the one that matches the most cases of this answer (the earliest on a tie),
    so a small case where two mistakes coincide does not add a second, wrong story."""
    counts: dict[int, int] = {}
    for res in results:
        for index in res.mistakes:
            counts[index] = counts.get(index, 0) + 1
    for res in results:
        if len(res.mistakes) > 1:
            best = max(res.mistakes, key=lambda i: (counts[i], -i))
            res.message = ex.mistakes[best].message()


def _which(names: list[str], total: int) -> str:
    """The cases a message applies to, short enough to read."""
    if len(names) == total > 1:
        return "Every case"
    if len(names) > 3:
        return f"{names[0]}, {names[1]} and {len(names) - 2} more cases"
    return ", ".join(names)


def _not_attempted(ex: Exercise, name: str | None, first: Outcome, n_cases: int) -> CheckResult:
    message = ("Not attempted yet: replace the line raise NotImplementedError(...) in "
               "your function with your code, then run this check again.")
    raiser = first.raiser
    if raiser and name and raiser != name:
        # e.g. perplexity is written but calls cross_entropy, which is still a stub
        message = (f"Not attempted yet: your function calls {raiser}, which still raises "
                   f"NotImplementedError. Write {raiser} first, then run this check again.")
    return CheckResult(
        exercise=ex.id, title=ex.title, passed=False, score=0, max_score=n_cases,
        status=NOT_ATTEMPTED, feedback=[message],
    )


def _max_score_or_zero(ex: Exercise) -> int:
    try:
        return ex.max_score
    except Exception:  # the cases themselves cannot be built: there is no real number
        return 0


def _check_failed(ex: Exercise, exc: Exception) -> CheckResult:
    """A bug in the check itself must not look like the learner's, nor drop the
    exercise from a total: the result keeps the exercise's real max score."""
    return CheckResult(
        exercise=ex.id, title=ex.title, passed=False, score=0, max_score=_max_score_or_zero(ex),
        feedback=[f"The check itself failed ({exc.__class__.__name__}: {exc}). This is "
                  "a bug in lmcourse, not in your answer; please report it."])


def evaluate(exercise: Exercise, answer: Answer, time_limit: float) -> tuple[CheckResult, bool]:
    """Judge ``answer`` on every case of ``exercise``: the result, and whether the
    run was interrupted (Ctrl-C) before it finished.

    The judging uses only the plain values and strings of the answer's
    outcomes, so the batch grader can pass an ``Answer`` that runs the
    function in another process. A bug in the check becomes a result that says
    so (with the real max score); it never raises because of the answer.
    """
    if _GUARD.inside_answer():
        raise RuntimeError(_REENTRY)
    local = isinstance(answer, LocalAnswer)
    if local:  # the answer's code runs in this process: keep it from the references
        _GUARD.enter()
    try:
        return _evaluate(exercise, answer, time_limit)
    except Exception as exc:  # a bug in the check itself must not look like the learner's
        return _check_failed(exercise, exc), False
    finally:
        if local:
            _GUARD.leave()


def _evaluate(ex: Exercise, answer: Answer, time_limit: float) -> tuple[CheckResult, bool]:
    cases = ex.build_cases()
    runner = _Runner(ex, answer, time_limit)
    results: list[tuple[Case, _CaseResult]] = []
    stopped = ""
    for case in cases:
        if stopped:
            results.append((case, _CaseResult(False, stopped)))
            continue
        res = runner.run_case(case)
        results.append((case, res))
        kind = res.outcome.kind if res.outcome else "ok"
        if kind in ("time limit", "interrupt"):
            stopped = "skipped after the previous case was stopped"
    _consistent_mistakes(ex, [r for _, r in results])
    kinds = [r.outcome.kind if r.outcome else "ok" for _, r in results]
    if all(k == "not implemented" for k in kinds):
        return _not_attempted(ex, answer.name, results[0][1].outcome, len(cases)), False

    score = sum(r.passed for _, r in results)
    passed = score == len(cases)
    # One line per distinct message, naming every case that produced it.
    groups: OrderedDict[str, tuple[str, list[str]]] = OrderedDict()
    for case, res in results:
        if not res.passed and res.message != stopped:
            groups.setdefault(res.key, (res.message, []))[1].append(case.name)
    feedback = [f"{_which(names, len(cases))}: {message}" for message, names in groups.values()]
    if passed:
        feedback = [ex.passed_message or f"All {len(cases)} cases pass. Well done!"]
        feedback += _notes(results[0][1])
    result = CheckResult(
        exercise=ex.id, title=ex.title, passed=passed, score=score, max_score=len(cases),
        status=PASSED if passed else FAILED, feedback=feedback,
        cases=[(case.name, res.passed) for case, res in results],
    )
    return result, "interrupt" in kinds


def _notes(first: _CaseResult) -> list[str]:
    """Remarks on a correct answer, from what it returned on the first case."""
    if _is_number(first.expected) and isinstance(first.value, torch.Tensor):
        return ["Note: you return a 0-d tensor; that is accepted, but a Python float "
                "is the convention for a metric like this (a tensor keeps its "
                "autograd graph alive, and prints as tensor(...))."]
    return []


def _not_a_function(ex: Exercise, answer: Any) -> CheckResult:
    return CheckResult(
        exercise=ex.id, title=ex.title, passed=False, score=0, max_score=_max_score_or_zero(ex),
        feedback=[f"check() needs your function itself, but got {_type_name(answer)}. "
                  "Pass the function's name without calling it."])


def check(exercise_id: str, answer: Any, *, time_limit: float | None = None,
          record: bool = True) -> CheckResult:
    """Grade ``answer`` (your function) for exercise ``exercise_id``.

    Returns a ``CheckResult``, which displays itself in a notebook. It never
    raises because of the answer: errors, endless loops (stopped after
    ``time_limit`` seconds per call), wrong types, shapes, dtypes and values
    all become feedback. An unknown ``exercise_id`` raises ``ValueError``
    listing the known ones, because that is a typo in the check cell, not a
    mistake in the answer; so does a ``check()`` called from inside the
    function being checked (``RuntimeError``), which then fails that answer.

    With ``record=True`` the best score is saved to the progress file (see
    ``progress()``).
    """
    if _GUARD.inside_answer():
        raise RuntimeError(_REENTRY)
    ex = get_exercise(exercise_id)
    limit = _default_time_limit() if time_limit is None else float(time_limit)
    if not callable(answer):
        result, interrupted = _not_a_function(ex, answer), False
    else:
        # The checks use tiny tensors: waking a pool of torch threads for each op
        # costs far more than the work (milliseconds per softmax on a busy machine).
        # The setting is process-wide, so the worker thread running the answer has it too.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            result, interrupted = evaluate(ex, LocalAnswer(answer), limit)
        finally:
            torch.set_num_threads(threads)
    if record and not interrupted:
        note = learner_progress.record(result)
        if note:
            result.feedback.append(note)
    return result


# ---------------------------------------------------------------------------
# Sealing: the judging code looks its names up in a private copy of this namespace


def _sealed(namespace: dict) -> dict:
    """A copy of ``namespace`` whose functions, and the methods of its classes, look
    their global names up in the copy instead of the module.

    After this, ``checks._same_values = lambda *a, **k: True`` (or
    ``checks.torch = ...``) in a learner's cell rebinds the module attribute
    only: ``check()`` and everything it calls keep the functions bound here.
    Only code written in this file is rebound; the registry and other shared
    objects are the same objects in both.
    """
    private = dict(namespace)

    def rebind(fn: types.FunctionType) -> types.FunctionType:
        if fn.__code__.co_filename != __file__:
            return fn  # made elsewhere (a dataclass's __init__): nothing of ours to look up
        new = types.FunctionType(fn.__code__, private, fn.__name__, fn.__defaults__,
                                 fn.__closure__)
        new.__kwdefaults__ = fn.__kwdefaults__
        new.__qualname__, new.__doc__, new.__module__ = fn.__qualname__, fn.__doc__, fn.__module__
        new.__annotations__ = fn.__annotations__
        return new

    for name, value in namespace.items():
        if isinstance(value, types.FunctionType) and value.__module__ == __name__:
            private[name] = rebind(value)
        elif isinstance(value, type) and value.__module__ == __name__:
            for attr, member in list(vars(value).items()):
                if isinstance(member, types.FunctionType):
                    setattr(value, attr, rebind(member))
                elif isinstance(member, property):
                    setattr(value, attr, property(
                        *(rebind(f) if isinstance(f, types.FunctionType) else f
                          for f in (member.fget, member.fset, member.fdel)), member.__doc__))
                elif isinstance(member, (staticmethod, classmethod)) and isinstance(
                        member.__func__, types.FunctionType):
                    setattr(value, attr, type(member)(rebind(member.__func__)))
    return private


globals().update({name: value for name, value in _sealed(globals()).items()
                  if isinstance(value, types.FunctionType)})
