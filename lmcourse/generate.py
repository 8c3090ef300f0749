"""Turning a model's next-token scores into a choice: greedy, temperature, top-k, top-p.

A language model gives, for a context, one score (logit) per vocabulary entry.
Generation repeatedly turns those scores into a distribution and picks a token.
How it picks decides what the text looks like:

* greedy (temperature 0) always takes the most probable token: safe, but it
  loops and repeats itself;
* temperature ``t`` divides the logits by ``t`` before the softmax: ``t < 1``
  sharpens the distribution towards greedy, ``t > 1`` flattens it towards uniform;
* top-k keeps only the ``k`` most probable tokens (Fan et al., 2018);
* top-p, or nucleus sampling, keeps the smallest set of most probable tokens
  whose total probability reaches ``p`` (Holtzman et al., 2020), so the number
  of candidates adapts: few when the model is sure, many when it is not.

Every function takes logits of shape ``(V,)`` or ``(B, V)`` and works on the
last dimension. Filters return logits with the removed tokens set to ``-inf``,
so they compose: temperature, then top-k, then top-p (the order Hugging Face
``transformers`` uses too). Ties are broken deterministically: among equal
logits the lower token id ranks first.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "sampling_probs",
    "sample_next",
]


def _as_logits(logits) -> torch.Tensor:
    """Check and convert logits: a float tensor of shape (V,) or (B, V), no NaN or +inf."""
    x = torch.as_tensor(logits)
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(
            f"logits must have shape (V,) or (B, V) with V >= 1, got shape {tuple(x.shape)}"
        )
    if not bool((x < float("inf")).all()):  # false for NaN as well as +inf
        raise ValueError("logits contain NaN or +inf; a removed token is -inf, all others finite")
    if bool((x.amax(dim=-1) == float("-inf")).any()):
        raise ValueError("every logit in a row is -inf: there is no token left to choose")
    return x


def _check_temperature(temperature, allow_zero: bool) -> float:
    t = float(temperature)
    if not math.isfinite(t) or t < 0 or (t == 0 and not allow_zero):
        low = ">= 0" if allow_zero else "> 0 (temperature 0 is greedy: use sample_next)"
        raise ValueError(f"temperature must be a finite number {low}, got {temperature!r}")
    return t


def _check_top_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {k!r}")
    return int(k)


def _check_top_p(p) -> float:
    if isinstance(p, bool) or not isinstance(p, Real) or not (0.0 < float(p) <= 1.0):
        raise ValueError(f"top_p must be a number in (0, 1], got {p!r}")
    return float(p)


# The filters. Public functions check their arguments and call these, which
# trust theirs: sampling a long text calls them once per token.


def _rank_order(logits: torch.Tensor) -> torch.Tensor:
    """Token ids sorted from most to least probable; equal logits keep id order."""
    return torch.sort(logits, dim=-1, descending=True, stable=True).indices


def _keep_sorted_prefix(logits: torch.Tensor, order: torch.Tensor, keep_sorted: torch.Tensor):
    """Set to -inf every token whose position in ``order`` is not marked in ``keep_sorted``."""
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    V = logits.shape[-1]
    if k >= V:
        return logits.clone()
    keep_sorted = (torch.arange(V, device=logits.device) < k).expand_as(logits).contiguous()
    return _keep_sorted_prefix(logits, _rank_order(logits), keep_sorted)


def _top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    if p >= 1.0:
        return logits.clone()
    order = _rank_order(logits)
    # float64 so that the running total does not drift on large vocabularies
    probs = torch.softmax(torch.gather(logits, -1, order).double(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    return _keep_sorted_prefix(logits, order, mass_before < p)


def _sampling_probs(logits: torch.Tensor, t: float, k: int | None, p: float | None) -> torch.Tensor:
    if t == 0:
        greedy = logits.argmax(dim=-1, keepdim=True)  # first index among ties
        return torch.zeros_like(logits).scatter(-1, greedy, 1.0)
    z = logits / t
    if k is not None:
        z = _top_k(z, k)
    if p is not None:
        z = _top_p(z, p)
    return torch.softmax(z, dim=-1)


# Public API


def apply_temperature(logits, temperature: float) -> torch.Tensor:
    """``logits / temperature``. Needs ``temperature > 0``; for 0 use greedy decoding.

    softmax(z / t) keeps the ranking of tokens but changes how peaked the
    distribution is: as t -> 0 it tends to a one-hot on the argmax (greedy), as
    t -> infinity to the uniform distribution over the tokens still allowed.
    """
    return _as_logits(logits) / _check_temperature(temperature, allow_zero=False)


def top_k_filter(logits, k: int) -> torch.Tensor:
    """Keep the ``k`` highest logits in each row, set the rest to -inf.

    Exactly ``k`` tokens survive even when several share the k-th value: ties
    go to the lower token id. ``k >= V`` keeps everything.
    """
    return _top_k(_as_logits(logits), _check_top_k(k))


def top_p_filter(logits, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most probable tokens with total probability >= p.

    Walk down the tokens from most to least probable and keep each one while
    the probability of the tokens *before* it is still below ``p``: so the
    token that carries the total across ``p`` is kept, and the most probable
    token is always kept. Ties go to the lower token id. ``p = 1`` keeps
    every token (no round-off can drop one).
    """
    return _top_p(_as_logits(logits), _check_top_p(p))


def sampling_probs(
    logits,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution ``sample_next`` draws from, after temperature, top-k and top-p.

    ``temperature=0`` gives the one-hot distribution of greedy decoding.
    Options are checked even where greedy decoding ignores them.
    """
    logits = _as_logits(logits)
    t = _check_temperature(temperature, allow_zero=True)
    k = None if top_k is None else _check_top_k(top_k)
    p = None if top_p is None else _check_top_p(top_p)
    return _sampling_probs(logits, t, k, p)


def sample_next(
    logits,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw the next token id: a 0-dim tensor for logits ``(V,)``, shape ``(B,)`` for ``(B, V)``.

    ``temperature=0`` is greedy decoding (argmax, lower id on ties) and ignores
    top-k and top-p. Pass a seeded ``torch.Generator`` (on the logits' device)
    for reproducible draws.
    """
    probs = sampling_probs(logits, temperature, top_k, top_p)
    if float(temperature) == 0:
        return probs.argmax(dim=-1)
    rows = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(rows, num_samples=1, generator=generator).squeeze(-1)
    return ids.reshape(probs.shape[:-1])
