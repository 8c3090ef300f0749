"""The attention, multi-head, KV-cache, top-p, beam-search and modified-precision
checks: references agree with the standard implementations and with the course's
package, every correct form passes, the classic mistakes are named."""
import math
from collections import Counter

import pytest
import torch

from grading_helpers import assert_fails_naming, run

from lmcourse.grading.exercises_eval import _modified_precision
from lmcourse.generate import beam_search
from lmcourse.grading.exercises_transformer import (
    _beam_search_step,
    _causal_attention,
    _kv_cache_decode_step,
    _multi_head_attention,
    _top_p_filter,
)
from lmcourse.metrics import bleu
from lmcourse.models.gpt import GPT, GPTConfig


pytestmark = pytest.mark.usefixtures("home")


# ---------------------------------------------------------------------------
# The references


def test_attention_reference_is_softmax_of_masked_scaled_scores():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 5, dtype=torch.float64).unbind(0)
    scores = q @ k.transpose(-2, -1) / math.sqrt(5)
    scores = scores + torch.full((4, 4), float("-inf"), dtype=torch.float64).triu(1)
    torch.testing.assert_close(_causal_attention(q, k, v), torch.softmax(scores, -1) @ v)


def _course_attention(C=12, n_head=3):
    """The course GPT's attention layer (no biases, learned positions) and its weights in the
    exercises' (in, out) layout."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=n_head, n_embd=C, bias=False)
    attn = GPT(config).double().eval().blocks[0].attn
    return attn, attn.qkv.weight.detach().T, attn.proj.weight.detach().T


def test_multi_head_reference_is_the_course_gpts_attention_layer():
    attn, W_qkv, W_o = _course_attention()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = attn(x, None)
    torch.testing.assert_close(_multi_head_attention(x, W_qkv, W_o, 3), expected)
    # With one head and W_o = I it is plain causal attention on q, k, v = the three blocks.
    W_qkv1 = torch.randn(4, 12, dtype=torch.float64)
    q, k, v = (x[..., :4] @ W_qkv1).split(4, dim=-1)
    torch.testing.assert_close(_multi_head_attention(x[..., :4], W_qkv1, torch.eye(4, dtype=torch.float64), 1),
                               _causal_attention(q, k, v))


def test_kv_step_reference_is_the_course_gpts_cached_path_and_the_full_attentions_last_row():
    attn, W_qkv, W_o = _course_attention()
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    with torch.no_grad():
        _, (cache_k, cache_v) = attn(x[:, :5], None)
        expected, (new_k, new_v) = attn(x[:, 5:], (cache_k, cache_v))
    y, k, v = _kv_cache_decode_step(x[:, 5:], cache_k, cache_v, W_qkv, W_o, 3)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close((k, v), (new_k, new_v))
    torch.testing.assert_close(y, _multi_head_attention(x, W_qkv, W_o, 3)[:, 5:])


def test_beam_step_reference_repeated_is_the_packages_beam_search():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=7, block_size=16, n_layer=1, n_head=2, n_embd=8)).eval()
    prompt, steps, width = torch.tensor([1, 2, 3]), 6, 3
    tokens, log_prob = beam_search(model, prompt, steps, beam_width=width)
    with torch.no_grad():
        logits, state = model(prompt[None])
        scores, seqs = torch.zeros(1, dtype=torch.float64), prompt.new_empty(1, 0)
        for i in range(steps):
            log_probs = torch.log_softmax(logits[:, -1].double(), dim=-1)
            scores, parent, token = _beam_search_step(scores, log_probs, min(width, log_probs.numel()))
            seqs = torch.cat([seqs[parent], token[:, None]], dim=1)
            logits, state = model(token[:, None], model.select_state(state, parent))
    assert torch.equal(torch.cat([prompt, seqs[0]]), tokens)
    assert float(scores[0]) == pytest.approx(log_prob, abs=1e-12)


def test_beam_step_ties_go_to_the_lower_flat_index():
    scores = torch.tensor([-1.0, -2.0])
    log_probs = torch.log(torch.tensor([[0.1, 0.9], [0.5, 0.5]]))
    new_scores, parent, token = _beam_search_step(scores, log_probs, 3)
    assert parent.tolist() == [0, 1, 1] and token.tolist() == [1, 0, 1]  # the prompt's worked value
    torch.testing.assert_close(new_scores, torch.tensor([-1 + math.log(0.9), -2 + math.log(0.5),
                                                         -2 + math.log(0.5)]))


def test_the_worked_values_in_the_06_prompts_are_the_references():
    q = k = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    torch.testing.assert_close(_causal_attention(q, k, torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])),
                               torch.tensor([[[1.0, 2.0], [2.0, 3.0]]]))
    x, W_qkv, W_o = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]]), torch.eye(2).repeat(1, 3), torch.eye(2)
    close = dict(atol=1e-4, rtol=0)  # the prompts print 4 decimals
    torch.testing.assert_close(_multi_head_attention(x, W_qkv, W_o, 2),
                               torch.tensor([[[1.0, 2.0], [2.9951, 1.0]]]), **close)
    torch.testing.assert_close(_multi_head_attention(x, W_qkv, W_o, 2, causal=False),
                               torch.tensor([[[2.7616, 1.9640], [2.9951, 1.0]]]), **close)
    cache = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    y, new_k, new_v = _kv_cache_decode_step(x[:, 1:], cache, cache, W_qkv, W_o, 2)
    torch.testing.assert_close(y, torch.tensor([[[2.9951, 1.0]]]), **close)
    assert new_k.equal(new_v) and new_k.flatten().tolist() == [1.0, 3.0, 2.0, 0.0]
    filtered = _top_p_filter(torch.log(torch.tensor([[0.5, 0.2, 0.3]])), 0.6)
    torch.testing.assert_close(filtered, torch.tensor([[-0.6931, float("-inf"), -1.2040]]), **close)


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


def mha_loop_over_heads(x, W_qkv, W_o, n_head, causal=True):
    B, T, C = x.shape
    hs = C // n_head
    q, k, v = (x @ W_qkv).chunk(3, dim=-1)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    heads = []
    for h in range(n_head):
        cols = slice(h * hs, (h + 1) * hs)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(hs)
        if causal:
            scores = scores.masked_fill(future, float("-inf"))
        heads.append(scores.softmax(-1) @ v[..., cols])
    return torch.cat(heads, dim=-1) @ W_o


def mha_einsum(x, W_qkv, W_o, n_head, causal=True):
    B, T, C = x.shape
    q, k, v = (x @ W_qkv).view(B, T, 3, n_head, C // n_head).unbind(2)  # (B, T, h, hs) each
    scores = torch.einsum("bthd,bshd->bhts", q, k) * (C // n_head) ** -0.5
    if causal:
        scores = scores + torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
    return torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v).reshape(B, T, C) @ W_o


def kv_step_by_hand(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    B, _, C = x_new.shape
    q, k, v = ((x_new @ W_qkv)[..., i * C:(i + 1) * C].reshape(B, 1, n_head, C // n_head)
               .permute(0, 2, 1, 3) for i in range(3))
    keys, values = torch.cat((cache_k, k), dim=-2), torch.cat((cache_v, v), dim=-2)
    weights = torch.softmax(q @ keys.mT / math.sqrt(C // n_head), dim=-1)  # (B, h, 1, t + 1)
    y = (weights @ values).permute(0, 2, 1, 3).reshape(B, 1, C)
    return y @ W_o, keys, values


def beam_step_sorted_python(scores, next_log_probs, beam_width):
    K, V = next_log_probs.shape
    ranked = sorted(((-(scores[b] + next_log_probs[b, j]).item(), b * V + j)
                     for b in range(K) for j in range(V)))[:beam_width]
    flat = torch.tensor([i for _, i in ranked])
    return (scores[:, None] + next_log_probs).flatten()[flat], flat // V, flat % V


def beam_step_argsort(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[1]
    total = (scores.unsqueeze(1) + next_log_probs).view(-1)
    best = total.argsort(descending=True, stable=True)[:beam_width]
    return total[best], torch.div(best, V, rounding_mode="floor"), torch.remainder(best, V)


CORRECT = [
    ("multi_head_attention", mha_loop_over_heads), ("multi_head_attention", mha_einsum),
    ("kv_cache_decode_step", kv_step_by_hand),
    ("beam_search_step", beam_step_sorted_python), ("beam_search_step", beam_step_argsort),
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


def _qkv_heads(x, W_qkv, n_head):
    B, T, C = x.shape
    return [t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (x @ W_qkv).split(C, -1)]


def _merge(y):
    B, h, T, hs = y.shape
    return y.transpose(1, 2).reshape(B, T, h * hs)


def _causal_softmax(scores, causal=True, dim=-1):
    T = scores.shape[-1]
    if causal:
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(dim)


def mha_view_no_transpose(x, W_qkv, W_o, n_head, causal=True):
    B, T, C = x.shape
    q, k, v = (t.reshape(B, n_head, T, C // n_head) for t in (x @ W_qkv).split(C, -1))
    y = _causal_softmax(q @ k.transpose(-2, -1) / math.sqrt(C // n_head), causal) @ v
    return y.reshape(B, T, C) @ W_o


def mha_scale_by_width(x, W_qkv, W_o, n_head, causal=True):
    q, k, v = _qkv_heads(x, W_qkv, n_head)
    return _merge(_causal_softmax(q @ k.mT / math.sqrt(x.shape[-1]), causal) @ v) @ W_o


def mha_no_projection(x, W_qkv, W_o, n_head, causal=True):
    q, k, v = _qkv_heads(x, W_qkv, n_head)
    return _merge(_causal_softmax(q @ k.mT / math.sqrt(q.shape[-1]), causal) @ v)


def mha_mask_after_softmax(x, W_qkv, W_o, n_head, causal=True):
    q, k, v = _qkv_heads(x, W_qkv, n_head)
    w = (q @ k.mT / math.sqrt(q.shape[-1])).softmax(-1)
    if causal:
        w = w.tril()
    return _merge(w @ v) @ W_o


def mha_softmax_over_queries(x, W_qkv, W_o, n_head, causal=True):
    q, k, v = _qkv_heads(x, W_qkv, n_head)
    return _merge(_causal_softmax(q @ k.mT / math.sqrt(q.shape[-1]), causal, dim=2) @ v) @ W_o


def mha_heads_reversed(x, W_qkv, W_o, n_head, causal=True):
    q, k, v = _qkv_heads(x, W_qkv, n_head)
    y = _causal_softmax(q @ k.mT / math.sqrt(q.shape[-1]), causal) @ v
    return torch.cat([y[:, h] for h in reversed(range(n_head))], dim=-1) @ W_o


def mha_always_causal(x, W_qkv, W_o, n_head, causal=True):
    q, k, v = _qkv_heads(x, W_qkv, n_head)
    return _merge(_causal_softmax(q @ k.mT / math.sqrt(q.shape[-1])) @ v) @ W_o


def _attend_one(q, keys, values, W_o):
    return _merge((q @ keys.mT / math.sqrt(q.shape[-1])).softmax(-1) @ values) @ W_o


def kv_only_the_new_token(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _qkv_heads(x_new, W_qkv, n_head)
    return _attend_one(q, k, v, W_o), torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2)


def kv_returns_the_old_cache(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _qkv_heads(x_new, W_qkv, n_head)
    return _attend_one(q, torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2), W_o), cache_k, cache_v


def kv_appended_then_added_again(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _qkv_heads(x_new, W_qkv, n_head)
    cache_k, cache_v = torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2)  # append first ...
    y = _attend_one(q, torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2), W_o)  # ... then again
    return y, cache_k, cache_v


def kv_causal_mask(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _qkv_heads(x_new, W_qkv, n_head)
    keys, values = torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2)
    scores = q @ keys.mT / math.sqrt(q.shape[-1])  # (B, h, 1, t + 1)
    hide = torch.ones(1, keys.shape[2], dtype=torch.bool).triu(1)  # the (T, T) habit, for 1 x (t+1)
    return _merge(scores.masked_fill(hide, float("-inf")).softmax(-1) @ values) @ W_o, keys, values


def kv_cat_along_head_size(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _qkv_heads(x_new, W_qkv, n_head)
    keys, values = torch.cat([cache_k, k], -1), torch.cat([cache_v, v], -1)
    return _attend_one(q, keys, values, W_o), keys, values


def kv_appends_in_place(x_new, cache_k, cache_v, W_qkv, W_o, n_head):
    q, k, v = _qkv_heads(x_new, W_qkv, n_head)
    cache_k.set_(torch.cat([cache_k, k], 2))  # "append" to the caller's tensors
    cache_v.set_(torch.cat([cache_v, v], 2))
    return _attend_one(q, cache_k, cache_v, W_o), cache_k, cache_v


def _flat_top(candidates, width):
    return torch.sort(candidates, descending=True, stable=True).indices[:width]


def beam_top_tokens_per_beam(scores, next_log_probs, beam_width):
    K, V = next_log_probs.shape
    per_beam = math.ceil(beam_width / K)
    lp, tok = next_log_probs.topk(per_beam, dim=-1)  # the best tokens of each beam
    total = (scores[:, None] + lp).flatten()
    best = _flat_top(total, beam_width)
    return total[best], best // per_beam, tok.flatten()[best]


def beam_multiplies(scores, next_log_probs, beam_width):
    total = (scores[:, None] * next_log_probs).flatten()
    best = _flat_top(total, beam_width)
    V = next_log_probs.shape[1]
    return total[best], best // V, best % V


def beam_forgets_its_score(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[1]
    best = _flat_top(next_log_probs.flatten(), beam_width)
    return next_log_probs.flatten()[best], best // V, best % V


def beam_length_normalised(scores, next_log_probs, beam_width):
    new_scores, parent, token = beam_step_argsort(scores, next_log_probs, beam_width)
    return new_scores / 3, parent, token  # "per token", for a beam of three tokens


def beam_swapped_decode(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[1]
    total = (scores[:, None] + next_log_probs).flatten()
    best = _flat_top(total, beam_width)
    return total[best], best % V, best // V


def beam_decode_with_k(scores, next_log_probs, beam_width):
    K = next_log_probs.shape[0]
    total = (scores[:, None] + next_log_probs).flatten()
    best = _flat_top(total, beam_width)
    return total[best], best // K, best % K


def beam_ties_to_the_later_candidate(scores, next_log_probs, beam_width):
    V = next_log_probs.shape[1]
    total = (scores[:, None] + next_log_probs).flatten()
    n = total.numel()
    best = n - 1 - _flat_top(total.flip(0), beam_width)  # equal scores: the higher index first
    return total[best], best // V, best % V


WRONG = [
    ("multi_head_attention", mha_view_no_transpose, "plain reshape"),
    ("multi_head_attention", mha_scale_by_width, "sqrt(c), the model width"),
    ("multi_head_attention", mha_no_projection, "no output projection"),
    ("multi_head_attention", mha_mask_after_softmax, "masked after the softmax"),
    ("multi_head_attention", mha_softmax_over_queries, "wrong axis"),
    ("multi_head_attention", mha_heads_reversed, "wrong order"),
    ("multi_head_attention", mha_always_causal, "even with causal=false"),
    ("kv_cache_decode_step", kv_only_the_new_token, "attends only to itself"),
    ("kv_cache_decode_step", kv_returns_the_old_cache, "returned the old cache"),
    ("kv_cache_decode_step", kv_appended_then_added_again, "counted twice"),
    ("kv_cache_decode_step", kv_causal_mask, "causal mask hides the past"),
    ("kv_cache_decode_step", kv_cat_along_head_size, "grows along its time axis"),
    ("kv_cache_decode_step", kv_appends_in_place, "changed the caller's cache"),
    ("beam_search_step", beam_top_tokens_per_beam, "each beam separately"),
    ("beam_search_step", beam_multiplies, "multiplied the log-probabilities"),
    ("beam_search_step", beam_forgets_its_score, "leave out the score of the beam"),
    ("beam_search_step", beam_length_normalised, "not normalised by length"),
    ("beam_search_step", beam_swapped_decode, "swapped"),
    ("beam_search_step", beam_decode_with_k, "instead of v"),
    ("beam_search_step", beam_ties_to_the_later_candidate, "equal scores go to the lower flat index"),
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
