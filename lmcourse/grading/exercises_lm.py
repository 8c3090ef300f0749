"""Checks for lesson 01's exercises: softmax, cross-entropy, perplexity.

Each exercise is a reference, a list of cases, and the classic wrong answers
written out as code (the ``_wrong_*`` functions), so the check can recognise
them by their output and say which mistake it sees.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lmcourse.grading.checks import Case, Exercise, Mistake, register


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # Draw in float64 and cast, so a case's values do not depend on its dtype.
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _targets(gen: torch.Generator, *shape: int, vocab: int) -> torch.Tensor:
    return torch.randint(vocab, shape, generator=gen)


def _large_rows(gen: torch.Generator, rows: int, vocab: int) -> torch.Tensor:
    """Logits around +1000 and -1000: exact maths is easy, naive exp overflows."""
    offsets = torch.tensor([1000.0, -1000.0] * (rows // 2) + [1000.0] * (rows % 2))
    return _randn(gen, rows, vocab, scale=3.0) + offsets[:, None]


# ---------------------------------------------------------------------------
# softmax(x, dim=-1)


def _softmax(x, dim=-1):
    return torch.softmax(x, dim=dim)


def _wrong_softmax_naive(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def _wrong_softmax_global_max(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)


def _wrong_softmax_log(x, dim=-1):
    return torch.log_softmax(x, dim=dim)


def _wrong_softmax_all_elements(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum()


def _wrong_softmax_last_dim(x, dim=-1):
    return torch.softmax(x, dim=-1)


def _wrong_softmax_dim0(x, dim=-1):
    return torch.softmax(x, dim=0)


def _wrong_softmax_dim1(x, dim=-1):
    return torch.softmax(x, dim=1)


def _wrong_softmax_max_no_keepdim(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim))
    return e / e.sum(dim=dim, keepdim=True)


def _wrong_softmax_sum_no_keepdim(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim)


def _wrong_softmax_sum_no_keepdim_naive(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim)


def _wrong_softmax_unnormalised(x, dim=-1):
    return torch.exp(x - x.amax(dim=dim, keepdim=True))


def _softmax_cases(gen: torch.Generator) -> list[Case]:
    return [
        Case("2-D logits (4×10)", (_randn(gen, 4, 10, scale=2.0),)),
        Case("float64 logits (3×7)", (_randn(gen, 3, 7, scale=2.0, dtype=torch.float64),)),
        Case("dim=0 on a 2-D input (5×3)", (_randn(gen, 5, 3, scale=2.0),), {"dim": 0}),
        Case("3-D input (2×3×5), dim=1", (_randn(gen, 2, 3, 5, scale=2.0),), {"dim": 1}),
        Case("3-D input (2×4×6), last dim", (_randn(gen, 2, 4, 6, scale=2.0),)),
        Case("1-D input (6,)", (_randn(gen, 6, scale=2.0),)),
        Case("batch of one (1×5)", (_randn(gen, 1, 5, scale=2.0),)),
        Case("vocabulary of one (4×1)", (_randn(gen, 4, 1, scale=2.0),)),
        Case("vocabulary of two (4×2)", (_randn(gen, 4, 2, scale=2.0),)),
        Case("large logits (±1000)", (_large_rows(gen, 4, 6),)),
        Case("square input (6×6)", (_randn(gen, 6, 6, scale=2.0),)),
        Case("gradient (3×5)", (_randn(gen, 3, 5, scale=2.0),), grad=True),
    ]


def _softmax_diagnose(got, case: Case) -> str | None:
    dim = case.kwargs.get("dim", -1)
    got = got.detach().double()
    if (got < 0).any():
        return "Probabilities cannot be negative"
    sums = got.sum(dim=dim)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return (f"Your outputs should sum to 1 along dim={dim}, but the sums range from "
                f"{sums.min().item():.4g} to {sums.max().item():.4g}")
    return ("Your outputs do sum to 1 along dim, but are not proportional to the "
            "exponentials of the logits")


_DIM_HINT = "every reduction (maximum, sum) must run along the dim you were given"

register(Exercise(
    id="softmax",
    title="numerically stable softmax",
    reference=_softmax,
    cases=_softmax_cases,
    mistakes=[
        Mistake("exp overflows: e^1000 is inf (in float64 too), and inf/inf is NaN; for "
                "very negative logits every exponential underflows to 0, giving 0/0",
                "softmax does not change when the same number is subtracted from every "
                "logit of a slice; choose that number so the largest exponent is 0",
                _wrong_softmax_naive),
        Mistake("you subtract one maximum for the whole tensor, so a slice whose logits "
                "all lie far below it underflows to 0/0",
                "subtract the maximum of each slice along dim, not of the whole tensor",
                _wrong_softmax_global_max),
        Mistake("you returned log-probabilities (log-softmax): the values are negative "
                "and do not sum to 1",
                "softmax returns the probabilities themselves",
                _wrong_softmax_log),
        Mistake("you normalised over all elements at once: the whole tensor sums to 1 "
                "instead of each slice along dim",
                "reduce along dim only", _wrong_softmax_all_elements),
        Mistake("your function ignores its dim argument and always normalises over the "
                "last dimension", _DIM_HINT, _wrong_softmax_last_dim),
        Mistake("your function normalises over dimension 0, whatever dim says",
                _DIM_HINT, _wrong_softmax_dim0),
        Mistake("your function normalises over dimension 1, whatever dim says",
                _DIM_HINT, _wrong_softmax_dim1),
        Mistake("a reduced maximum was broadcast against the wrong axis: on a square "
                "input the maximum of slice i was subtracted along the other axis",
                "keep the reduced dimension (keepdim) so the result lines up with the "
                "slice it came from", _wrong_softmax_max_no_keepdim),
        Mistake("the sum of exponentials was broadcast against the wrong axis: on a "
                "square input slice i was divided by the sum of another slice",
                "keep the reduced dimension (keepdim) so the sum lines up with the "
                "slice it came from", _wrong_softmax_sum_no_keepdim),
        Mistake("the sum of exponentials was broadcast against the wrong axis: on a "
                "square input slice i was divided by the sum of another slice",
                "keep the reduced dimension (keepdim) so the sum lines up with the "
                "slice it came from", _wrong_softmax_sum_no_keepdim_naive),
        Mistake("you did not divide by the sum, so the outputs do not add up to 1",
                "a softmax's outputs along dim are probabilities that sum to 1",
                _wrong_softmax_unnormalised),
    ],
    unstable=("On large logits exp overflows (e^89 is already inf in float32), and for "
              "very negative ones it underflows to 0. Hint: softmax does not change when "
              "the same number is subtracted from every logit of a slice; use that"),
    diagnose=_softmax_diagnose,
    error_hints={
        "unexpected keyword argument 'dim'":
            "your function must take a dim argument, with default -1",
        "must match the size of tensor":
            "a reduced tensor did not line up with the input; keep the reduced "
            "dimension (keepdim) so broadcasting matches it with its slice",
    },
    passed_message="All cases pass: correct on every shape and dim, and stable on large logits.",
))


# ---------------------------------------------------------------------------
# cross_entropy(logits (N, V), targets (N,))


def _cross_entropy(logits, targets):
    return F.cross_entropy(logits, targets)


def _rows(logits):
    return torch.arange(logits.shape[0])


def _wrong_ce_sum(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum")


def _wrong_ce_bits(logits, targets):
    return F.cross_entropy(logits, targets) / math.log(2)


def _wrong_ce_negated(logits, targets):
    return -F.cross_entropy(logits, targets)


def _wrong_ce_per_example(logits, targets):
    return F.cross_entropy(logits, targets, reduction="none")


def _wrong_ce_column_block(logits, targets):
    return -torch.log_softmax(logits, dim=1)[:, targets].mean()


def _wrong_ce_column_block_unreduced(logits, targets):
    return -torch.log_softmax(logits, dim=1)[:, targets]


def _wrong_ce_one_hot_mean(logits, targets):
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return -(one_hot * torch.log_softmax(logits, dim=1)).mean()


def _wrong_ce_no_log(logits, targets):
    return -torch.softmax(logits, dim=1)[_rows(logits), targets].mean()


def _wrong_ce_raw_logit(logits, targets):
    return -logits[_rows(logits), targets].mean()


def _wrong_ce_batch_dim(logits, targets):
    return -torch.log_softmax(logits, dim=0)[_rows(logits), targets].mean()


def _wrong_ce_log_of_naive_softmax(logits, targets):
    e = torch.exp(logits)
    return -torch.log(e / e.sum(dim=1, keepdim=True))[_rows(logits), targets].mean()


def _wrong_ce_log_of_softmax(logits, targets):
    return -torch.log(torch.softmax(logits, dim=1))[_rows(logits), targets].mean()


def _large_ce_logits(gen: torch.Generator) -> torch.Tensor:
    logits = _large_rows(gen, 4, 5)
    # A confident wrong prediction: the target's logit is 2000 below the best.
    logits[0] = torch.tensor([1000.0, -1000.0, 0.0, 0.0, 0.0])
    return logits


def _cross_entropy_cases(gen: torch.Generator) -> list[Case]:
    return [
        Case("8 examples, 10 classes", (_randn(gen, 8, 10, scale=2.0),
                                       _targets(gen, 8, vocab=10))),
        Case("float64 logits (5×7)", (_randn(gen, 5, 7, scale=2.0, dtype=torch.float64),
                                      _targets(gen, 5, vocab=7))),
        Case("batch of one (1×6)", (_randn(gen, 1, 6, scale=2.0), _targets(gen, 1, vocab=6))),
        Case("vocabulary of two (6×2)", (_randn(gen, 6, 2, scale=2.0),
                                         _targets(gen, 6, vocab=2))),
        Case("vocabulary of one (4×1)", (_randn(gen, 4, 1, scale=2.0),
                                         torch.zeros(4, dtype=torch.long))),
        Case("large logits (±1000)", (_large_ce_logits(gen), torch.tensor([1, 3, 0, 2]))),
        Case("gradient (6×5)", (_randn(gen, 6, 5, scale=2.0), _targets(gen, 6, vocab=5)),
             grad=True),
    ]


def _cross_entropy_diagnose(got, case: Case) -> str | None:
    if float(got) < 0:
        return "Cross-entropy is never negative: it is minus the log of a probability ≤ 1"
    return None


_UNSTABLE_LOG = ("you take the log of a probability: with large logits the softmax "
                 "overflows, or a probability underflows to 0 and its log is -inf, so the "
                 "loss becomes inf or NaN")
_UNSTABLE_LOG_HINT = ("compute log-probabilities directly with the log-sum-exp trick "
                      "instead of taking the log of a probability")

register(Exercise(
    id="cross_entropy",
    title="cross-entropy loss",
    reference=_cross_entropy,
    cases=_cross_entropy_cases,
    mistakes=[
        Mistake("you summed the per-example losses instead of averaging them, so the loss "
                "grows with the batch size", "the loss is the mean over the N examples",
                _wrong_ce_sum),
        Mistake("your loss is in bits (log base 2); here cross-entropy is measured in nats, "
                "as in torch.nn.functional.cross_entropy",
                "use the natural logarithm throughout", _wrong_ce_bits),
        Mistake("a missing minus sign: your loss is negative, but minus the log of a "
                "probability is never negative",
                "the loss is minus the mean log-probability of the targets", _wrong_ce_negated),
        Mistake("you returned one loss per example instead of their mean",
                "reduce the N losses to a single 0-d tensor", _wrong_ce_per_example),
        Mistake("you indexed the columns with the whole targets vector: that picks every "
                "target's column for every row (an N×N block), not one entry per row",
                "pair row i with targets[i] only (index rows and columns together, or "
                "use gather)", _wrong_ce_column_block),
        Mistake("you indexed the columns with the whole targets vector: that picks every "
                "target's column for every row (an N×N block), not one entry per row",
                "pair row i with targets[i] only (index rows and columns together, or "
                "use gather)", _wrong_ce_column_block_unreduced),
        Mistake("you averaged over all N×V entries of the one-hot product; only N of them "
                "are non-zero, so the loss is V times too small",
                "sum over the vocabulary, then average over the examples",
                _wrong_ce_one_hot_mean),
        Mistake("you averaged probabilities of the targets, not their log-probabilities",
                "the loss is the mean of minus the log-probability of each target",
                _wrong_ce_no_log),
        Mistake("you used the raw logit of the target: a logit is not a log-probability "
                "until it is normalised",
                "normalise each row with log-softmax (subtract the row's log-sum-exp)",
                _wrong_ce_raw_logit),
        Mistake("you normalised over the batch (dim 0) instead of over the classes",
                "each row's V logits are normalised on their own", _wrong_ce_batch_dim),
        Mistake(_UNSTABLE_LOG, _UNSTABLE_LOG_HINT, _wrong_ce_log_of_naive_softmax),
        Mistake(_UNSTABLE_LOG, _UNSTABLE_LOG_HINT, _wrong_ce_log_of_softmax),
    ],
    unstable=f"Likely {_UNSTABLE_LOG}. Hint: {_UNSTABLE_LOG_HINT}",
    diagnose=_cross_entropy_diagnose,
    error_hints={
        "out of bounds": "targets[i] is a class index in [0, V): use it to pick one of "
                         "the V logits of row i",
        "must match the size of tensor": "if you build a one-hot matrix, give it V columns "
                                         "explicitly: otherwise it is only as wide as the "
                                         "largest target in the batch",
    },
    passed_message="All cases pass: the mean NLL in nats, stable on large logits, "
                   "and gradients flow.",
))


# ---------------------------------------------------------------------------
# perplexity(logits (B, T, V), targets (B, T))


def _token_nll(logits, targets):
    """Negative log-likelihood of every token, shape (B, T)."""
    return -torch.log_softmax(logits.double(), dim=-1).gather(-1, targets[..., None])[..., 0]


def _perplexity(logits, targets):
    return math.exp(_token_nll(logits, targets).mean().item())


def _wrong_ppl_no_exp(logits, targets):
    return _token_nll(logits, targets).mean().item()


def _wrong_ppl_exp_sum(logits, targets):
    total = _token_nll(logits, targets).sum().item()
    return math.exp(total) if total < 709 else math.inf  # math.exp raises on overflow


def _wrong_ppl_exp_sum_in_dtype(logits, targets):
    # The same mistake in float32 overflows to inf as soon as the total passes 88.7.
    return torch.exp(-torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).sum())


def _wrong_ppl_per_sequence(logits, targets):
    return _token_nll(logits, targets).mean(dim=1).exp()


def _wrong_ppl_mean_of_sequences(logits, targets):
    return _token_nll(logits, targets).mean(dim=1).exp().mean().item()


def _wrong_ppl_base_two(logits, targets):
    return 2.0 ** _token_nll(logits, targets).mean().item()


def _wrong_ppl_shifted(logits, targets):
    return math.exp(_token_nll(logits[:, :-1], targets[:, 1:]).mean().item())


def _wrong_ppl_arithmetic_mean(logits, targets):
    return 1.0 / torch.exp(-_token_nll(logits, targets)).mean().item()


def _perplexity_cases(gen: torch.Generator) -> list[Case]:
    # Sequences of different sharpness, so averaging per sequence is visibly wrong.
    sharpness = torch.tensor([0.5, 1.0, 2.0, 4.0])[:, None, None]
    large = _randn(gen, 2, 5, 8, scale=2.0) + torch.tensor([1000.0, -1000.0])[:, None, None]
    return [
        Case("4 sequences × 8 tokens, 10 classes",
             (_randn(gen, 4, 8, 10) * sharpness, _targets(gen, 4, 8, vocab=10))),
        Case("float64 logits (2×5×6)", (_randn(gen, 2, 5, 6, scale=2.0, dtype=torch.float64),
                                        _targets(gen, 2, 5, vocab=6))),
        Case("one sequence (1×12×7)", (_randn(gen, 1, 12, 7, scale=2.0),
                                       _targets(gen, 1, 12, vocab=7))),
        Case("a single token (1×1×5)", (_randn(gen, 1, 1, 5, scale=2.0),
                                        _targets(gen, 1, 1, vocab=5))),
        Case("vocabulary of two (3×6×2)", (_randn(gen, 3, 6, 2, scale=2.0),
                                           _targets(gen, 3, 6, vocab=2))),
        Case("uniform predictions (perplexity = V = 9)",
             (torch.zeros(2, 4, 9), _targets(gen, 2, 4, vocab=9))),
        Case("large logits (±1000)", (large, _targets(gen, 2, 5, vocab=8))),
    ]


def _perplexity_diagnose(got, case: Case) -> str | None:
    if float(got) < 1:
        return "Perplexity is never below 1: it is e raised to a non-negative loss"
    return None


register(Exercise(
    id="perplexity",
    title="perplexity of a batch",
    reference=_perplexity,
    cases=_perplexity_cases,
    mistakes=[
        Mistake("you returned the cross-entropy (mean negative log-likelihood in nats), not "
                "the perplexity", "perplexity is e raised to the cross-entropy",
                _wrong_ppl_no_exp),
        Mistake("you exponentiated the total negative log-likelihood of all tokens, which "
                "explodes with the number of tokens",
                "average over all B×T tokens before exponentiating", _wrong_ppl_exp_sum),
        Mistake("you exponentiated the total negative log-likelihood of all tokens, which "
                "explodes with the number of tokens",
                "average over all B×T tokens before exponentiating",
                _wrong_ppl_exp_sum_in_dtype),
        Mistake("you returned one perplexity per sequence; the perplexity of the batch is "
                "a single number over all its tokens",
                "average the negative log-likelihood over every token of the batch, then "
                "exponentiate once", _wrong_ppl_per_sequence),
        Mistake("you averaged the perplexities of the sequences; the mean of exponentials "
                "is not the exponential of the mean",
                "average the negative log-likelihood over every token of the batch, then "
                "exponentiate once", _wrong_ppl_mean_of_sequences),
        Mistake("you raised 2 to a cross-entropy measured in nats",
                "the base must match the logarithm: e with nats, 2 with bits",
                _wrong_ppl_base_two),
        Mistake("you shifted the targets by one position; here they are already aligned: "
                "targets[b, t] is the token that logits[b, t] predicts",
                "use every position as given", _wrong_ppl_shifted),
        Mistake("you inverted the arithmetic mean of the target probabilities",
                "perplexity is the inverse of their geometric mean: average the logs",
                _wrong_ppl_arithmetic_mean),
    ],
    unstable=("On large logits exp overflows or a probability underflows to 0. Hint: "
              "work with log-probabilities computed stably (the log-sum-exp trick)"),
    diagnose=_perplexity_diagnose,
    error_hints={
        "Expected target size": "torch.nn.functional.cross_entropy expects the classes in "
                                "dimension 1 of a 2-D input; the logits here are (B, T, V)",
    },
    passed_message="All cases pass: e to the mean NLL per token, over the whole batch.",
))
