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

``generate``, ``greedy`` and ``beam_search`` run a whole model. Every model in
the course keeps one contract:

    logits, state = model(idx, state)        # idx (B, T); logits (B, T, V)
    state = model.select_state(state, index) # keep / reorder batch entries (beam search)

``state`` is whatever the model carries from one call to the next: an RNN's
hidden state, a Transformer's key-value cache, ``None`` to start. So
generation reads the prompt once and then feeds one token per step: the cost
of a new token does not grow with the text already written.
"""
from __future__ import annotations

import contextlib
import math

import torch

from lmcourse.validate import non_negative_int, number, positive_int

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "sampling_probs",
    "sample_next",
    "stream",
    "generate",
    "greedy",
    "beam_search",
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
    return positive_int("top_k", k)


def _check_top_p(p) -> float:
    return number("top_p", p, low=0.0, low_open=True, high=1.0)


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


# ---------------------------------------------------------------------------
# Running a model: generate, greedy, beam search


def _as_prompt(prompt) -> tuple[torch.Tensor, bool]:
    """The prompt as a (B, T) LongTensor, and whether it came in 1-D."""
    idx = torch.as_tensor(prompt)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"prompt must hold integer token ids, got {idx.dtype}")
    if idx.ndim not in (1, 2) or idx.shape[-1] == 0:
        raise ValueError(
            f"prompt must have shape (T,) or (B, T) with T >= 1 (the model needs a token to "
            f"start from), got shape {tuple(idx.shape)}"
        )
    return (idx[None] if idx.ndim == 1 else idx).long(), idx.ndim == 1


def _check_steps(max_new_tokens) -> int:
    return non_negative_int("max_new_tokens", max_new_tokens)


def _model_device(model, fallback: torch.device) -> torch.device:
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    first = next(params, None)
    return first.device if first is not None else fallback


@contextlib.contextmanager
def _inference(model):
    """Eval mode (no dropout) and no gradients; the model's own mode is restored afterwards."""
    was_training = getattr(model, "training", None)
    if was_training is not None:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training is not None:
            model.train(was_training)


def _step(model, idx: torch.Tensor, state):
    """One call of the model contract; returns the last position's logits (B, V) and the state."""
    out = model(idx, state)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(
            "model(idx, state) must return (logits, state), logits of shape (B, T, V); "
            f"got {type(out).__name__}"
        )
    logits, state = out
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[:2] != idx.shape:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"expected logits of shape (B, T, V) = {(*idx.shape, 'V')} for idx of "
                         f"shape {tuple(idx.shape)}; got {got}")
    return logits[:, -1, :], state


def stream(
    model,
    prompt,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    *,
    use_cache: bool = True,
):
    """Yield the new tokens one at a time, each a LongTensor ``(B,)``, as a chat server streams them.

    The arguments are :func:`generate`'s. With ``use_cache=True`` (the default)
    the model reads the prompt once and then one token per step, carrying its
    state; with ``use_cache=False`` it re-reads the whole text so far for every
    new token, the slow way that a model without a cache (or state) would have
    to take. Both give the same tokens; only the cost differs, which is what
    lesson 06 and :func:`lmcourse.speed.generation_speed` measure. The options
    are checked now, before the first token is asked for.
    """
    idx, _ = _as_prompt(prompt)
    steps = _check_steps(max_new_tokens)
    _check_temperature(temperature, allow_zero=True)
    top_k = None if top_k is None else _check_top_k(top_k)
    top_p = None if top_p is None else _check_top_p(top_p)
    idx = idx.to(_model_device(model, idx.device))
    return _stream(model, idx, steps, temperature, top_k, top_p, generator, bool(use_cache))


@torch.no_grad()  # as a decorator it wraps each resumption, so grad mode never leaks to the caller
def _stream(model, idx, steps, temperature, top_k, top_p, generator, use_cache):
    with _inference(model):
        if steps:
            logits, state = _step(model, idx, None)
        for i in range(steps):
            if logits.dtype in (torch.float16, torch.bfloat16):  # under autocast: sample in fp32
                logits = logits.float()
            token = sample_next(logits, temperature, top_k, top_p, generator)  # (B,)
            yield token
            if i + 1 < steps:  # the last token needs no forward pass of its own
                if use_cache:
                    logits, state = _step(model, token[:, None], state)
                else:
                    idx = torch.cat([idx, token[:, None]], dim=1)
                    logits, _ = _step(model, idx, None)


