"""The attention, top-p and modified-precision checks: references agree with the
standard implementations, every correct form passes, the classic mistakes are
named."""
import math
from collections import Counter

import pytest
import torch

from grading_helpers import assert_fails_naming, run

from lmcourse.grading.exercises_eval import _modified_precision
from lmcourse.grading.exercises_transformer import _causal_attention
from lmcourse.metrics import bleu


pytestmark = pytest.mark.usefixtures("home")


# ---------------------------------------------------------------------------
# The references


def test_attention_reference_is_softmax_of_masked_scaled_scores():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 5, dtype=torch.float64).unbind(0)
    scores = q @ k.transpose(-2, -1) / math.sqrt(5)
    scores = scores + torch.full((4, 4), float("-inf"), dtype=torch.float64).triu(1)
    torch.testing.assert_close(_causal_attention(q, k, v), torch.softmax(scores, -1) @ v)


def test_modified_precision_reference_agrees_with_bleu_on_one_sentence():
    # With one sentence and 4 clipped matches of every order, BLEU's unigram part is exact:
    # a perfect hypothesis scores 100, and p_1 of a repeated word is the textbook 2/7.
    hyp, refs = "the the the the the the the".split(), ["the cat is on the mat".split()]
    assert _modified_precision(hyp, refs, 1) == pytest.approx(2 / 7)
    sentence = "a dog sat on the mat today".split()
    assert all(_modified_precision(sentence, [sentence], n) == 1.0 for n in range(1, 5))
    assert bleu([" ".join(sentence)], [" ".join(sentence)]) == pytest.approx(100.0)


# ---------------------------------------------------------------------------
# Every correct form passes


def attention_einsum(q, k, v):
    T, d = q.shape[-2:]
    scores = torch.einsum("btd,bsd->bts", q, k) / d ** 0.5
    mask = torch.tril(torch.ones(T, T)) == 0
    return torch.einsum("bts,bsd->btd", scores.masked_fill(mask, -torch.inf).softmax(-1), v)


