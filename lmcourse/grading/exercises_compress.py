"""Checks for lesson 07's exercises: the distillation loss and per-row int8 quantization.

- ``distillation_loss(student_logits, teacher_logits, targets, temperature, alpha)``
  takes logits of shape (N, V) and integer targets (N,) and returns a 0-d
  tensor: ``alpha T^2 KL(softmax(teacher/T) || softmax(student/T))`` averaged
  over the rows, plus ``(1 - alpha)`` times the cross-entropy at T = 1
  (Hinton et al., 2015). The reference is ``lmcourse.compress.distillation_loss``.
- ``quantize_int8(w)`` takes a float matrix (out, in) and returns
  ``(q, scale)``: int8 values and one scale per output row, symmetric,
  ``scale = max|w_row| / 127``. The reference is ``lmcourse.compress.quantize_int8``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lmcourse.compress import distillation_loss as _distillation_loss
from lmcourse.compress import quantize_int8 as _quantize_int8
from lmcourse.grading.checks import Case, Exercise, Mistake, register


def _logp(logits, T):
    return F.log_softmax(logits / T, dim=-1)


def _kl_rows(log_p, log_q):
    """KL(p || q) of each row, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _combine(soft, hard, alpha):
    return alpha * soft + (1 - alpha) * hard


def _wrong_no_t_squared(s, t, y, T, alpha):
    return _combine(_kl_rows(_logp(t, T), _logp(s, T)).mean(), F.cross_entropy(s, y), alpha)


def _wrong_kl_direction(s, t, y, T, alpha):
    return _combine(T * T * _kl_rows(_logp(s, T), _logp(t, T)).mean(), F.cross_entropy(s, y), alpha)


def _wrong_teacher_only_softened(s, t, y, T, alpha):
    return _combine(T * T * _kl_rows(_logp(t, T), _logp(s, 1.0)).mean(), F.cross_entropy(s, y), alpha)


def _wrong_student_only_softened(s, t, y, T, alpha):
    return _combine(T * T * _kl_rows(_logp(t, 1.0), _logp(s, T)).mean(), F.cross_entropy(s, y), alpha)


def _wrong_mean_over_vocabulary(s, t, y, T, alpha):
    kl = _kl_rows(_logp(t, T), _logp(s, T)).mean() / s.shape[-1]  # kl_div's reduction="mean": / (N * V)
    return _combine(T * T * kl, F.cross_entropy(s, y), alpha)


def _wrong_sum_over_rows(s, t, y, T, alpha):
    return _combine(T * T * _kl_rows(_logp(t, T), _logp(s, T)).sum(), F.cross_entropy(s, y), alpha)


def _wrong_alpha_swapped(s, t, y, T, alpha):
    return _combine(T * T * _kl_rows(_logp(t, T), _logp(s, T)).mean(), F.cross_entropy(s, y), 1 - alpha)


def _wrong_hard_loss_at_t(s, t, y, T, alpha):
    return _combine(T * T * _kl_rows(_logp(t, T), _logp(s, T)).mean(), F.cross_entropy(s / T, y), alpha)


