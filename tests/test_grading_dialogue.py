"""Lesson 11's check: assistant_loss. The reference gets full marks, learners' versions of
each classic mistake are named, and crashes, NaN and wrong shapes are reported."""
import pytest
import torch
import torch.nn.functional as F

from grading_helpers import assert_every_mistake_recognised, assert_fails_naming, run, text

from lmcourse import dialogue
from lmcourse.grading import get_exercise

pytestmark = pytest.mark.usefixtures("home")


def test_reference_full_marks_and_every_mistake_recognised():
    assert get_exercise("assistant_loss").reference.__module__ == dialogue.__name__
    assert_every_mistake_recognised("assistant_loss")


# ---------------------------------------------------------------------------
# assistant_loss, as learners write it


def right_flatten(logits, tokens, mask):
    V = logits.shape[-1]
    pred, target, keep = logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), mask[:, 1:].reshape(-1)
    return F.cross_entropy(pred[keep], target[keep])


def right_weighted(logits, tokens, mask):
    logp = F.log_softmax(logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    w = mask[:, 1:].to(logits.dtype)
    return (nll * w).sum() / w.sum()


def right_ignore_index(logits, tokens, mask):
    targets = tokens[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), targets)


def no_shift(logits, tokens, mask):
    return F.cross_entropy(logits[mask], tokens[mask])


def mask_on_inputs(logits, tokens, mask):
    keep = mask[:, :-1]
    return F.cross_entropy(logits[:, :-1][keep], tokens[:, 1:][keep])


def every_position(logits, tokens, mask):
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return (nll * mask[:, 1:]).mean()


def no_mask(logits, tokens, mask):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:])


def row_means(logits, tokens, mask):
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    keep = mask[:, 1:].float()
    return ((nll * keep).sum(1) / keep.sum(1)).mean()


def inverted(logits, tokens, mask):
    keep = ~mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][keep], tokens[:, 1:][keep])


def softmax_then_log(logits, tokens, mask):
    p = logits[:, :-1].exp()
    p = p / p.sum(-1, keepdim=True)
    nll = -p.log().gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return nll[mask[:, 1:]].mean()


def per_target(logits, tokens, mask):
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return nll[mask[:, 1:]]


def crashes(logits, tokens, mask):
    return logits[len(logits)].sum()


RIGHT = [right_flatten, right_weighted, right_ignore_index]
WRONG = [
    (no_shift, "not shifted"),
    (mask_on_inputs, "whose input is the assistant's"),
    (every_position, "number of all positions"),
    (no_mask, "mask is not used"),
    (row_means, "each row's mean"),
    (inverted, "inverted"),
]


@pytest.mark.parametrize("answer", RIGHT, ids=[f.__name__ for f in RIGHT])
def test_correct_answers_pass(answer):
    result = run("assistant_loss", answer, record=False)
    assert result.passed and result.score == result.max_score, str(result)


@pytest.mark.parametrize("answer, keyword", WRONG, ids=[f.__name__ for f, _ in WRONG])
def test_mistakes_are_named(answer, keyword):
    assert_fails_naming("assistant_loss", answer, keyword)


def test_overflow_crash_and_shape_are_reported():
    overflow = text(run("assistant_loss", softmax_then_log, record=False))
    assert "huge logits" in overflow and "log_softmax" in overflow
    shape = text(run("assistant_loss", per_target, record=False))
    assert "expected shape ()" in shape
    crash = run("assistant_loss", crashes, record=False)
    assert not crash.passed and crash.score == 0 and "your function raised" in text(crash)


def test_cases_tell_row_means_from_the_global_mean():
    cases = get_exercise("assistant_loss").build_cases()
    uneven = next(c for c in cases if "9, 2 and 1" in c.name)
    logits, tokens, mask = uneven.args
    assert not torch.allclose(row_means(logits, tokens, mask), right_flatten(logits, tokens, mask))
