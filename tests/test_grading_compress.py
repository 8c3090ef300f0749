"""Lesson 07's checks: distillation_loss and quantize_int8. The references get full marks,
learners' versions of each classic mistake are named, and crashes, NaN and wrong shapes
are reported."""
import pytest
import torch
import torch.nn.functional as F

from grading_helpers import assert_every_mistake_recognised, assert_fails_naming, run, text

from lmcourse import compress
from lmcourse.grading import get_exercise

pytestmark = pytest.mark.usefixtures("home")


@pytest.mark.parametrize("exercise", ["distillation_loss", "quantize_int8"])
def test_reference_full_marks_and_every_mistake_recognised(exercise):
    assert get_exercise(exercise).reference.__name__ == exercise
    assert get_exercise(exercise).reference.__module__ == compress.__name__
    assert_every_mistake_recognised(exercise)


# ---------------------------------------------------------------------------
# distillation_loss, as learners write it


def kd_right(s, t, y, T, alpha):
    p_t = F.softmax(t / T, dim=-1)
    kl = (p_t * (F.log_softmax(t / T, dim=-1) - F.log_softmax(s / T, dim=-1))).sum(-1).mean()
    return alpha * T ** 2 * kl + (1 - alpha) * F.cross_entropy(s, y)


def kd_with_kl_div(s, t, y, T, alpha):
    soft = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T
    return alpha * soft + (1 - alpha) * F.cross_entropy(s, y)


def kd_no_t_squared(s, t, y, T, alpha):
    soft = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean")
    return alpha * soft + (1 - alpha) * F.cross_entropy(s, y)


def kd_reversed(s, t, y, T, alpha):
    soft = F.kl_div(F.log_softmax(t / T, -1), F.softmax(s / T, -1), reduction="batchmean") * T * T
    return alpha * soft + (1 - alpha) * F.cross_entropy(s, y)


