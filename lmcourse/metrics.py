"""Numbers that say how good a model is.

Three families, one section each:

- Language modelling: cross-entropy and perplexity, and the unit conversions
  between nats, bits, tokens and characters.
- Classification: accuracy, precision, recall and F1 (equal to scikit-learn).
- Generated text against references: ROUGE (equal to ``rouge_score``) and
  corpus BLEU (equal to ``sacrebleu``).

Cross-entropy is the mean negative log-likelihood the model gives to the
tokens that actually came next:

    H = -(1/N) sum_t log p(x_t | x_<t)

measured in nats with the natural log, in bits with log2 (1 nat = 1/ln 2 ≈ 1.4427
bits). Perplexity is exp(H) (or 2**H for H in bits): the number of equally
likely choices that would leave the model as uncertain as it is, its
"effective branching factor". Both are per *token*, so they compare models
only when they share a tokenizer; bits per character (total bits / characters
of text) compares models with different tokenizers.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "cross_entropy",
    "perplexity",
    "perplexity_from_nll",
    "nats_to_bits",
    "bits_to_nats",
    "bits_per_char",
    "accuracy",
    "precision_recall_f1",
    "f1",
    "rouge",
    "bleu",
    "tokenize_13a",
]

LN2 = math.log(2.0)


# ---------------------------------------------------------------------------
# Language modelling: cross-entropy, perplexity and units


def _logits_and_targets(logits, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten ``(..., V)`` logits and ``(...)`` targets to ``(N, V)`` and ``(N,)``, checking both."""
    logits = torch.as_tensor(logits)
    targets = torch.as_tensor(targets)
    if not torch.is_floating_point(logits):
        logits = logits.to(torch.get_default_dtype())
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"targets must have shape {tuple(logits.shape[:-1])} (logits' shape without the "
            f"last, vocabulary, dimension), got {tuple(targets.shape)}"
        )
    if torch.is_floating_point(targets) or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer token ids, got dtype {targets.dtype}")
    if targets.numel() == 0:
        raise ValueError("need at least one target token")
    V = logits.shape[-1]
    if targets.min() < 0 or targets.max() >= V:
        raise ValueError(
            f"targets must be token ids in [0, {V}), got values in "
            f"[{int(targets.min())}, {int(targets.max())}]"
        )
    return logits.reshape(-1, V), targets.reshape(-1).long()


def cross_entropy(logits, targets) -> float:
    """Mean negative log-likelihood, in nats per token, of ``targets`` under ``softmax(logits)``.

    ``logits`` has shape ``(..., V)`` (unnormalised scores), ``targets`` the
    same shape without the last dimension. Equal to
    ``torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))``.
    """
    logits, targets = _logits_and_targets(logits, targets)
    # log_softmax subtracts the row maximum before exponentiating: no overflow
    log_probs = F.log_softmax(logits.double(), dim=-1)
    nll = -log_probs.gather(1, targets[:, None]).squeeze(1)
    return float(nll.mean())


def perplexity(logits, targets) -> float:
    """``exp(cross_entropy(logits, targets))``: the effective number of choices per token."""
    return perplexity_from_nll(cross_entropy(logits, targets))


def perplexity_from_nll(nll: float) -> float:
    """Perplexity from a mean negative log-likelihood in nats per token: ``exp(nll)``."""
    nll = float(nll)
    if math.isnan(nll) or nll < 0:
        raise ValueError(f"a mean negative log-likelihood is a number >= 0, got {nll!r}")
    return math.exp(nll) if nll < 700 else math.inf  # exp overflows a float past ~709


def nats_to_bits(nats: float) -> float:
    """Convert nats to bits: divide by ln 2."""
    return float(nats) / LN2


def bits_to_nats(bits: float) -> float:
    """Convert bits to nats: multiply by ln 2."""
    return float(bits) * LN2


def bits_per_char(nll: float, n_tokens: int | None = None, n_chars: int | None = None) -> float:
    """Bits per character from a mean NLL in nats per token.

    With a character tokenizer a token is a character, so leave ``n_tokens``
    and ``n_chars`` out. With any other tokenizer pass both: the number of
    tokens that were scored and the number of characters of text they cover.
    Then ``bits/char = nll * n_tokens / (n_chars * ln 2)``, a number that
    compares models whatever their tokenizers.
    """
    if (n_tokens is None) != (n_chars is None):
        raise ValueError("pass both n_tokens and n_chars, or neither (one token per character)")
    if n_tokens is None:
        return nats_to_bits(nll)
    if n_tokens <= 0 or n_chars <= 0:
        raise ValueError(f"n_tokens and n_chars must be > 0, got {n_tokens} and {n_chars}")
    return nats_to_bits(float(nll) * n_tokens / n_chars)
