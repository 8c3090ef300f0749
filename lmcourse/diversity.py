"""Quality against diversity in sampled text, as temperature and top-p change (lesson 11).

    rows = diversity_sweep(model, prompt, SETTINGS, n=64, length=31, decode=decode,
                           judge=ngram, vocabulary=words)

For each decoding setting, draw ``n`` continuations of one prompt in a single
batch (the KV cache makes each new token one small forward pass) and measure
the set of them two ways:

* diversity: distinct-1 and distinct-2 of words (Li et al., 2016) and
  self-BLEU (Zhu et al., 2018), from ``lmcourse.metrics``;
* quality: the perplexity of the continuations under the model that wrote them,
  under an independent judge (an n-gram model fitted to the corpus), and the
  fraction of their words that are words of the corpus.

The model's own perplexity is the number the issue asks for, but it cannot
be the only quality score: lowering the temperature moves the samples towards
what the model finds likely, so its own perplexity falls however dull the
text gets. The judge did not write the samples, so its perplexity rises both
when the text is noise and when it is a loop the corpus never contains.

``measure`` scores any set of continuations, so the held-out text itself
(``real_continuations``: what followed the same prompt in real text) gets the
same numbers and marks the target on both axes.
"""
from __future__ import annotations

import math
import re

import torch

from lmcourse.generate import generate
from lmcourse.metrics import distinct_n, self_bleu
from lmcourse.validate import non_negative_int, number, positive_int

__all__ = ["WORD", "corpus_words", "sample_many", "real_continuations", "model_nll", "measure",
           "diversity_sweep"]

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")  # letters, with inner apostrophes (o'er, 'tis -> tis)


