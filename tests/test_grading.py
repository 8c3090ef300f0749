"""lmcourse.grading: checks accept every correct form, name every classic mistake,
and never raise or hang because of the answer."""
import json
import math
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from grading_helpers import (
    assert_every_mistake_recognised,
    assert_fails_naming,
    run,
    text,
)

from lmcourse.grading import MIME_TYPE, CheckResult, check, get_exercise, known_exercises, progress


pytestmark = pytest.mark.usefixtures("home")


# ---------------------------------------------------------------------------
# Correct answers, in every form, pass


def softmax_max(x, dim=-1):
    e = torch.exp(x - x.max(dim=dim, keepdim=True).values)
    return e / e.sum(dim=dim, keepdim=True)


def softmax_logsumexp(x, dim=-1):
    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))


def softmax_loop(x, dim=-1):
    moved = x.movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = torch.empty_like(rows)
    for i in range(rows.shape[0]):
        m = max(rows[i].tolist())
        e = torch.exp(rows[i] - m)
        out[i] = e / e.sum()
    return out.reshape(moved.shape).movedim(-1, dim)


def softmax_detached_max(x, dim=-1):  # detaching the shift is fine: it cancels
    m = x.detach().amax(dim=dim, keepdim=True)
    return torch.exp(x - m) / torch.exp(x - m).sum(dim=dim, keepdim=True)


def ce_logsumexp(logits, targets):
    return (torch.logsumexp(logits, 1) - logits[torch.arange(len(targets)), targets]).mean()


def ce_manual_gather(logits, targets):
    m = logits.max(dim=1, keepdim=True).values
    lse = m[:, 0] + torch.log(torch.exp(logits - m).sum(dim=1))
    return (lse - logits.gather(1, targets[:, None])[:, 0]).sum() / logits.shape[0]


def ce_loop(logits, targets):
    total = 0
    for i in range(logits.shape[0]):
        total = total + torch.logsumexp(logits[i], 0) - logits[i, targets[i]]
    return total / logits.shape[0]


def ce_one_hot(logits, targets):
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    log_probs = logits - torch.logsumexp(logits, 1, keepdim=True)
    return -(one_hot * log_probs).sum(1).mean()


def ppl_float(logits, targets):
    V = logits.shape[-1]
    return math.exp(F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1)).item())


def ppl_tensor(logits, targets):  # a 0-d tensor is accepted too
    return torch.exp(F.cross_entropy(logits.transpose(1, 2), targets))


def ppl_bits(logits, targets):
    log2p = torch.log_softmax(logits, -1).gather(-1, targets[..., None]) / math.log(2)
    return 2.0 ** (-log2p.mean().item())


def ppl_loop(logits, targets):
    total, n = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            row = logits[b, t]
            total += (torch.logsumexp(row, 0) - row[targets[b, t]]).item()
            n += 1
    return math.exp(total / n)


def ppl_geometric_mean(logits, targets):
    p = torch.softmax(logits.double(), -1).gather(-1, targets[..., None])
    return float(p.log().mean().neg().exp())


CORRECT = [
    ("softmax", softmax_max), ("softmax", softmax_logsumexp), ("softmax", softmax_loop),
    ("softmax", softmax_detached_max),
    ("cross_entropy", ce_logsumexp), ("cross_entropy", ce_manual_gather),
    ("cross_entropy", ce_loop), ("cross_entropy", ce_one_hot),
    ("perplexity", ppl_float), ("perplexity", ppl_tensor), ("perplexity", ppl_bits),
    ("perplexity", ppl_loop), ("perplexity", ppl_geometric_mean),
]


@pytest.mark.parametrize("exercise, answer", CORRECT, ids=[f.__name__ for _, f in CORRECT])
def test_correct_forms_pass(exercise, answer):
    result = run(exercise, answer)
    assert result.passed, str(result)
    assert result.score == result.max_score == len(result.cases) > 5
    assert result.status == "passed"


def test_a_tensor_perplexity_passes_with_a_note():
    result = run("perplexity", ppl_tensor)
    assert result.passed and "python float" in text(result)
    assert "note" not in text(run("perplexity", ppl_float))


# ---------------------------------------------------------------------------
# Classic wrong answers fail, and the feedback names the mistake


def rows(logits):
    return torch.arange(logits.shape[0])


def nll(logits, targets):
    return -torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]