def generate(
    model,
    prompt,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    *,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue ``prompt`` by ``max_new_tokens`` tokens, each drawn with :func:`sample_next`.

    ``prompt`` is a 1-D sequence of token ids or a batch ``(B, T)`` of them; the
    result has the same number of dimensions, prompt included:
    ``(T + max_new_tokens,)`` or ``(B, T + max_new_tokens)``. ``temperature=0``
    is greedy decoding. The model reads the prompt once, then one token per step
    with the state it returned (see the module docstring for the contract);
    ``use_cache=False`` re-reads the whole prefix instead (see :func:`stream`).
    Runs in eval mode without gradients and restores the model's mode. For
    reproducible samples pass a seeded ``torch.Generator`` on the model's device.
    """
    idx, one_d = _as_prompt(prompt)
    tokens = stream(model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache=use_cache)
    idx = idx.to(_model_device(model, idx.device))
    out = torch.cat([idx] + [token[:, None] for token in tokens], dim=1)
    return out[0] if one_d else out


def greedy(model, prompt, max_new_tokens: int) -> torch.Tensor:
    """Greedy decoding: always the most probable next token (``generate`` at temperature 0)."""
    return generate(model, prompt, max_new_tokens, temperature=0.0)


def beam_search(model, prompt, max_new_tokens: int, beam_width: int = 4) -> tuple[torch.Tensor, float]:
    """The most probable continuation that beam search finds, and its log-probability.

    Greedy decoding commits to the best token at every step, and one good-looking
    token can lead into a poor sentence. Beam search keeps the ``beam_width``
    best partial continuations (by total log-probability) instead: at each step
    every beam is extended by every token, and the best ``beam_width`` of those
    candidates survive. Each survivor continues the state of the beam it grew
    from, so the states are reordered with ``model.select_state``. Width 1 is
    greedy decoding; a width of ``V ** (max_new_tokens - 1)`` would be an
    exhaustive search.

    ``prompt`` is one 1-D sequence. Returns ``(tokens, log_prob)``: the prompt
    followed by ``max_new_tokens`` tokens, and the natural-log probability of
    those new tokens given the prompt. All continuations have the same length
    (there is no end-of-sequence token here), so no length normalisation is
    needed to compare them. Ties go to the earlier beam, then the lower token id.
    """
    idx, one_d = _as_prompt(prompt)
    if not one_d:
        raise ValueError(f"beam_search takes one 1-D prompt, got shape {tuple(idx.shape)}")
    steps = _check_steps(max_new_tokens)
    beam_width = positive_int("beam_width", beam_width)
    if not hasattr(model, "select_state"):
        raise TypeError(f"beam search needs model.select_state(state, index); "
                        f"{type(model).__name__} has none")
    idx = idx.to(_model_device(model, idx.device))
    with _inference(model):
        if steps == 0:
            return idx[0], 0.0
        logits, state = _step(model, idx, None)
        V = logits.shape[-1]
        # float64 scores: summing many log-probs in float32 would blur close beams
        scores = torch.zeros(1, dtype=torch.float64, device=idx.device)  # one beam: the prompt
        tokens = idx.new_empty(1, 0)
        for i in range(steps):
            log_probs = torch.log_softmax(logits.double(), dim=-1)  # (beams, V)
            candidates = (scores[:, None] + log_probs).reshape(-1)  # beam-major: beam * V + token
            keep = min(beam_width, candidates.numel())
            best = torch.sort(candidates, descending=True, stable=True).indices[:keep]
            beam, token = best // V, best % V
            scores, tokens = candidates[best], torch.cat([tokens[beam], token[:, None]], dim=1)
            if i + 1 < steps:
                state = model.select_state(state, beam)
                logits, state = _step(model, token[:, None], state)
    # Beams stay sorted best first: the first is the answer.
    return torch.cat([idx[0], tokens[0]]), float(scores[0])