def corpus_words(text: str) -> set[str]:
    """The lower-cased words of ``text``: the vocabulary a sampled word is checked against."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return {w.lower() for w in WORD.findall(text)}


def _complete_words(text: str) -> list[str]:
    """The words of a continuation, without a last word the length limit may have cut short."""
    words = WORD.findall(text)
    if words and text and text[-1].isalpha():
        words = words[:-1]
    return [w.lower() for w in words]


def _as_prompt(prompt) -> torch.Tensor:
    p = torch.as_tensor(prompt)
    if p.ndim != 1 or len(p) == 0 or p.is_floating_point() or p.dtype == torch.bool:
        raise ValueError(f"prompt must be a non-empty 1-D sequence of token ids, got "
                         f"{p.dtype} of shape {tuple(p.shape)}")
    return p.long()


def _check_fits(model, prompt: torch.Tensor, length: int) -> None:
    block = getattr(getattr(model, "config", None), "block_size", None)
    if block is not None and len(prompt) + length > block:
        raise ValueError(f"prompt ({len(prompt)} tokens) + length ({length}) must fit the model's "
                         f"block_size {block}: ask for at most {block - len(prompt)} new tokens")


def sample_many(model, prompt, n: int, length: int, temperature: float = 1.0,
                top_p: float | None = None, seed: int = 0) -> torch.Tensor:
    """``n`` continuations of one prompt, ``length`` new tokens each: a LongTensor ``(n, length)``.

    All ``n`` run as one batch through :func:`lmcourse.generate.generate`
    (temperature 0 is greedy, so its ``n`` rows are identical). ``seed``
    fixes the draws, so two settings differ by their setting, not their luck.
    """
    prompt = _as_prompt(prompt)
    n, length = positive_int("n", n), positive_int("length", length)
    _check_fits(model, prompt, length)
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(non_negative_int("seed", seed))
    out = generate(model, prompt.to(dev).expand(n, -1), length, temperature=temperature,
                   top_p=top_p, generator=g)
    return out[:, len(prompt):].cpu()


def real_continuations(ids, prompt, n: int, length: int) -> torch.Tensor:
    """What followed ``prompt`` in the text ``ids``: up to ``n`` windows ``(n', length)``.

    The windows start right after an occurrence of the prompt and never
    overlap (a later occurrence inside a window is skipped), so no piece of
    text is counted twice. Raises if the text has none.
    """
    ids, prompt = torch.as_tensor(ids).long(), _as_prompt(prompt)
    n, length = positive_int("n", n), positive_int("length", length)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D sequence of token ids, got shape {tuple(ids.shape)}")
    P = len(prompt)
    if len(ids) < P + length:
        raise ValueError(f"ids has {len(ids)} tokens: too short for a prompt of {P} and {length} more")
    windows = ids.unfold(0, P, 1)[: len(ids) - P - length + 1]  # every prompt-sized slice with room after it
    starts = torch.nonzero((windows == prompt).all(dim=1)).flatten().tolist()
    chosen, free_from = [], 0
    for s in starts:
        if s >= free_from:
            chosen.append(s + P)
            free_from = s + P + length
        if len(chosen) == n:
            break
    if not chosen:
        raise ValueError("the prompt never occurs in ids with room for a continuation after it")
    return torch.stack([ids[s:s + length] for s in chosen])


@torch.no_grad()
def model_nll(model, prompt, continuations) -> float:
    """Mean nats per token of ``continuations`` ``(n, L)`` after ``prompt``, under ``model`` at temperature 1."""
    prompt = _as_prompt(prompt)
    cont = torch.as_tensor(continuations).long()
    if cont.ndim != 2 or cont.shape[1] == 0:
        raise ValueError(f"continuations must have shape (n, L) with L >= 1, got {tuple(cont.shape)}")
    _check_fits(model, prompt, cont.shape[1])
    dev = next(model.parameters()).device
    x = torch.cat([prompt.expand(len(cont), -1), cont], dim=1).to(dev)
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(x[:, :-1])
    finally:
        model.train(was_training)
    logp = torch.log_softmax(logits[:, len(prompt) - 1:].double(), dim=-1)  # predictions of the continuation
    return float(-logp.gather(-1, x[:, len(prompt):, None]).mean())


def measure(model, prompt, continuations, decode, judge, vocabulary: set[str]) -> dict:
    """Diversity and quality of one set of continuations ``(n, L)`` of ``prompt``.

    Returns ``distinct_1``, ``distinct_2`` (words), ``self_bleu`` (0-100),
    ``model_ppl`` (perplexity under ``model``), ``judge_ppl`` (under
    ``judge``, anything with ``token_log_probs(ids)`` such as
    :class:`lmcourse.models.NGramModel`, given the prompt too) and
    ``real_words`` (the fraction of complete words found in ``vocabulary``).
    """
    prompt = _as_prompt(prompt)
    cont = torch.as_tensor(continuations).long()
    texts = [decode(row.tolist()) for row in cont]
    P = len(prompt)
    judge_lp = [judge.token_log_probs(torch.cat([prompt, row]).numpy())[P:] for row in cont]
    judge_nll = -sum(float(lp.sum()) for lp in judge_lp) / cont.numel()
    words = [w for t in texts for w in _complete_words(t)]
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "self_bleu": self_bleu(texts),
        "model_ppl": math.exp(model_nll(model, prompt, cont)),
        "judge_ppl": math.exp(judge_nll),
        "real_words": sum(w in vocabulary for w in words) / len(words) if words else 0.0,
        "example": texts[0],
    }


def _label(temperature: float, top_p: float | None) -> str:
    if temperature == 0:
        return "greedy"
    return f"T={temperature:g}" + ("" if top_p is None else f", p={top_p:g}")


def diversity_sweep(model, prompt, settings, *, n: int, length: int, decode, judge,
                    vocabulary: set[str], seed: int = 0) -> list[dict]:
    """One row per decoding setting: ``sample_many`` then ``measure``.

    ``settings`` is a list of dicts with a ``temperature`` and optionally a
    ``top_p`` (``{"temperature": 0}`` is greedy). Each row holds the setting,
    a ``label`` such as ``"T=0.7"`` or ``"T=1, p=0.9"``, and the numbers of
    :func:`measure`. Every setting draws with the same ``seed``.
    """
    if isinstance(settings, dict) or not hasattr(settings, "__iter__"):
        raise TypeError(f"settings must be a list of dicts like {{'temperature': 0.7, 'top_p': 0.9}}, "
                        f"got {type(settings).__name__}")
    rows = []
    for i, s in enumerate(settings):
        if not isinstance(s, dict) or "temperature" not in s or set(s) - {"temperature", "top_p"}:
            raise ValueError(f"setting {i} must be a dict with a 'temperature' and optionally a 'top_p', "
                             f"got {s!r}")
        t = number(f"settings[{i}]['temperature']", s["temperature"], low=0)
        p = s.get("top_p")
        p = None if p is None else number(f"settings[{i}]['top_p']", p, low=0, low_open=True, high=1)
        cont = sample_many(model, prompt, n, length, temperature=t, top_p=p, seed=seed)
        rows.append({"label": _label(t, p), "temperature": t, "top_p": p,
                     **measure(model, prompt, cont, decode, judge, vocabulary)})
    if not rows:
        raise ValueError("settings is empty: give at least one decoding setting")
    return rows