def attention_additive_mask_scaled_q(q, k, v):
    T, d = q.shape[-2:]
    bias = torch.zeros(T, T, dtype=q.dtype).masked_fill(
        torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax((q / math.sqrt(d)) @ k.mT + bias, dim=2) @ v


def attention_renormalised_after_softmax(q, k, v):
    # Masking after the softmax is fine when the rows are renormalised (and stable here
    # because the row maximum is subtracted over the allowed keys only).
    T, d = q.shape[-2:]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    scores = (q @ k.mT / math.sqrt(d)).masked_fill(~allowed, float("-inf"))
    w = (scores - scores.amax(-1, keepdim=True)).exp() * allowed
    return (w / w.sum(-1, keepdim=True)) @ v


def top_p_sort_scatter(logits, p):
    if p >= 1:
        return logits.clone()
    sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
    cum = torch.cumsum(torch.softmax(sorted_logits.double(), -1), -1)
    remove = cum > p
    remove[..., 1:] = remove[..., :-1].clone()  # shift right: keep the crossing token
    remove[..., 0] = False
    out = logits.clone()
    out[remove.scatter(-1, idx, remove)] = float("-inf")
    return out


def top_p_row_loop(logits, p):
    out = torch.full_like(logits, float("-inf"))
    for b, row in enumerate(logits):
        probs = row.double().softmax(0)
        total = 0.0
        for i in probs.argsort(descending=True).tolist():
            out[b, i] = row[i]
            total += probs[i].item()
            if total >= p and p < 1:
                break
    return out


def precision_counter_and(hypothesis, references, n):
    grams = lambda t: Counter(zip(*(t[i:] for i in range(n))))  # noqa: E731
    hyp = grams(hypothesis)
    best = Counter()
    for r in references:
        best |= grams(r)
    total = sum(hyp.values())
    return sum((hyp & best).values()) / total if total else 0.0


def precision_plain_loops(hypothesis, references, n):
    hyp = [tuple(hypothesis[i:i + n]) for i in range(len(hypothesis) - n + 1)]
    if not hyp:
        return 0.0
    matched = 0
    for g in set(hyp):
        limit = max(sum(1 for i in range(len(r) - n + 1) if tuple(r[i:i + n]) == g)
                    for r in references)
        matched += min(hyp.count(g), limit)
    return matched / len(hyp)


CORRECT = [
    ("causal_attention", attention_einsum),
    ("causal_attention", attention_additive_mask_scaled_q),
    ("causal_attention", attention_renormalised_after_softmax),
    ("top_p_filter", top_p_sort_scatter), ("top_p_filter", top_p_row_loop),
    ("modified_precision", precision_counter_and), ("modified_precision", precision_plain_loops),
]


@pytest.mark.parametrize("exercise, answer", CORRECT, ids=[f.__name__ for _, f in CORRECT])
def test_every_correct_form_passes(exercise, answer):
    result = run(exercise, answer)
    assert result.passed, str(result)


# ---------------------------------------------------------------------------
# The classic mistakes, written as a learner would, are named


def _scores(q, k):
    return q @ k.transpose(-2, -1)


def _tril(T):
    return torch.tril(torch.ones(T, T))


def attn_no_scale(q, k, v):
    T = q.shape[1]
    return _scores(q, k).masked_fill(_tril(T) == 0, float("-inf")).softmax(-1) @ v


def attn_scale_by_d(q, k, v):
    T, d = q.shape[1:]
    return (_scores(q, k) / d).masked_fill(_tril(T) == 0, float("-inf")).softmax(-1) @ v


def attn_no_mask(q, k, v):
    return (_scores(q, k) / q.shape[-1] ** 0.5).softmax(-1) @ v


def attn_mask_diagonal(q, k, v):
    T = q.shape[1]
    mask = torch.ones(T, T, dtype=torch.bool).triu(0)  # off by one: hides j == i too
    return (_scores(q, k) / q.shape[-1] ** 0.5).masked_fill(mask, float("-inf")).softmax(-1) @ v


def attn_one_future(q, k, v):
    T = q.shape[1]
    mask = torch.ones(T, T, dtype=torch.bool).triu(2)
    return (_scores(q, k) / q.shape[-1] ** 0.5).masked_fill(mask, float("-inf")).softmax(-1) @ v


def attn_softmax_axis(q, k, v):
    T = q.shape[1]
    s = (_scores(q, k) / q.shape[-1] ** 0.5).masked_fill(_tril(T) == 0, float("-inf"))
    return torch.softmax(s, dim=1) @ v


def attn_mask_after_softmax(q, k, v):
    T = q.shape[1]
    return (_scores(q, k) / q.shape[-1] ** 0.5).softmax(-1) * _tril(T).to(q.dtype) @ v


def top_p_drop_crossing(logits, p):
    probs, idx = logits.softmax(-1).sort(-1, descending=True)
    keep = (probs.cumsum(-1) < p).scatter(-1, idx, probs.cumsum(-1) < p)
    return torch.where(keep, logits, torch.tensor(float("-inf")))


def top_p_unsorted(logits, p):
    cum = logits.softmax(-1).cumsum(-1)
    return logits.masked_fill(cum >= p, float("-inf"))


def top_p_whole_batch(logits, p):
    if p >= 1:  # right about p = 1, so the one mistake left is the shared distribution
        return logits.clone()
    flat = logits.flatten()
    probs, idx = flat.softmax(0).sort(descending=True)
    keep_sorted = probs.cumsum(0) - probs < p
    keep = torch.zeros_like(keep_sorted)
    keep[idx] = keep_sorted
    return flat.masked_fill(~keep, float("-inf")).view_as(logits)


def top_p_zero(logits, p):
    if p >= 1:
        return logits.clone()
    probs, idx = logits.softmax(-1).sort(-1, descending=True)
    keep_sorted = probs.cumsum(-1) - probs < p
    return logits * keep_sorted.scatter(-1, idx, keep_sorted)


def top_p_no_special_case(logits, p):
    probs, idx = logits.softmax(-1).sort(-1, descending=True)
    keep_sorted = probs.cumsum(-1) - probs < p
    return logits.masked_fill(~keep_sorted.scatter(-1, idx, keep_sorted), float("-inf"))


def _grams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def prec_unclipped(hypothesis, references, n):
    hyp = _grams(hypothesis, n)
    refs = [_grams(r, n) for r in references]
    total = sum(hyp.values())
    return sum(c for g, c in hyp.items() if any(g in r for r in refs)) / total if total else 0.0


def prec_sum_over_refs(hypothesis, references, n):
    hyp = _grams(hypothesis, n)
    limit = Counter()
    for r in references:
        limit.update(_grams(r, n))
    total = sum(hyp.values())
    return sum(min(c, limit[g]) for g, c in hyp.items()) / total if total else 0.0


def prec_reference_length(hypothesis, references, n):
    hyp = _grams(hypothesis, n)
    limit = Counter()
    for r in references:
        limit |= _grams(r, n)
    total = sum(_grams(references[0], n).values())
    return sum(min(c, limit[g]) for g, c in hyp.items()) / total if hyp and total else 0.0


def prec_unique(hypothesis, references, n):
    hyp = set(_grams(hypothesis, n))
    refs = set().union(*(_grams(r, n) for r in references))
    return len(hyp & refs) / len(hyp) if hyp else 0.0


def prec_crashes_when_empty(hypothesis, references, n):
    hyp = _grams(hypothesis, n)
    limit = Counter()
    for r in references:
        limit |= _grams(r, n)
    return sum(min(c, limit[g]) for g, c in hyp.items()) / sum(hyp.values())


WRONG = [
    ("causal_attention", attn_no_scale, "not scaled"),
    ("causal_attention", attn_scale_by_d, "instead of sqrt(d)"),
    ("causal_attention", attn_no_mask, "no causal mask"),
    ("causal_attention", attn_mask_diagonal, "also hides the diagonal"),
    ("causal_attention", attn_one_future, "one future position"),
    ("causal_attention", attn_softmax_axis, "wrong axis"),
    ("causal_attention", attn_mask_after_softmax, "masked after the softmax"),
    ("top_p_filter", top_p_drop_crossing, "crossing"),
    ("top_p_filter", top_p_unsorted, "vocabulary order"),
    ("top_p_filter", top_p_whole_batch, "whole batch as one distribution"),
    ("top_p_filter", top_p_zero, "to 0"),
    ("top_p_filter", top_p_no_special_case, "with p = 1"),
    ("modified_precision", prec_unclipped, "not clipped"),
    ("modified_precision", prec_sum_over_refs, "total count over all references"),
    ("modified_precision", prec_reference_length, "n-grams in a reference"),
    ("modified_precision", prec_unique, "distinct n-grams"),
    ("modified_precision", prec_crashes_when_empty, "precision 0.0 by convention"),
]


@pytest.mark.parametrize("exercise, answer, keyword", WRONG,
                         ids=[f.__name__ for _, f, _ in WRONG])
def test_classic_mistakes_are_named(exercise, answer, keyword):
    assert_fails_naming(exercise, answer, keyword)
