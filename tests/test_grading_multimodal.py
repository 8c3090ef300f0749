"""Lesson 10's check: clip_loss. The reference gets full marks, learners' versions of each
classic mistake are named, and crashes, NaN and wrong shapes are reported."""
import pytest
import torch
import torch.nn.functional as F

from grading_helpers import assert_every_mistake_recognised, assert_fails_naming, run, text

from lmcourse.grading import get_exercise
from lmcourse.models import clip

pytestmark = pytest.mark.usefixtures("home")


def test_reference_full_marks_and_every_mistake_recognised():
    assert get_exercise("clip_loss").reference.__name__ == "clip_loss"
    assert get_exercise("clip_loss").reference.__module__ == clip.__name__
    assert_every_mistake_recognised("clip_loss")


def test_hidden_cases_are_new_draws_of_the_same_kinds():
    from lmcourse.grading.grade import hidden_exercise

    exercise = get_exercise("clip_loss")
    visible, hidden = exercise.build_cases(), hidden_exercise(exercise, 99).build_cases()
    assert [c.name for c in visible] == [c.name for c in hidden]
    assert not torch.equal(visible[0].args[0], hidden[0].args[0])


# ---------------------------------------------------------------------------
# clip_loss, as learners write it


def cl_right(image_emb, text_emb, temperature):
    image_emb = image_emb / image_emb.norm(dim=1, keepdim=True)
    text_emb = text_emb / text_emb.norm(dim=1, keepdim=True)
    logits = image_emb @ text_emb.T / temperature
    labels = torch.arange(logits.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def cl_log_softmax(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    i2t = -F.log_softmax(logits, dim=1).diagonal().mean()
    t2i = -F.log_softmax(logits, dim=0).diagonal().mean()
    return (i2t + t2i) / 2


def cl_one_direction(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits)))


def cl_other_direction(image_emb, text_emb, temperature):
    logits = F.normalize(text_emb, dim=-1) @ F.normalize(image_emb, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits)))


def cl_no_normalisation(image_emb, text_emb, temperature):
    logits = image_emb @ text_emb.T / temperature
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def cl_times_temperature(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T * temperature
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def cl_zero_labels(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    labels = torch.zeros(len(logits), dtype=torch.long)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def cl_summed(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels, reduction="sum")
            + F.cross_entropy(logits.T, labels, reduction="sum")) / 2


def cl_directions_added(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    labels = torch.arange(len(logits))
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


def cl_softmax_then_log(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    p_rows = logits.exp() / logits.exp().sum(1, keepdim=True)
    p_cols = logits.exp() / logits.exp().sum(0, keepdim=True)
    return -(p_rows.diagonal().log().mean() + p_cols.diagonal().log().mean()) / 2


def cl_as_float(image_emb, text_emb, temperature):
    return cl_right(image_emb, text_emb, temperature).item()


def cl_per_pair(image_emb, text_emb, temperature):
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T / temperature
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels, reduction="none")
            + F.cross_entropy(logits.T, labels, reduction="none")) / 2


def cl_crashes(image_emb, text_emb, temperature):
    return (image_emb @ text_emb).sum()  # (N, d) @ (N, d): the transpose is missing


WRONG = [
    (cl_one_direction, "image→text direction"),
    (cl_other_direction, "text→image direction"),
    (cl_no_normalisation, "not both l2-normalised"),
    (cl_times_temperature, "multiplied by the temperature"),
    (cl_zero_labels, "labels do not point at the matching pairs"),
    (cl_summed, "summed over the batch instead of averaged"),
    (cl_directions_added, "two directions are added"),
]


@pytest.mark.parametrize("answer", [cl_right, cl_log_softmax], ids=lambda f: f.__name__)
def test_correct_answers_pass(answer):
    result = run("clip_loss", answer, record=False)
    assert result.passed and result.score == result.max_score, str(result)


@pytest.mark.parametrize("answer, keyword", WRONG, ids=[f.__name__ for f, _ in WRONG])
def test_mistakes_are_named(answer, keyword):
    assert_fails_naming("clip_loss", answer, keyword)


def test_overflow_crash_number_and_shape_are_reported():
    overflow = text(run("clip_loss", cl_softmax_then_log, record=False))
    assert "tiny temperature" in overflow and "nan" in overflow and "cross_entropy" in overflow
    as_float = run("clip_loss", cl_as_float, record=False)
    assert not as_float.passed and "0-d torch.tensor was expected" in text(as_float)
    per_pair = text(run("clip_loss", cl_per_pair, record=False))
    assert "expected shape ()" in per_pair
    crash = run("clip_loss", cl_crashes, record=False)
    assert not crash.passed and crash.score == 0 and "your function raised" in text(crash)
    assert "transpose" in text(crash)
