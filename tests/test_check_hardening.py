"""check() survives hostile answers: threads, re-entry, calling the reference, patched
comparisons, lying tensor subclasses, unreadable outputs, inputs changed in place, and
errors raised through library frames; and its seam (Outcome, Answer, evaluate, plain)
is what the batch grader needs."""
import ast
import functools
import json
import math
import operator
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from grading_helpers import run, text
from test_grading_eval import lcs_two_rows

import lmcourse.grading.checks as checks
from lmcourse.grading import check, get_exercise, progress
from lmcourse.grading.checks import Case, Exercise, LocalAnswer, evaluate
from lmcourse.grading.plain import AnswerError, plain, tensors_in
from lmcourse.grading.safe_call import _is_learner_frame, run_answer
from lmcourse.metrics import lcs_length as package_lcs_length

pytestmark = pytest.mark.usefixtures("home")
GRADING = Path(checks.__file__).parent


def softmax(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def within(seconds, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, failing the test if it has not returned after ``seconds``."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn.__name__} hung: still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def threads_settle(baseline: set[int], seconds: float = 2.0) -> list[threading.Thread]:
    """The threads started since ``baseline`` that are still alive after ``seconds``."""
    deadline = time.perf_counter() + seconds
    while True:
        extra = [t for t in threading.enumerate() if t.ident not in baseline]
        if not extra or time.perf_counter() > deadline:
            return extra
        time.sleep(0.02)


# ---------------------------------------------------------------------------
# 1. Answers that start threads never hang check()


def spin():
    while True: pass  # noqa: E701 - the one-line loop


def spins_in_two_threads(x, dim=-1):
    threading.Thread(target=spin).start()
    spin()


def spins_in_a_pool(x, dim=-1):
    with ThreadPoolExecutor(max_workers=2) as pool:
        return pool.submit(spin).result()


def waits_on_a_spinning_thread(x, dim=-1):
    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()  # a join blocks in C: only stopping the spinning thread ends it


def softmax_in_a_pool(x, dim=-1):
    with ThreadPoolExecutor(max_workers=2) as pool:
        return pool.submit(softmax, x, dim).result()


@pytest.mark.parametrize("answer", [spins_in_two_threads, spins_in_a_pool,
                                    waits_on_a_spinning_thread])
def test_an_answer_that_starts_threads_is_stopped_every_time(answer):
    baseline = {t.ident for t in threading.enumerate()}
    for _ in range(20):
        result = within(5, run, "softmax", answer, time_limit=0.1, record=False)
        assert not result.passed and result.max_score == 12, str(result)
        assert "longer than 0.1 s and was stopped" in text(result), str(result)
    # Every thread the answers started has been stopped too.
    assert threads_settle(baseline) == []


def test_a_correct_answer_that_uses_a_thread_pool_passes_every_time():
    for _ in range(20):
        result = within(5, run, "softmax", softmax_in_a_pool, record=False)
        assert result.passed, str(result)


def test_the_checking_thread_never_receives_the_time_limit():
    result = within(5, run, "softmax", spins_in_two_threads, time_limit=0.1, record=False)
    assert not result.passed
    deadline = time.perf_counter() + 0.5  # a stray shot would land in this loop
    while time.perf_counter() < deadline:
        pass


def test_a_long_call_into_c_is_abandoned_not_waited_for():
    start = time.perf_counter()
    result = run("softmax", lambda x, dim=-1: time.sleep(2), time_limit=0.2, record=False)
    assert time.perf_counter() - start < 1.5
    assert "could not be stopped" in text(result) and result.max_score == 12, str(result)


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler, even when the tests were started in the background
    (a non-interactive shell's ``cmd &`` ignores SIGINT, and Python then installs none)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(30)
def test_ctrl_c_while_an_answer_runs_is_the_interrupt_outcome_and_stops_it(ctrl_c_raises):
    assert threading.current_thread() is threading.main_thread()
    baseline = {t.ident for t in threading.enumerate()}
    main = threading.main_thread().ident
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    start = time.perf_counter()
    result = check("softmax", spins_in_two_threads, time_limit=10)
    timer.join()
    assert time.perf_counter() - start < 3
    assert not result.passed and "interrupted" in text(result), str(result)
    assert progress() == {}  # an interrupted check is not recorded
    assert threads_settle(baseline) == []  # the answer and its thread were stopped


def test_grad_mode_and_thread_count_inside_and_after_the_answer():
    threads_seen, grad_seen = [], []

    def records(x, dim=-1):
        threads_seen.append(torch.get_num_threads())
        grad_seen.append(torch.is_grad_enabled())
        return softmax(x, dim)

    threads = torch.get_num_threads()
    with torch.no_grad():
        result = run("softmax", records, record=False)
        assert not torch.is_grad_enabled()
    assert result.passed, str(result)  # the gradient case still runs under enable_grad
    assert set(threads_seen) == {1} and torch.get_num_threads() == threads
    # The caller's no_grad reaches the answer's thread; the gradient case (last) enables grad.
    assert grad_seen[0] is False and grad_seen[-1] is True


# ---------------------------------------------------------------------------
# 2. An answer that calls check() fails; it does not hang


def calls_check(x, dim=-1):
    check("softmax", softmax)
    return softmax(x, dim)


def calls_check_in_a_thread(x, dim=-1):
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(check, "softmax", softmax).result()
    return softmax(x, dim)


@pytest.mark.parametrize("answer", [calls_check, calls_check_in_a_thread])
def test_check_called_from_inside_the_answer_fails_that_answer(answer):
    result = within(10, run, "softmax", answer, record=False)
    assert not result.passed and result.score == 0 and result.max_score == 12
    assert "check() was called from inside the answer being checked" in text(result), str(result)
    assert "runtimeerror" in text(result)
    assert run("softmax", softmax, record=False).passed  # and check() works again after


# ---------------------------------------------------------------------------
# 3. In-process shortcuts fail


@pytest.mark.parametrize("exercise, answer", [
    ("softmax", lambda x, dim=-1: get_exercise("softmax").reference(x, dim)),
    ("softmax", get_exercise("softmax").reference),
    ("softmax", lambda x, dim=-1: __import__("lmcourse.grading.exercises_lm",
                                            fromlist=["_"])._softmax(x, dim)),
    ("lcs_length", package_lcs_length),  # imported after lmcourse.grading: the guarded one
    ("lcs_length", lambda a, b: ThreadPoolExecutor(1).submit(
        get_exercise("lcs_length").reference, a, b).result()),
], ids=["registry", "reference itself", "exercise module", "package function", "from a thread"])
def test_calling_the_reference_fails(exercise, answer):
    result = run(exercise, answer, record=False)
    assert result.score == 0 and result.max_score == get_exercise(exercise).max_score
    assert "called the reference solution" in text(result), str(result)


def test_the_reference_still_works_outside_a_check():
    assert package_lcs_length("a b c".split(), "a c".split()) == 2
    x = torch.randn(3, 4)
    assert torch.allclose(get_exercise("softmax").reference(x), torch.softmax(x, -1))


def test_patching_the_comparisons_changes_nothing(monkeypatch):
    for name in ("_same_values", "_unchanged"):
        monkeypatch.setattr(checks, name, lambda *a, **k: True)
    for name in ("_value_problem", "_form_problem"):
        monkeypatch.setattr(checks, name, lambda *a, **k: None)
    monkeypatch.setattr(checks, "torch", None)
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch, "equal", lambda *a, **k: True)
    wrong = run("softmax", lambda x, dim=-1: x, record=False)
    assert not wrong.passed and "wrong values" in text(wrong), str(wrong)
    # The patches stay in force for the checks that follow, and change nothing there either.
    assert run("softmax", softmax, record=False).passed
    later = run("cross_entropy", lambda logits, targets: logits.sum() * 0, record=False)
    assert later.score < later.max_score and "expected 3.96842, got -0" in text(later), str(later)


class Liar(torch.Tensor):
    """A tensor whose comparisons all say "equal"."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        out = super().__torch_function__(func, types, args, kwargs or {})
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal", "__eq__", "eq", "isclose"):
            return True if name in ("allclose", "equal") else torch.ones_like(out, dtype=torch.bool)
        if name in ("isfinite",):
            return torch.ones(out.shape, dtype=torch.bool)
        if name in ("sub", "__sub__", "abs"):
            return torch.zeros(out.shape)
        return out


def test_a_tensor_subclass_cannot_judge_itself():
    wrong = run("softmax", lambda x, dim=-1: torch.zeros_like(x).as_subclass(Liar), record=False)
    assert wrong.score == 0 and "wrong values" in text(wrong), str(wrong)
    # The same subclass holding the right values is judged by its values: it passes.
    right = run("softmax", lambda x, dim=-1: softmax(x, dim).as_subclass(Liar), record=False)
    assert right.passed, str(right)


# ---------------------------------------------------------------------------
# 4. Outputs and errors the check cannot read are the answer's failure, at full max score


class Odd(Exception):
    def __str__(self):
        raise ValueError("no message for you")


class Exiting(Exception):
    def __str__(self):
        raise SystemExit("nor for you")


def raises(exc):
    def answer(*args):
        raise exc
    return answer


class BadFloat(float):
    def __float__(self):
        raise RuntimeError("no float")


HOSTILE = [
    ("softmax", lambda x, dim=-1: torch.empty_like(x, device="meta"), "meta device"),
    ("softmax", lambda x, dim=-1: softmax(x, dim).to_sparse(), "sparse"),
    ("softmax", lambda x, dim=-1: softmax(x, dim).to(torch.complex64), "dtype"),
    ("perplexity", lambda logits, targets: 10**400, "inf"),
    ("perplexity", lambda logits, targets: BadFloat(-1.0), "expected"),
    ("softmax", raises(Odd()), "odd"),
    ("softmax", raises(Exiting()), "exiting"),
    # 2**31 elements, with no memory behind them: it must not be copied, nor converted.
    ("softmax", lambda x, dim=-1: torch.empty(1).expand(2**31), "more than the"),
    ("cross_entropy", lambda logits, targets: torch.zeros(3_000_000), "expected shape ()"),
    ("softmax", lambda x, dim=-1: __import__("numpy").zeros(3), "numpy array"),
]


@pytest.mark.parametrize("exercise, answer, keyword", HOSTILE,
                         ids=["meta", "sparse", "complex", "10**400", "float subclass",
                              "__str__ raises", "__str__ exits", "2**31 elements",
                              "3 million elements", "numpy"])
def test_unreadable_outputs_and_errors_are_the_answers_failure(exercise, answer, keyword):
    result = run(exercise, answer, record=False)
    assert result.status == "failed" and result.score == 0, str(result)
    assert result.max_score == get_exercise(exercise).max_score
    assert "bug in lmcourse" not in text(result)
    assert keyword in text(result), str(result)


def test_a_bug_in_the_check_keeps_the_real_max_score(monkeypatch):
    def broken_reference(x):
        raise KeyError("a bug in the reference")

    broken = Exercise(id="broken", title="a broken check", reference=broken_reference,
                      cases=lambda gen: [Case(f"case {i}", (torch.ones(2),)) for i in range(3)])
    monkeypatch.setitem(checks.REGISTRY, "broken", broken)
    result = check("broken", lambda x: x, record=False)
    assert "the check itself failed" in text(result) and "bug in lmcourse" in text(result)
    assert result.max_score == 3 and result.score == 0


# ---------------------------------------------------------------------------
# 5. Inputs changed in place, lists included


def lcs_then_clear(a, b):
    length = lcs_two_rows(a, b)
    a.clear()
    return length


class AlwaysEqual:
    def __eq__(self, other):
        return True


def lcs_then_plant(a, b):
    length = lcs_two_rows(a, b)
    if a:
        a[0] = AlwaysEqual()
    return length


def test_a_list_changed_in_place_is_noticed():
    result = run("lcs_length", lcs_then_clear, record=False)
    assert "changed its input list in place" in text(result), str(result)
    assert "tensor" not in text(result) and result.score < result.max_score


def test_an_object_planted_in_an_input_list_is_noticed():
    result = run("lcs_length", lcs_then_plant, record=False)
    assert "changed its inputs in place" in text(result), str(result)


def test_a_tensor_changed_in_place_is_still_named_a_tensor():
    def shifts_in_place(x, dim=-1):
        x -= x.amax(dim=dim, keepdim=True)
        return torch.exp(x) / torch.exp(x).sum(dim=dim, keepdim=True)

    assert "changed its input tensor in place" in text(run("softmax", shifts_in_place,
                                                           record=False))


# ---------------------------------------------------------------------------
# 6. The learner's line, through library frames


def calls_exit(x, dim=-1):
    exit()


def bad_json(x, dim=-1):
    return json.loads("{not json")


def reduces_to_zero_division(x, dim=-1):
    return functools.reduce(operator.truediv, [1.0, 0.0])


def missing_variable(x, dim=-1):
    return os.environ["LMCOURSE_SURELY_NOT_SET"]


@pytest.mark.parametrize("answer, line", [
    (calls_exit, "`exit()`"),
    (bad_json, "`return json.loads(\"{not json\")`"),
    (reduces_to_zero_division, "`return functools.reduce(operator.truediv, [1.0, 0.0])`"),
    (missing_variable, "`return os.environ[\"LMCOURSE_SURELY_NOT_SET\"]`"),
])
def test_the_error_is_placed_on_the_learners_line(answer, line):
    feedback = " ".join(run("softmax", answer, record=False).feedback)
    assert f"in {answer.__name__}: {line}" in feedback, feedback
    assert "<frozen" not in feedback


def test_which_frames_are_the_learners():
    assert _is_learner_frame("/tmp/ipykernel_123/456.py")
    assert _is_learner_frame("<ipython-input-3-0123456789ab>")
    assert not _is_learner_frame("<frozen _sitebuiltins>")
    assert not _is_learner_frame("<frozen os>")
    assert not _is_learner_frame("<string>")
    assert not _is_learner_frame(json.__file__)
    assert not _is_learner_frame(str(GRADING / "checks.py"))


# ---------------------------------------------------------------------------
# The seam the batch grader uses


def test_an_outcome_describes_a_failure_in_plain_strings():
    def fails(x):
        raise ValueError("bad shape")

    outcome = run_answer(fails, (torch.ones(2),), {}, 1.0)
    assert outcome.kind == "exception" and outcome.error_type == "ValueError"
    assert outcome.error_text == "bad shape" and outcome.raiser == "fails"
    assert outcome.location.startswith("line ") and "raise ValueError" in outcome.location
    odd = run_answer(raises(Exiting()), (), {}, 1.0)
    assert odd.error_type == "Exiting" and "cannot be printed" in odd.error_text


def test_an_outcome_holds_plain_values_and_the_inputs_after_the_call():
    def appends(tokens):
        tokens.append("z")
        return torch.ones(2).as_subclass(Liar), 3

    outcome = run_answer(appends, (["a"],), {}, 1.0)
    value, count = outcome.value
    assert type(value) is torch.Tensor and type(count) is int
    assert outcome.inputs == ((["a", "z"],), {})


def test_gradients_follow_the_order_of_tensors_in():
    x, w = torch.randn(3), torch.randn(3)
    outcome = run_answer(lambda w, x: w * x, (w.clone(),), {"x": x.clone()}, 1.0,
                         gradients=True, weight=torch.ones(3))
    gw, gx = outcome.value  # args first, then kwargs
    assert torch.allclose(gw, x) and torch.allclose(gx, w)
    assert len(tensors_in(((w,), {"x": x}))) == 2
    flat = run_answer(lambda w, x: (w * x).detach(), (w,), {"x": x}, 1.0, gradients=True)
    assert flat.ok and flat.value is None  # not connected to autograd


class PlainStringsAnswer:
    """An ``Answer`` that keeps only what could cross a process boundary: no exception."""

    def __init__(self, fn):
        self.local = LocalAnswer(fn)
        self.name = self.local.name

    def _strip(self, outcome):
        outcome.exception = None
        return outcome

    def call(self, args, kwargs, time_limit):
        return self._strip(self.local.call(args, kwargs, time_limit))

    def gradients(self, args, kwargs, weight, time_limit):
        return self._strip(self.local.gradients(args, kwargs, weight, time_limit))


def test_evaluate_judges_from_the_plain_strings_alone():
    def cross_entropy(logits, targets):
        raise NotImplementedError("Write your solution here")

    def perplexity(logits, targets):
        return math.exp(cross_entropy(logits, targets).item())

    for exercise, answer in [("perplexity", perplexity), ("softmax", softmax),
                             ("lcs_length", lambda a, b: 1 / 0), ("softmax", lambda x, dim=-1: x)]:
        local, _ = evaluate(get_exercise(exercise), LocalAnswer(answer), 2.0)
        remote, _ = evaluate(get_exercise(exercise), PlainStringsAnswer(answer), 2.0)
        assert (remote.status, remote.score, remote.feedback) == \
               (local.status, local.score, local.feedback)
    not_attempted, _ = evaluate(get_exercise("perplexity"), PlainStringsAnswer(perplexity), 2.0)
    assert "calls cross_entropy" in " ".join(not_attempted.feedback)


def test_plain_refuses_what_it_cannot_read_and_copies_the_rest():
    looped = []
    looped.append(looped)
    for value in (looped, object(), {object(): 1}, torch.empty(3, device="meta")):
        with pytest.raises(AnswerError):
            plain(value)
    with pytest.raises(AnswerError, match="more than the 10 numbers"):
        plain(torch.ones(11), max_elements=10)
    x = torch.ones(2)
    copy = plain({"a": [x, 1.5, True, None, "s"]})
    assert copy == {"a": [copy["a"][0], 1.5, True, None, "s"]}
    assert copy["a"][0] is not x and copy["a"][0].data_ptr() != x.data_ptr()


def test_the_worker_side_modules_do_not_import_the_registry():
    """The batch grader imports plain and safe_call inside the sandbox, where the
    references and checks must not be loaded."""
    allowed = {"lmcourse.grading.plain"}
    for name in ("plain.py", "safe_call.py"):
        tree = ast.parse((GRADING / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        ours = {m for m in imported if m and m.startswith("lmcourse")}
        assert ours <= allowed, (name, ours)
