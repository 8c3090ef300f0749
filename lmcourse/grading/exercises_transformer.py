"""Checks for lesson 06's exercises: causal self-attention, and the nucleus
(top-p) filter used when sampling from a language model.

``causal_attention`` is checked against PyTorch's
``scaled_dot_product_attention(is_causal=True)``; ``top_p_filter`` against
``lmcourse.generate.top_p_filter``.

The top-p cases draw continuous random logits, so no two tokens tie and the
nucleus is unique: every correct tie-breaking rule gives the same answer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lmcourse.generate import top_p_filter as _top_p_reference
from lmcourse.grading.checks import Case, Exercise, Mistake, register


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # Draw in float64 and cast, so a case's values do not depend on its dtype.
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


# ---------------------------------------------------------------------------
# causal_attention(q, k, v) with shapes (B, T, d) -> (B, T, d)


def _causal_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _attend(q, k, v, *, scale, keep_diagonal_offset=0, softmax_dim=-1, mask=True):
    """Attention with a knob for each classic mistake; the defaults are the right answer
    except ``scale``, which every caller gives."""
    T = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * scale
    if mask:
        # allowed[i, j] is True where query i may look at key j: j <= i + offset.
        allowed = torch.ones(T, T, dtype=torch.bool).tril(keep_diagonal_offset)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=softmax_dim) @ v


def _wrong_no_scale(q, k, v):
    return _attend(q, k, v, scale=1.0)


def _wrong_scale_by_d(q, k, v):
    return _attend(q, k, v, scale=1.0 / q.shape[-1])


def _wrong_no_mask(q, k, v):
    return _attend(q, k, v, scale=1.0 / math.sqrt(q.shape[-1]), mask=False)


def _wrong_diagonal_masked(q, k, v):
    return _attend(q, k, v, scale=1.0 / math.sqrt(q.shape[-1]), keep_diagonal_offset=-1)


def _wrong_one_future(q, k, v):
    return _attend(q, k, v, scale=1.0 / math.sqrt(q.shape[-1]), keep_diagonal_offset=1)


def _wrong_softmax_axis(q, k, v):
    return _attend(q, k, v, scale=1.0 / math.sqrt(q.shape[-1]), softmax_dim=-2)


def _wrong_mask_after_softmax(q, k, v):
    T = q.shape[-2]
    weights = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1]), dim=-1)
    return (weights * torch.ones(T, T).tril().to(q.dtype)) @ v


def _attention_cases(gen: torch.Generator) -> list[Case]:
    def qkv(batch, T, d, **kw):
        return tuple(_randn(gen, batch, T, d, **kw) for _ in range(3))
    return [
        Case("batch 2, T=5, d=4", qkv(2, 5, 4)),
        Case("float64 (B=3, T=6, d=8)", qkv(3, 6, 8, dtype=torch.float64)),
        Case("T larger than d (B=2, T=7, d=3)", qkv(2, 7, 3)),
        Case("a batch of one (B=1, T=4, d=6)", qkv(1, 4, 6)),
        Case("a single position (T=1)", qkv(2, 1, 4)),
        Case("large scores (q and k of size ±30)",
             (_randn(gen, 2, 5, 4, scale=30.0), _randn(gen, 2, 5, 4, scale=30.0),
              _randn(gen, 2, 5, 4))),
        Case("gradient (B=2, T=5, d=4)", qkv(2, 5, 4), grad=True),
    ]


def _attention_diagnose(got, case: Case) -> str | None:
    q, k, v = case.args
    got = got.detach().double()
    # Row 0 may only attend to position 0, so its output must be v[:, 0].
    if not torch.allclose(got[:, 0], v[:, 0].double(), rtol=1e-4, atol=1e-6):
        return ("The first position should attend only to itself, so its output must equal "
                "v[:, 0]: check which positions your mask hides")
    return None


register(Exercise(
    id="causal_attention",
    title="causal scaled dot-product attention",
    reference=_causal_attention,
    cases=_attention_cases,
    mistakes=[
        Mistake("the scores are not scaled",
                "divide q kᵀ by sqrt(d), d = q.shape[-1], so the scores keep a variance "
                "near 1 and the softmax does not saturate", _wrong_no_scale),
        Mistake("you divided the scores by d instead of sqrt(d)",
                "the dot product of two d-dimensional vectors with unit-variance entries "
                "has standard deviation sqrt(d); divide by that", _wrong_scale_by_d),
        Mistake("there is no causal mask: every position sees the future",
                "before the softmax, set the score of every key j > i to -inf "
                "(torch.tril or torch.triu builds the pattern)", _wrong_no_mask),
        Mistake("your mask also hides the diagonal, so a position cannot see itself (and "
                "the first position sees nothing at all)",
                "position i may attend to keys 0..i, itself included: hide only j > i",
                _wrong_diagonal_masked),
        Mistake("your mask lets each position see one future position",
                "hide every key j > i; check the diagonal offset of tril/triu",
                _wrong_one_future),
        Mistake("the softmax runs over the wrong axis (over the queries)",
                "each query's weights over the keys must sum to 1: softmax over the last "
                "axis of the (B, T, T) score matrix", _wrong_softmax_axis),
        Mistake("you masked after the softmax, so the remaining weights no longer sum to 1",
                "mask the scores with -inf before the softmax; the softmax then "
                "renormalises over the allowed keys", _wrong_mask_after_softmax),
    ],
    unstable=("Hint: mask with float('-inf') (or masked_fill) before torch.softmax; do not "
              "exponentiate the raw scores yourself, and never let a row be fully masked"),
    diagnose=_attention_diagnose,
    passed_message="All cases pass: your attention matches "
                   "F.scaled_dot_product_attention(is_causal=True).",
))


# ---------------------------------------------------------------------------
# top_p_filter(logits (B, V), p) -> logits with the tokens outside the nucleus at -inf


def _top_p_filter(logits, p):
    return _top_p_reference(logits, p)


def _sorted_probs(logits):
    order = logits.argsort(dim=-1, descending=True)
    return order, torch.softmax(torch.gather(logits, -1, order), dim=-1)


def _apply_sorted_keep(logits, order, keep_sorted):
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def _wrong_top_p_drop_crossing(logits, p):
    order, probs = _sorted_probs(logits)
    return _apply_sorted_keep(logits, order, probs.cumsum(-1) < p)


def _wrong_top_p_unsorted(logits, p):
    probs = torch.softmax(logits, dim=-1)
    return logits.masked_fill(~(probs.cumsum(-1) < p), float("-inf"))


def _wrong_top_p_unsorted_before(logits, p):
    probs = torch.softmax(logits, dim=-1)
    return logits.masked_fill(~(probs.cumsum(-1) - probs < p), float("-inf"))


def _wrong_top_p_whole_batch(logits, p):
    flat = logits.reshape(1, -1)
    return _top_p_reference(flat, p).reshape(logits.shape)


def _wrong_top_p_mask_not_unsorted(logits, p):
    order, probs = _sorted_probs(logits)
    keep_sorted = probs.cumsum(-1) - probs < p
    return logits.masked_fill(~keep_sorted, float("-inf"))


def _wrong_top_p_zero(logits, p):
    kept = torch.isfinite(_top_p_reference(logits, p))
    return logits.masked_fill(~kept, 0.0)


def _wrong_top_p_float_rounding(logits, p):
    # Right in exact arithmetic; in float32 the running total reaches 1.0 before the
    # last token, so p = 1 drops the tail.
    order, probs = _sorted_probs(logits.float())
    return _apply_sorted_keep(logits, order, probs.cumsum(-1) - probs < p)


def _top_p_cases(gen: torch.Generator) -> list[Case]:
    peaked = _randn(gen, 2, 12, scale=3.0)
    peaked[:, 5] = 40.0  # the tail's probabilities are ~1e-17: float32 sums reach 1 early
    return [
        Case("batch 3, V=10, p=0.9", (_randn(gen, 3, 10, scale=2.0), 0.9)),
        Case("p=0.5, rows with different orders", (_randn(gen, 4, 8, scale=2.0), 0.5)),
        Case("float64 logits, p=0.75", (_randn(gen, 3, 16, scale=1.5, dtype=torch.float64), 0.75)),
        Case("a batch of one (1×20), p=0.3", (_randn(gen, 1, 20, scale=2.0), 0.3)),
        Case("p=0.01: only the most probable token", (_randn(gen, 3, 6), 0.01)),
        Case("one dominant token per row, p=0.95",
             (_randn(gen, 3, 9) + 8.0 * F.one_hot(torch.tensor([2, 7, 0]), 9), 0.95)),
        Case("large logits (±1000), p=0.8", (_randn(gen, 2, 7, scale=1000.0), 0.8)),
        Case("p=1 keeps every token, even a tail of tiny probabilities", (peaked, 1.0)),
    ]


def _top_p_diagnose(got, case: Case) -> str | None:
    logits = case.args[0]
    got = got.detach()
    kept = torch.isfinite(got)
    if not kept.any(dim=-1).all():
        return "Some row has no token left: the most probable token is always kept"
    if not torch.equal(got[kept], logits[kept]):
        return "The kept tokens must keep their logits unchanged"
    return None


register(Exercise(
    id="top_p_filter",
    title="nucleus (top-p) filter",
    reference=_top_p_filter,
    cases=_top_p_cases,
    mistakes=[
        Mistake("you dropped the token whose probability carries the total across p",
                "the nucleus is the smallest set whose total is >= p, so it includes the "
                "crossing token: keep a token while the mass of the tokens ranked before "
                "it is still below p", _wrong_top_p_drop_crossing),
        Mistake("with p = 1 some tokens were dropped: in floating point the running total "
                "reaches 1.0 before the last token",
                "with p >= 1 return the logits unchanged (a copy), without any sums",
                _wrong_top_p_float_rounding),
        Mistake("you accumulated the probabilities in vocabulary order, not sorted from the "
                "most probable down", "sort the probabilities in descending order first, "
                "then map the decision back to the original token positions",
                _wrong_top_p_unsorted),
        Mistake("you accumulated the probabilities in vocabulary order, not sorted from the "
                "most probable down", "sort the probabilities in descending order first, "
                "then map the decision back to the original token positions",
                _wrong_top_p_unsorted_before),
        Mistake("you treated the whole batch as one distribution",
                "each row is its own distribution: softmax, sort and cumulative sum along "
                "the last axis (dim=-1) only", _wrong_top_p_whole_batch),
        Mistake("you applied the keep/drop decisions, computed in sorted order, to the "
                "logits in their original order",
                "scatter the sorted mask back to token positions (mask.scatter(-1, order, "
                "sorted_mask)) before using it", _wrong_top_p_mask_not_unsorted),
        Mistake("you set the removed tokens to 0; a logit of 0 still has probability",
                "set them to float('-inf'), which softmax turns into probability 0",
                _wrong_top_p_zero),
    ],
    diagnose=_top_p_diagnose,
    passed_message="All cases pass: the smallest nucleus with total probability >= p.",
))