WRONG = {
    "softmax": [
        ("no max subtraction", lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim, keepdim=True),
         "overflows"),
        ("one max for the whole tensor",
         lambda x, dim=-1: torch.exp(x - x.max()) / torch.exp(x - x.max()).sum(dim, keepdim=True),
         "whole tensor"),
        ("log-softmax", lambda x, dim=-1: torch.log_softmax(x, dim), "log-probabilities"),
        ("over all elements",
         lambda x, dim=-1: torch.exp(x - x.max()) / torch.exp(x - x.max()).sum(),
         "all elements"),
        ("ignores dim", lambda x, dim=-1: softmax_max(x, -1), "ignores its dim"),
        ("hard-coded dim 0", lambda x, dim=-1: softmax_max(x, 0), "dimension 0"),
        ("max without keepdim",
         lambda x, dim=-1: (torch.exp(x - x.amax(dim))
                            / torch.exp(x - x.amax(dim)).sum(dim, keepdim=True)),
         "broadcast"),
        ("sum without keepdim",
         lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim), "broadcast"),
        ("changes the dtype", lambda x, dim=-1: softmax_max(x, dim).float(), "dtype"),
        ("forgets to normalise", lambda x, dim=-1: torch.exp(x - x.amax(dim, keepdim=True)),
         "divide by the sum"),
        ("in place", lambda x, dim=-1: softmax_max(x.sub_(0.5), dim), "in place"),
        ("detached", lambda x, dim=-1: torch.tensor(softmax_max(x, dim).tolist(), dtype=x.dtype),
         "autograd"),
        ("reduced shape", lambda x, dim=-1: softmax_max(x, dim).sum(dim), "shape"),
    ],
    "cross_entropy": [
        ("sum instead of mean", lambda l, t: F.cross_entropy(l, t, reduction="sum"), "summed"),
        ("bits", lambda l, t: F.cross_entropy(l, t) / math.log(2), "bits"),
        ("missing minus sign", lambda l, t: torch.log_softmax(l, 1)[rows(l), t].mean(),
         "minus sign"),
        ("log of softmax", lambda l, t: -torch.log(torch.softmax(l, 1)[rows(l), t]).mean(),
         "log of a probability"),
        ("log of naive softmax",
         lambda l, t: -torch.log(torch.exp(l) / torch.exp(l).sum(1, keepdim=True))[rows(l), t]
         .mean(),
         "log of a probability"),
        ("logits[:, targets]", lambda l, t: -torch.log_softmax(l, 1)[:, t].mean(), "n×n"),
        ("per-example vector", lambda l, t: F.cross_entropy(l, t, reduction="none"),
         "one loss per example"),
        ("one-hot averaged over N×V",
         lambda l, t: -(F.one_hot(t, l.shape[1]) * torch.log_softmax(l, 1)).mean(), "one-hot"),
        ("one-hot without num_classes",
         lambda l, t: -(F.one_hot(t) * torch.log_softmax(l, 1)).sum(1).mean(), "one-hot"),
        ("raw logits", lambda l, t: -l[rows(l), t].mean(), "raw logit"),
        ("python float", lambda l, t: F.cross_entropy(l, t).item(), "python number"),
        ("detached tensor", lambda l, t: torch.tensor(F.cross_entropy(l, t).item(), dtype=l.dtype),
         "autograd"),
    ],
    "perplexity": [
        ("exp of the summed NLL", lambda l, t: torch.exp(nll(l, t).sum()).item(), "total"),
        ("mean of per-sequence perplexities", lambda l, t: nll(l, t).mean(1).exp().mean().item(),
         "averaged the perplexities"),
        ("2 ** nats", lambda l, t: 2 ** nll(l, t).mean().item(), "raised 2"),
        ("targets shifted by one",
         lambda l, t: math.exp(nll(l[:, :-1], t[:, 1:]).mean().item()), "shifted"),
        ("forgot exp", lambda l, t: nll(l, t).mean().item(), "returned the cross-entropy"),
        ("per-sequence vector", lambda l, t: nll(l, t).mean(1).exp(),
         "one perplexity per sequence"),
        ("naive softmax",
         lambda l, t: math.exp(-torch.log(torch.exp(l) / torch.exp(l).sum(-1, keepdim=True))
                               .gather(-1, t[..., None]).mean().item()), "overflows"),
    ],
}
WRONG_CASES = [(ex, name, fn, kw) for ex, items in WRONG.items() for name, fn, kw in items]


@pytest.mark.parametrize("exercise, name, answer, keyword", WRONG_CASES,
                         ids=[f"{ex}-{name}" for ex, name, _, _ in WRONG_CASES])
def test_classic_mistakes_fail_with_a_named_hint(exercise, name, answer, keyword):
    assert_fails_naming(exercise, answer, keyword)


@pytest.mark.parametrize("exercise", known_exercises())
def test_every_declared_mistake_is_recognised_and_the_reference_passes(exercise):
    assert_every_mistake_recognised(exercise)


# ---------------------------------------------------------------------------
# Nothing the answer does escapes as an exception, or hangs


def raises_zero_division(x, dim=-1):
    scale = 1 / 0
    return x * scale


def returns_nan(x, dim=-1):
    return torch.full_like(x, float("nan"))


def loops_forever(x, dim=-1):
    while True: pass  # noqa: E701 - the one-line form is the hardest to interrupt


def loops_forever_catching_exceptions(x, dim=-1):
    n = 0
    while True:
        try:
            n += 1
        except Exception:
            pass


def exits(x, dim=-1):
    sys.exit(3)


def interrupts(x, dim=-1):
    raise KeyboardInterrupt