def kd_teacher_only(s, t, y, T, alpha):
    soft = F.kl_div(F.log_softmax(s, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T
    return alpha * soft + (1 - alpha) * F.cross_entropy(s, y)


def kd_vocab_mean(s, t, y, T, alpha):
    p_t = F.softmax(t / T, -1)
    soft = (p_t * (p_t.log() - F.log_softmax(s / T, -1))).mean() * T * T
    return alpha * soft + (1 - alpha) * F.cross_entropy(s, y)


def kd_alpha_swapped(s, t, y, T, alpha):
    soft = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T
    return (1 - alpha) * soft + alpha * F.cross_entropy(s, y)


def kd_hard_at_t(s, t, y, T, alpha):
    soft = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T
    return alpha * soft + (1 - alpha) * F.cross_entropy(s / T, y)


def kd_softmax_then_log(s, t, y, T, alpha):
    p_t, p_s = (t / T).exp(), (s / T).exp()
    p_t, p_s = p_t / p_t.sum(-1, keepdim=True), p_s / p_s.sum(-1, keepdim=True)
    soft = (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * T * T
    return alpha * soft + (1 - alpha) * F.cross_entropy(s, y)


def kd_as_float(s, t, y, T, alpha):
    return float(kd_right(s, t, y, T, alpha))


def kd_per_row(s, t, y, T, alpha):
    kl = (F.softmax(t / T, -1) * (F.log_softmax(t / T, -1) - F.log_softmax(s / T, -1))).sum(-1)
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y, reduction="none")


def kd_crashes(s, t, y, T, alpha):
    return s[len(s)].sum()  # one row past the end


DISTILL_WRONG = [
    (kd_no_t_squared, "not multiplied by t²"),
    (kd_reversed, "wrong way round"),
    (kd_teacher_only, "one side only"),
    (kd_vocab_mean, "averaged over the vocabulary"),
    (kd_alpha_swapped, "alpha weighs the wrong term"),
    (kd_hard_at_t, "hard loss is computed at temperature t"),
]


def test_distillation_overflow_crash_and_shape_are_reported():
    overflow = text(run("distillation_loss", kd_softmax_then_log, record=False))
    assert "huge logits" in overflow and "nan" in overflow and "log_softmax" in overflow
    as_float = run("distillation_loss", kd_as_float, record=False)
    assert not as_float.passed and "0-d torch.tensor was expected" in text(as_float)
    per_row = text(run("distillation_loss", kd_per_row, record=False))
    assert "expected shape ()" in per_row
    crash = run("distillation_loss", kd_crashes, record=False)
    assert not crash.passed and crash.score == 0 and "your function raised" in text(crash)


# ---------------------------------------------------------------------------
# quantize_int8, as learners write it


def q8_right(w):
    scale = w.abs().max(dim=1).values / 127
    q = torch.round(w / scale.clamp(min=1e-30).unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return q, scale


def q8_naive_division(w):  # a zero row gives 0 / 0 = NaN, which becomes 0 in int8: still right
    scale = w.abs().amax(1) / 127
    return torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


def q8_one_scale(w):
    scale = w.abs().max() / 127
    return torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale


def q8_255(w):
    scale = w.abs().amax(1, keepdim=True) / 255
    return torch.round(w / scale.clamp(min=1e-30)).clamp(-128, 127).to(torch.int8), scale.squeeze(1)


def q8_128(w):
    scale = w.abs().amax(1) / 128
    return torch.round(w / scale.clamp(min=1e-30)[:, None]).clamp(-127, 127).to(torch.int8), scale


def q8_truncate(w):
    scale = w.abs().amax(1) / 127
    return (w / scale.clamp(min=1e-30)[:, None]).to(torch.int8), scale


def q8_per_column(w):
    scale = w.abs().amax(0) / 127
    return torch.round(w / scale.clamp(min=1e-30)).clamp(-127, 127).to(torch.int8), scale


def q8_float_q(w):
    scale = w.abs().amax(1) / 127
    return torch.round(w / scale.clamp(min=1e-30)[:, None]).clamp(-127, 127), scale


def q8_nan_scale(w):
    scale = w.abs().amax(1) / 127
    return torch.round(w / scale.clamp(min=1e-30)[:, None]).clamp(-127, 127).to(torch.int8), \
        torch.where(scale > 0, scale, torch.full_like(scale, float("nan")))


QUANT_WRONG = [
    (q8_one_scale, "one scale for the whole matrix"),
    (q8_255, "divides by 255"),
    (q8_128, "divides by 128"),
    (q8_truncate, "floor or truncation"),
    (q8_per_column, "per input column"),
]


# ---------------------------------------------------------------------------
# Both exercises: right answers pass, every classic mistake is named

RIGHT = [("distillation_loss", kd_right), ("distillation_loss", kd_with_kl_div),
         ("quantize_int8", q8_right), ("quantize_int8", q8_naive_division)]
WRONG = ([("distillation_loss", f, keyword) for f, keyword in DISTILL_WRONG]
         + [("quantize_int8", f, keyword) for f, keyword in QUANT_WRONG])


@pytest.mark.parametrize("exercise, answer", RIGHT, ids=[f.__name__ for _, f in RIGHT])
def test_correct_answers_pass(exercise, answer):
    result = run(exercise, answer, record=False)
    assert result.passed, str(result)


@pytest.mark.parametrize("exercise, answer, keyword", WRONG, ids=[f.__name__ for _, f, _ in WRONG])
def test_mistakes_are_named(exercise, answer, keyword):
    assert_fails_naming(exercise, answer, keyword)


def test_quantization_dtype_and_nan_are_reported():
    float_q = text(run("quantize_int8", q8_float_q, record=False))
    assert "q: expected dtype torch.int8" in float_q
    nan = text(run("quantize_int8", q8_nan_scale, record=False))
    assert "a row of zeros" in nan and "nan" in nan and "divide by 1 where the scale is 0" in nan
