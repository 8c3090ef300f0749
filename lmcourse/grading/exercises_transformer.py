"""Checks for lesson 06's exercises: causal self-attention, multi-head attention, one
decode step with a KV cache, the nucleus (top-p) filter, and one step of beam search.

``causal_attention`` is checked against PyTorch's
``scaled_dot_product_attention(is_causal=True)``; ``multi_head_attention`` and
``kv_cache_decode_step`` against the same kernel, in the layout of the course GPT's
attention layer (``lmcourse.models.gpt``, tests/test_grading_transformer.py says they
agree); ``top_p_filter`` against ``lmcourse.generate.top_p_filter``;
``beam_search_step`` ranks candidates as ``lmcourse.generate.beam_search`` does.

The top-p cases draw continuous random logits, so no two tokens tie and the
nucleus is unique: every correct tie-breaking rule gives the same answer. Beam
search's ties are part of its specification (the lower flat index first), and one
case tests them.
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


# ---------------------------------------------------------------------------
# multi_head_attention(x (B, T, C), W_qkv (C, 3C), W_o (C, C), n_head, causal=True) -> (B, T, C)
#
# The layout is the course GPT's (lmcourse.models.gpt.CausalSelfAttention with
# bias=False): the columns of x @ W_qkv are [queries | keys | values], C each, and
# head h owns columns h*hs .. (h+1)*hs - 1 of each block.


def _to_heads(t: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, n_head, T, head_size): a view per head, positions kept apart."""
    B, T, C = t.shape
    return t.view(B, T, n_head, C // n_head).transpose(1, 2)


def _from_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, n_head, T, head_size) -> (B, T, C): the heads side by side, head 0 first."""
    B, H, T, hs = y.shape
    return y.transpose(1, 2).reshape(B, T, H * hs)


def _multi_head_attention(x, W_qkv, W_o, n_head, causal=True):
    C = x.shape[-1]
    q, k, v = (_to_heads(t, n_head) for t in (x @ W_qkv).split(C, dim=-1))
    return _from_heads(F.scaled_dot_product_attention(q, k, v, is_causal=causal)) @ W_o


def _mha(x, W_qkv, W_o, n_head, causal=True, *, split="heads", scale="head", project=True,
         mask="before", softmax_dim=-1, merge="heads"):
    """Multi-head attention with a knob for each classic mistake; the defaults are right."""
    B, T, C = x.shape
    hs = C // n_head
    if split == "interleaved":  # q, k, v read as (n_head, 3, hs) blocks instead of (3, C)
        q, k, v = (x @ W_qkv).view(B, T, n_head, 3, hs).permute(3, 0, 2, 1, 4)
    else:
        q, k, v = (x @ W_qkv).split(C, dim=-1)
        if split == "reshape":  # a plain view to (B, n_head, T, hs): positions and channels mix
            q, k, v = (t.reshape(B, n_head, T, hs) for t in (q, k, v))
        else:
            q, k, v = (_to_heads(t, n_head) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs if scale == "head" else C)
    masked = causal if mask != "always" else True
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if masked and mask in ("before", "always"):
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=softmax_dim)
    if masked and mask == "after":
        weights = weights * allowed.to(weights.dtype)
    y = weights @ v
    if split == "reshape":
        y = y.reshape(B, T, C)  # undoing the same plain view
    elif merge == "hs-major":  # (B, T, hs, n_head): the heads' columns interleaved
        y = y.permute(0, 2, 3, 1).reshape(B, T, C)
    elif merge == "reversed":
        y = _from_heads(y.flip(1))
    else:
        y = _from_heads(y)
    return y @ W_o if project else y


def _mha_cases(gen: torch.Generator) -> list[Case]:
    def args(B, T, C, n_head, *, dtype=torch.float32, x_scale=1.0):
        x = _randn(gen, B, T, C, scale=x_scale, dtype=dtype)
        W_qkv = _randn(gen, C, 3 * C, scale=C ** -0.5, dtype=dtype)
        W_o = _randn(gen, C, C, scale=C ** -0.5, dtype=dtype)
        return x, W_qkv, W_o, n_head
    return [
        Case("B=2, T=5, C=8, 2 heads", args(2, 5, 8, 2)),
        Case("float64, B=2, T=6, C=12, 3 heads", args(2, 6, 12, 3, dtype=torch.float64)),
        Case("4 heads of size 2 (B=1, T=7, C=8)", args(1, 7, 8, 4)),
        Case("one head (C=6): plain attention", args(2, 5, 6, 1)),
        Case("causal=False, as in an encoder (B=2, T=5, C=8, 2 heads)", args(2, 5, 8, 2),
             {"causal": False}),
        Case("a single position (T=1, C=8, 2 heads)", args(3, 1, 8, 2)),
        Case("large inputs (x of size ±10, T=6, C=8, 2 heads)", args(2, 6, 8, 2, x_scale=10.0)),
        Case("gradient (B=2, T=4, C=8, 2 heads)", args(2, 4, 8, 2), grad=True),
    ]


def _mha_diagnose(got, case: Case) -> str | None:
    x, W_qkv, W_o, n_head = case.args
    if not case.kwargs.get("causal", True):
        return None
    C = x.shape[-1]
    # Position 0 sees only itself: its output is its own value vector, projected.
    first = (x[:, 0] @ W_qkv[:, 2 * C:] @ W_o).double()
    if not torch.allclose(got.detach()[:, 0].double(), first, rtol=1e-4, atol=1e-5):
        return ("With causal=True the first position attends only to itself, so y[:, 0] must "
                "equal its own value vector times W_o: check the mask, the head split and the "
                "projection")
    return None


_MHA_MISTAKES = [
    Mistake("you split the heads with a plain reshape (or view) of (B, T, C) to (B, n_head, T, "
            "head_size), which mixes positions and channels: a 'head' then holds pieces of "
            "several positions",
            "the memory of (B, T, C) is position by position; first expose the heads as their own "
            "axis next to head_size, then move that axis in front of T (and back before merging)",
            lambda *a, **kw: _mha(*a, **kw, split="reshape")),
    Mistake("you read q, k and v from x @ W_qkv in the wrong layout (interleaved per head)",
            "the columns of x @ W_qkv are three blocks of C: all the queries, then all the keys, "
            "then all the values; each block is then cut into heads",
            lambda *a, **kw: _mha(*a, **kw, split="interleaved")),
    Mistake("you scaled the scores by sqrt(C), the model width, instead of sqrt(head_size)",
            "each head's dot products run over head_size = C // n_head dimensions, so their "
            "standard deviation grows like sqrt(head_size)", lambda *a, **kw: _mha(*a, **kw, scale="C")),
    Mistake("there is no output projection: you return the heads' outputs side by side as they are",
            "after merging the heads, multiply by W_o (C, C): it mixes what the heads found",
            lambda *a, **kw: _mha(*a, **kw, project=False)),
    Mistake("you masked after the softmax, so the remaining weights no longer sum to 1",
            "hide the future with -inf on the scores, before the softmax",
            lambda *a, **kw: _mha(*a, **kw, mask="after")),
    Mistake("the softmax runs over the wrong axis (over the queries)",
            "each query's weights over the keys must sum to 1: the keys are the last axis "
            "of the (B, n_head, T, T) scores", lambda *a, **kw: _mha(*a, **kw, softmax_dim=-2)),
    Mistake("you put the heads' outputs back together in the wrong order",
            "head h's output must fill columns h*head_size .. (h+1)*head_size - 1 of the merged "
            "(B, T, C) tensor, head 0 first, before W_o",
            lambda *a, **kw: _mha(*a, **kw, merge="hs-major")),
    Mistake("you put the heads' outputs back together in the wrong order",
            "head h's output must fill columns h*head_size .. (h+1)*head_size - 1 of the merged "
            "(B, T, C) tensor, head 0 first, before W_o",
            lambda *a, **kw: _mha(*a, **kw, merge="reversed")),
    Mistake("there is no causal mask when causal=True: every position sees the future",
            "with causal=True, position i may attend to keys 0..i only",
            lambda *a, **kw: _mha(*a, **{**kw, "causal": False})),
    Mistake("you applied the causal mask even with causal=False",
            "causal=False (an encoder, or a bidirectional model) lets every position see every key",
            lambda *a, **kw: _mha(*a, **kw, mask="always")),
]

register(Exercise(
    id="multi_head_attention",
    title="multi-head (causal) self-attention",
    reference=_multi_head_attention,
    cases=_mha_cases,
    mistakes=_MHA_MISTAKES,
    unstable=("Hint: mask with float('-inf') before torch.softmax, and let softmax do the "
              "exponentials"),
    diagnose=_mha_diagnose,
    error_hints={
        "shape '[": ("a view or reshape must keep the number of elements: "
                     "C = n_head * head_size, head_size = C // n_head"),
        "view size is not compatible": ("view needs contiguous memory, and slices (split, chunk) "
                                        "and transposed tensors are not: use .reshape, or "
                                        ".contiguous().view"),
    },
    passed_message="All cases pass: your multi-head attention matches the course GPT's "
                   "attention layer.",
))


# ---------------------------------------------------------------------------
# kv_cache_decode_step(x_new (B, 1, C), cache_k, cache_v (B, n_head, t, hs), W_qkv, W_o, n_head)
#   -> (y (B, 1, C), new_k, new_v (B, n_head, t + 1, hs))


def _kv_heads(x_new, W_qkv, n_head):
    C = x_new.shape[-1]
    return [_to_heads(t, n_head) for t in (x_new @ W_qkv).split(C, dim=-1)]


def _kv_cache_decode_step(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _kv_heads(x_new, W_qkv, n_head)
    new_k, new_v = torch.cat([cache_k, k], dim=2), torch.cat([cache_v, v], dim=2)
    # The new token is the last position, so every cached key is its past: no mask.
    y = F.scaled_dot_product_attention(q, new_k, new_v)
    return _from_heads(y) @ W_o, new_k, new_v


def _attend_heads(q, k, v, W_o, *, is_causal=False):
    return _from_heads(F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)) @ W_o


def _wrong_kv_only_new(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _kv_heads(x_new, W_qkv, n_head)
    return _attend_heads(q, k, v, W_o), torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2)


def _wrong_kv_not_appended(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    y, _, _ = _kv_cache_decode_step(x_new, cache_k, cache_v, W_qkv, W_o, n_head)
    return y, cache_k, cache_v


def _wrong_kv_new_twice(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _kv_heads(x_new, W_qkv, n_head)
    new_k, new_v = torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2)
    y = _attend_heads(q, torch.cat([new_k, k], 2), torch.cat([new_v, v], 2), W_o)
    return y, new_k, new_v


def _wrong_kv_causal_mask(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _kv_heads(x_new, W_qkv, n_head)
    new_k, new_v = torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2)
    # is_causal aligns the triangle to the top-left corner: one query sees key 0 only.
    return _attend_heads(q, new_k, new_v, W_o, is_causal=True), new_k, new_v


def _wrong_kv_not_projected(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    eye = torch.eye(W_o.shape[0], dtype=W_o.dtype)
    return _kv_cache_decode_step(x_new, cache_k, cache_v, W_qkv, eye, n_head)


def _kv_cases(gen: torch.Generator) -> list[Case]:
    def args(B, t, C, n_head, *, dtype=torch.float32):
        hs = C // n_head
        x_new = _randn(gen, B, 1, C, dtype=dtype)
        cache_k, cache_v = (_randn(gen, B, n_head, t, hs, dtype=dtype) for _ in range(2))
        W_qkv = _randn(gen, C, 3 * C, scale=C ** -0.5, dtype=dtype)
        W_o = _randn(gen, C, C, scale=C ** -0.5, dtype=dtype)
        return x_new, cache_k, cache_v, W_qkv, W_o, n_head
    return [
        Case("B=2, 5 cached positions, C=8, 2 heads", args(2, 5, 8, 2)),
        Case("float64, B=3, 4 cached, C=12, 3 heads", args(3, 4, 12, 3, dtype=torch.float64)),
        Case("an empty cache: the first token (t=0)", args(2, 0, 8, 2)),
        Case("one cached position (t=1, C=8, 4 heads)", args(2, 1, 8, 4)),
        Case("a batch of one, one head (t=6, C=4)", args(1, 6, 4, 1)),
        Case("a long cache (t=40, C=8, 2 heads)", args(2, 40, 8, 2)),
    ]


register(Exercise(
    id="kv_cache_decode_step",
    title="one decode step of attention with a KV cache",
    reference=_kv_cache_decode_step,
    cases=_kv_cases,
    mistakes=[
        Mistake("the new token attends only to itself: the cached keys and values are left out "
                "of its attention",
                "the cache is there to be read: the new query scores every cached key and its "
                "own", _wrong_kv_only_new),
        Mistake("you returned the old cache: the new token's key and value were not appended",
                "the next step needs this token's key and value too, so the returned cache "
                "holds t + 1 positions", _wrong_kv_not_appended),
        Mistake("the new token's key and value are counted twice in its attention (appended to "
                "the cache, then added once more)",
                "attend over the cache with the new position appended exactly once: t + 1 keys",
                _wrong_kv_new_twice),
        Mistake("a causal mask hides the past: with one query and t + 1 keys, a triangle "
                "aligned to the top-left corner (is_causal=True, or tril of a (1, t + 1) "
                "matrix) lets the new token see position 0 only",
                "the new token is the last position, so every cached key is in its past",
                _wrong_kv_causal_mask),
        Mistake("there is no output projection: you return the heads' outputs side by side",
                "after merging the heads, multiply by W_o, as in the full attention layer",
                _wrong_kv_not_projected),
    ],
    error_hints={
        "Sizes of tensors must match": (
            "the cache grows along its time axis: (B, n_head, t, head_size) and the new "
            "(B, n_head, 1, head_size) make (B, n_head, t + 1, head_size); check the dim you "
            "concatenate along and the shape of the new key"),
    },
    output_names=("y", "new_k", "new_v"),
    inplace_message=(
        "your function changed the caller's cache (or x_new) in place. Hint: an old cache must "
        "stay valid (beam search continues several texts from one cache, and a caller may retry "
        "a step): return new tensors, which torch.cat makes, and leave the inputs untouched"),
    passed_message="All cases pass: one cached decode step equals the full attention's last "
                   "position.",
))


# ---------------------------------------------------------------------------
# beam_search_step(scores (K,), next_log_probs (K, V), beam_width)
#   -> (new_scores (beam_width,), parent (beam_width,), token (beam_width,))
#
# The candidates are ranked as lmcourse.generate.beam_search ranks them: by total
# log-probability, best first, ties to the lower flat index beam * V + token.


def _rank(candidates: torch.Tensor, width: int) -> torch.Tensor:
    """The flat indices of the ``width`` best candidates, best first, ties to the lower index."""
    return torch.sort(candidates, descending=True, stable=True).indices[:width]


def _beam_search_step(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[-1]
    candidates = (scores[:, None] + next_log_probs).reshape(-1)  # flat index = beam * V + token
    best = _rank(candidates, beam_width)
    return candidates[best], best // V, best % V


def _wrong_beam_per_beam(scores, next_log_probs, beam_width):
    # Each beam contributes its own best ceil(width / K) tokens, then the best of those.
    K, V = next_log_probs.shape
    per_beam = -(-beam_width // K)
    totals = scores[:, None] + next_log_probs
    tokens = torch.cat([_rank(row, per_beam) for row in totals])
    parents = torch.arange(K).repeat_interleave(per_beam)
    picked = totals[parents, tokens]
    best = _rank(picked, beam_width)
    return picked[best], parents[best], tokens[best]


def _wrong_beam_multiplied(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[-1]
    candidates = (scores[:, None] * next_log_probs).reshape(-1)
    best = _rank(candidates, beam_width)
    return candidates[best], best // V, best % V


def _wrong_beam_no_own_score(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[-1]
    candidates = next_log_probs.reshape(-1)
    best = _rank(candidates, beam_width)
    return candidates[best], best // V, best % V


def _wrong_beam_averaged(scores, next_log_probs, beam_width):
    new_scores, parent, token = _beam_search_step(scores, next_log_probs, beam_width)
    return new_scores / 2, parent, token


def _wrong_beam_swapped_decode(scores, next_log_probs, beam_width):
    new_scores, parent, token = _beam_search_step(scores, next_log_probs, beam_width)
    V = next_log_probs.shape[-1]
    flat = parent * V + token
    return new_scores, flat % V, flat // V


def _wrong_beam_decode_by_k(scores, next_log_probs, beam_width):
    new_scores, parent, token = _beam_search_step(scores, next_log_probs, beam_width)
    K, V = next_log_probs.shape
    flat = parent * V + token
    return new_scores, flat // K, flat % K


def _wrong_beam_lowest(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[-1]
    candidates = (scores[:, None] + next_log_probs).reshape(-1)
    best = torch.sort(candidates, stable=True).indices[:beam_width]
    return candidates[best], best // V, best % V


def _beam_cases(gen: torch.Generator) -> list[Case]:
    def log_probs(K, V, *, dtype=torch.float32, scale=2.0):
        return torch.log_softmax(_randn(gen, K, V, scale=scale, dtype=torch.float64), -1).to(dtype)

    def beams(K, *, dtype=torch.float32):
        # Scores of live beams: totals of a few log-probabilities, best first.
        return (-_randn(gen, K, dtype=torch.float64).abs() * 3 - 1).sort(descending=True).values.to(dtype)

    banned = log_probs(3, 6)
    banned[:, [1, 4]] = float("-inf")  # tokens a constraint forbids
    twins = log_probs(1, 5).repeat(2, 1)  # two beams with the same score and distribution
    return [
        Case("the first step: one beam (K=1), V=6, width 3", (torch.zeros(1), log_probs(1, 6), 3)),
        Case("K=3 beams, V=8, width 3", (beams(3), log_probs(3, 8), 3)),
        Case("float64, K=4, V=10, width 4",
             (beams(4, dtype=torch.float64), log_probs(4, 10, dtype=torch.float64), 4)),
        Case("a strong beam keeps several children (K=3, V=5, width 3)",
             (torch.tensor([-0.5, -9.0, -9.5]), log_probs(3, 5, scale=0.5), 3)),
        Case("width larger than K (K=2, V=7, width 5)", (beams(2), log_probs(2, 7), 5)),
        Case("width 1: greedy (K=4, V=6)", (beams(4), log_probs(4, 6), 1)),
        Case("every candidate kept (K=2, V=3, width 6)", (beams(2), log_probs(2, 3), 6)),
        Case("banned tokens (-inf log-probabilities), K=3, V=6, width 4", (beams(3), banned, 4)),
        Case("ties: two identical beams (K=2, V=5, width 4)", (torch.tensor([-1.5, -1.5]), twins, 4)),
    ]


def _beam_diagnose(got, case: Case) -> str | None:
    expected = _beam_search_step(*case.args)
    new_scores, parent, token = (t.detach() for t in got)
    if torch.equal(parent, expected[1]) and torch.equal(token, expected[2]):
        ratio = new_scores.double() / expected[0].double()
        finite = torch.isfinite(ratio)
        if finite.any() and torch.allclose(ratio[finite], ratio[finite][0].expand_as(ratio[finite])):
            return ("The right candidates, but the scores are scaled: a new score is the beam's "
                    "total log-probability, not normalised by length (all beams have the same "
                    "length here)")
    if torch.equal(new_scores.sort().values, expected[0].sort().values):
        return ("Your scores are the right ones: check the order (best first; equal scores go "
                "to the lower flat index beam * V + token; torch.topk promises no order among "
                "equal values) and how you turn a flat index into (beam, token)")
    return None


register(Exercise(
    id="beam_search_step",
    title="one step of beam search",
    reference=_beam_search_step,
    cases=_beam_cases,
    mistakes=[
        Mistake("you kept the best tokens of each beam separately",
                "the survivors are the best beam_width of all K * V (beam, token) candidates "
                "ranked together: a strong beam may have several children and a weak one none",
                _wrong_beam_per_beam),
        Mistake("you multiplied the log-probabilities",
                "probabilities multiply, so log-probabilities add", _wrong_beam_multiplied),
        Mistake("the candidates' scores leave out the score of the beam they grow from",
                "a candidate's score is the log-probability of the whole continuation: its "
                "beam's score plus the new token's log-probability", _wrong_beam_no_own_score),
        Mistake("you averaged (length-normalised) the scores",
                "all beams here have the same length, so the task asks for the total "
                "log-probability", _wrong_beam_averaged),
        Mistake("the beam and token of a flat index are swapped",
                "in a (K, V) tensor flattened row by row, flat index i is row i // V, column "
                "i % V", _wrong_beam_swapped_decode),
        Mistake("you decoded the flat index with K, the number of beams, instead of V",
                "each beam's row holds V candidates, so the row length to divide by is V",
                _wrong_beam_decode_by_k),
        Mistake("you kept the lowest scores",
                "log-probabilities are <= 0; the most probable candidate has the largest "
                "(least negative) score", _wrong_beam_lowest),
    ],
    diagnose=_beam_diagnose,
    output_names=("new_scores", "parent", "token"),
    passed_message="All cases pass: your step ranks the candidates as "
                   "lmcourse.generate.beam_search does.",
))