def stub(x, dim=-1):
    """A docstring."""
    raise NotImplementedError("Write your solution here")


def test_an_exception_becomes_feedback_with_the_line():
    result = run("softmax", raises_zero_division)
    assert not result.passed and result.score == 0
    assert "ZeroDivisionError" in result.feedback[0]
    assert "line" in result.feedback[0] and "scale = 1 / 0" in result.feedback[0]
    assert len(result.feedback) == 1  # one line for the same error in every case


@pytest.mark.parametrize("answer, keyword", [
    (returns_nan, "nan"),
    (lambda x, dim=-1: None, "none"),
    (lambda x, dim=-1: [0.5, 0.5], "list"),
    (lambda x, dim=-1: softmax_max(x, dim)[..., :1], "expected shape"),
    (lambda x, dim=-1: softmax_max(x, dim).half(), "dtype"),
    (exits, "exit()"),
])
def test_bad_outputs_become_feedback(answer, keyword):
    result = run("softmax", answer)
    assert not result.passed and keyword in text(result), str(result)


def test_shape_feedback_names_expected_and_got():
    result = run("cross_entropy", lambda l, t: F.cross_entropy(l, t).reshape(1))
    assert "expected shape (), got shape (1,)" in text(result)


@pytest.mark.parametrize("answer", [loops_forever, loops_forever_catching_exceptions])
def test_an_endless_loop_is_stopped_within_the_time_limit(answer):
    tracer = sys.gettrace()
    start = time.perf_counter()
    result = run("softmax", answer, time_limit=0.5)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0
    assert not result.passed and "longer than 0.5 s" in text(result)
    assert sys.gettrace() is tracer
    # No stray time-limit exception is left pending for the code that runs next.
    deadline = time.perf_counter() + 0.7
    while time.perf_counter() < deadline:
        pass


def test_not_implemented_means_not_attempted(home):
    result = run("softmax", stub)
    assert result.status == "not attempted" and not result.passed and result.score == 0
    assert result.max_score == get_exercise("softmax").max_score
    assert "not attempted yet" in text(result)
    assert progress() == {}  # nothing to record


def test_not_attempted_names_an_unwritten_helper():
    def cross_entropy(logits, targets):
        raise NotImplementedError("Write your solution here")

    def perplexity(logits, targets):
        V = logits.shape[-1]
        return math.exp(cross_entropy(logits.reshape(-1, V), targets.reshape(-1)).item())

    result = run("perplexity", perplexity)
    assert result.status == "not attempted"
    assert "calls cross_entropy" in text(result)


def test_interrupt_is_reported_and_not_recorded():
    result = run("softmax", interrupts)
    assert not result.passed and "interrupted" in text(result)
    assert progress() == {}


def test_not_a_function_and_unknown_exercise():
    result = run("softmax", torch.zeros(3))
    assert not result.passed and "function itself" in text(result)
    with pytest.raises(ValueError, match="known exercises are: .*'softmax'"):
        check("sofmax", softmax_max)


# ---------------------------------------------------------------------------
# The result displays itself and survives a round trip through a notebook


def test_result_display_and_json_round_trip():
    passed, failed = run("softmax", softmax_max), run("softmax", returns_nan)
    todo = run("softmax", stub)
    assert "#2e7d32" in passed._repr_html_() and "#c62828" in failed._repr_html_()
    assert "#b26a00" in todo._repr_html_()
    bundle = failed._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", MIME_TYPE}
    assert "failed" in bundle["text/plain"] and "/12" in bundle["text/plain"]
    payload = json.loads(json.dumps(bundle[MIME_TYPE]))
    assert CheckResult.from_json(payload) == failed
    assert "status='failed'" in repr(failed)
    evil = CheckResult("x", False, 0, 1, ["<script>"], title="<b>")
    assert "<script>" not in evil._repr_html_() and "&lt;script&gt;" in evil._repr_html_()
    with pytest.raises(ValueError):
        CheckResult.from_json({"exercise": "softmax"})


# ---------------------------------------------------------------------------
# Progress: best score per exercise, atomic, and robust to a corrupt file


def test_progress_keeps_the_best_score(home):
    run("softmax", returns_nan)
    run("softmax", softmax_max)
    run("softmax", returns_nan)
    entry = progress()["softmax"]
    assert entry["best_score"] == entry["max_score"] == 12
    assert entry["passed"] is True and entry["attempts"] == 3
    assert json.loads((home / "progress.json").read_text())["version"] == 1


def test_a_corrupt_progress_file_is_kept_aside(home):
    home.mkdir(parents=True)
    (home / "progress.json").write_text("{ not json")
    result = run("softmax", softmax_max)
    assert result.passed
    assert "could not be read" in text(result)
    kept = list(home.glob("progress.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{ not json"
    assert progress()["softmax"]["best_score"] == 12


def test_an_unwritable_progress_folder_does_not_break_check(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("LMCOURSE_HOME", str(blocker / "home"))
    result = run("softmax", softmax_max)
    assert result.passed and "could not be saved" in text(result)