def _logits(gen, n, v, dtype=torch.float32, scale=2.0):
    return (torch.randn(n, v, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _targets(gen, n, v):
    return torch.randint(v, (n,), generator=gen)


def _distill_cases(gen: torch.Generator) -> list[Case]:
    def case(name, n, v, T, alpha, dtype=torch.float32, scale=2.0):
        return Case(name, (_logits(gen, n, v, dtype, scale), _logits(gen, n, v, dtype, scale),
                           _targets(gen, n, v), T, alpha))

    same = _logits(gen, 6, 9)
    return [
        case("8 rows, 10 classes, T=2, alpha=0.7", 8, 10, 2.0, 0.7),
        case("one row (N=1), T=3, alpha=0.4", 1, 12, 3.0, 0.4),
        case("temperature 1, alpha=0.8", 6, 9, 1.0, 0.8),
        case("a large temperature (T=20), alpha=0.6", 5, 30, 20.0, 0.6),
        case("float64 logits, T=4, alpha=0.25", 7, 11, 4.0, 0.25, dtype=torch.float64),
        case("huge logits (about ±1000), T=2, alpha=0.5", 4, 8, 2.0, 0.5, scale=1000.0),
        case("alpha=1: the soft loss only, T=2.5", 6, 7, 2.5, 1.0),
        case("alpha=0: the hard loss only, T=2.5", 6, 7, 2.5, 0.0),
        case("one class (V=1): every loss is 0", 3, 1, 2.0, 0.5),
        Case("a student equal to its teacher, T=2, alpha=0.9",
             (same, same.clone(), _targets(gen, 6, 9), 2.0, 0.9)),
        case("a long batch: 64 rows of 50 classes, T=2, alpha=0.3", 64, 50, 2.0, 0.3),
    ]


register(Exercise(
    id="distillation_loss",
    title="The knowledge-distillation loss (Hinton et al. 2015)",
    reference=_distillation_loss,
    cases=_distill_cases,
    mistakes=[
        Mistake("the soft term is not multiplied by T²",
                "dividing the logits by T shrinks the soft term's gradients by 1/T²; Hinton et al. "
                "multiply it back so that changing T does not change its weight against the hard loss",
                _wrong_no_t_squared),
        Mistake("the KL divergence is the wrong way round: KL(student ‖ teacher)",
                "the teacher's distribution is the target: KL(p_teacher ‖ p_student) = "
                "Σ p_teacher (log p_teacher − log p_student). torch's kl_div(input, target) takes "
                "the student's log-probabilities as input", _wrong_kl_direction),
        Mistake("the temperature is applied on one side only",
                "both distributions are softened by the same T: divide the student's and the "
                "teacher's logits by T before their softmax", _wrong_teacher_only_softened),
        Mistake("the temperature is applied on one side only",
                "both distributions are softened by the same T: divide the student's and the "
                "teacher's logits by T before their softmax", _wrong_student_only_softened),
        Mistake("the KL divergence is averaged over the vocabulary as well as the rows",
                "sum the KL over the V classes of a row (it is one divergence per row), then "
                "average over the N rows: kl_div's reduction='mean' divides by N·V, "
                "'batchmean' by N", _wrong_mean_over_vocabulary),
        Mistake("the KL divergence is summed over the rows instead of averaged",
                "average the per-row divergences over the N rows, as the cross-entropy is: "
                "otherwise the soft term grows with the batch size", _wrong_sum_over_rows),
        Mistake("alpha weighs the wrong term",
                "alpha multiplies the soft (teacher) term and 1 − alpha the hard "
                "cross-entropy with the targets", _wrong_alpha_swapped),
        Mistake("the hard loss is computed at temperature T",
                "the cross-entropy with the true targets uses the student's plain logits (T = 1): "
                "only the comparison with the teacher is softened", _wrong_hard_loss_at_t),
    ],
    unstable=("Hint: softmax then log overflows for large logits; log_softmax subtracts the "
              "row's maximum first and stays finite"),
    error_hints={
        "Expected floating point type for target": "the targets are class ids (integers) for the "
                                                     "cross-entropy, not probabilities",
        "must match the size of tensor": "the student and the teacher logits have the same shape "
                                         "(N, V); the softmax runs over the last dimension",
    },
    passed_message="All cases pass: T² · KL(teacher ‖ student) at temperature T, plus the hard loss at T = 1.",
))


# ---------------------------------------------------------------------------
# quantize_int8: symmetric int8 with one scale per output row


def _finish(w, scale, qmin=-127, qmax=127, rounding=torch.round):
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = rounding(w / (safe[:, None] if safe.ndim else safe)).clamp(qmin, qmax).to(torch.int8)
    return q, scale


def _row_max(w):
    return w.abs().amax(dim=1)


def _wrong_one_scale(w):
    return _finish(w, w.abs().max() / 127)


def _wrong_one_scale_per_row_copy(w):
    return _finish(w, (w.abs().max() / 127).expand(w.shape[0]).clone())


def _wrong_255(w):
    return _finish(w, _row_max(w) / 255, -128, 127)


def _wrong_255_symmetric(w):
    return _finish(w, _row_max(w) / 255)


def _wrong_128(w):
    return _finish(w, _row_max(w) / 128, -128, 127)


def _wrong_128_symmetric(w):
    return _finish(w, _row_max(w) / 128)


def _wrong_floor(w):
    return _finish(w, _row_max(w) / 127, rounding=torch.floor)


def _wrong_trunc(w):
    return _finish(w, _row_max(w) / 127, rounding=torch.trunc)


def _wrong_per_column(w):
    scale = w.abs().amax(dim=0) / 127
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(w / safe[None, :]).clamp(-127, 127).to(torch.int8), scale


def _weights(gen, out, inp, dtype=torch.float32, scale=0.1):
    return (torch.randn(out, inp, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _quantize_cases(gen: torch.Generator) -> list[Case]:
    uneven = _weights(gen, 6, 9) * torch.logspace(-3, 1, 6, dtype=torch.float64)[:, None].float()
    zero_row = _weights(gen, 5, 8)
    zero_row[2] = 0
    negative_max = _weights(gen, 4, 6)
    negative_max[:, 0] = -1.0  # each row's largest magnitude is negative: it must map to -127
    return [
        Case("a 6 x 10 matrix", (_weights(gen, 6, 10),)),
        Case("rows of very different sizes (1e-3 to 10)", (uneven,)),
        Case("a tall matrix (12 x 5)", (_weights(gen, 12, 5),)),
        Case("a wide matrix (3 x 16)", (_weights(gen, 3, 16),)),
        Case("a square matrix (8 x 8)", (_weights(gen, 8, 8),)),
        Case("a row of zeros (it must come back as zeros, not NaN)", (zero_row,)),
        Case("each row's largest weight is negative", (negative_max,)),
        Case("float64 weights", (_weights(gen, 5, 7, torch.float64),)),
        Case("one weight (1 x 1)", (_weights(gen, 1, 1),)),
        Case("large weights (about ±1e4)", (_weights(gen, 4, 9, scale=1e4),)),
    ]


def _diagnose_quantize(got, case: Case) -> str | None:
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[1], torch.Tensor)):
        return None
    w = case.args[0]
    q, scale = got
    if isinstance(q, torch.Tensor) and q.dtype == torch.int8 and scale.shape == (w.shape[0],):
        back = q.double() * scale.double()[:, None]
        if not torch.isfinite(back).all():
            return "Dequantising your result (q · scale) gives NaN or inf"
    return None


register(Exercise(
    id="quantize_int8",
    title="Symmetric int8 quantization, one scale per output row",
    reference=_quantize_int8,
    cases=_quantize_cases,
    output_names=("q", "scale"),
    mistakes=[
        Mistake("you used one scale for the whole matrix",
                "each output row gets its own scale from its own largest |weight|: one large weight "
                "elsewhere must not round a row of small weights to zero", _wrong_one_scale),
        Mistake("you used one scale for the whole matrix",
                "each output row gets its own scale from its own largest |weight|: one large weight "
                "elsewhere must not round a row of small weights to zero", _wrong_one_scale_per_row_copy),
        Mistake("the scale divides by 255, the number of steps of an unsigned range",
                "symmetric int8 uses −127 … 127: the row's largest |weight| must land on 127", _wrong_255),
        Mistake("the scale divides by 255, the number of steps of an unsigned range",
                "symmetric int8 uses −127 … 127: the row's largest |weight| must land on 127",
                _wrong_255_symmetric),
        Mistake("the scale divides by 128",
                "+128 does not fit in int8, so the symmetric range is −127 … 127 and the "
                "row's largest |weight| maps to 127", _wrong_128),
        Mistake("the scale divides by 128",
                "+128 does not fit in int8, so the symmetric range is −127 … 127 and the "
                "row's largest |weight| maps to 127", _wrong_128_symmetric),
        Mistake("you used floor or truncation instead of rounding to the nearest integer",
                "casting with .to(torch.int8) or .int() truncates toward zero, and floor rounds "
                "down: round first, so each weight is off by at most half a step", _wrong_floor),
        Mistake("you used floor or truncation instead of rounding to the nearest integer",
                "casting with .to(torch.int8) or .int() truncates toward zero, and floor rounds "
                "down: round first, so each weight is off by at most half a step", _wrong_trunc),
        Mistake("your scales are per input column, not per output row",
                "w has shape (out, in) and each of the out rows is one output unit's weights: "
                "take the largest |weight| along dim=1, one scale per row", _wrong_per_column),
    ],
    diagnose=_diagnose_quantize,
    unstable=("Hint: a row of zeros has scale 0, and 0 / 0 is NaN: give such a row q = 0 "
              "(divide by 1 where the scale is 0)"),
    error_hints={
        "The size of tensor a": "w / scale needs the scale as a column, shape (out, 1), to divide each row "
                                "by its own scale",
    },
    passed_message="All cases pass: symmetric per-row int8, zeros kept exact.",
))
