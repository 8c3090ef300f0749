"""Count-based n-gram language models over integer tokens.

An n-gram model makes the Markov assumption: the next token depends only on
the previous ``n - 1`` tokens, so p(x_t | x_<t) = p(x_t | x_{t-n+1} .. x_{t-1}).
The maximum-likelihood estimate is a ratio of counts,

    p_MLE(w | h) = c(h w) / c(h),

which gives probability zero to every n-gram the training text happened not
to contain, so a single unseen n-gram in the test text makes its perplexity
infinite. Smoothing moves some probability onto the unseen events. Two kinds
are implemented:

``"add-k"`` (Laplace smoothing when k = 1) pretends every n-gram was seen k
more times than it was:  p(w | h) = (c(h w) + k) / (c(h) + k V).  Simple, but
with a large vocabulary it hands far too much mass to unseen n-grams.

``"kneser-ney"`` is interpolated Kneser-Ney smoothing (Kneser & Ney, 1995, in
the interpolated form that Chen & Goodman, 1999, found best among the
classical methods). It combines two ideas:

* absolute discounting: subtract a fixed ``D`` (0 < D <= 1) from every seen
  count and give the freed mass, D * N1+(h .) / c(h), to a lower-order
  distribution, where N1+(h .) is the number of distinct tokens seen after h.
  Interpolated means the lower order is always mixed in, not only when
  c(h w) = 0:

      p(w | h) = max(c(h w) - D, 0) / c(h)  +  D * N1+(h .) / c(h) * p(w | h')

  with h' the context h without its oldest token. A context never seen
  (c(h) = 0) uses p(w | h') alone.
* continuation counts: the lower orders are only consulted for contexts the
  higher order knows little about, so they should say how likely w is to
  appear in a *new* context, not how frequent it is. Their counts are the
  number of distinct tokens seen to the left, N1+(. h' w), instead of c(h' w).
  (The textbook example: "Francisco" is common but nearly always follows
  "San", so as a continuation of an unfamiliar word it deserves little mass.)

The recursion ends at the uniform distribution 1/V, so every token gets a
probability above zero. The discount of each order is estimated from the
counts of counts, D = n1 / (n1 + 2 n2) (Ney, Essen & Kneser, 1994), where n1
and n2 are the numbers of n-grams seen exactly once and twice.

Storage is sparse: each order keeps only the n-grams it saw, as sorted base-V
integer ids, and looks them up with ``np.searchsorted``; scoring a whole
sequence is a handful of vectorised array operations per order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lmcourse.generate import sample_next
from lmcourse.validate import non_negative_int, positive_int

__all__ = ["NGramModel", "SMOOTHINGS"]

SMOOTHINGS = ("add-k", "kneser-ney")


@dataclass
class _OrderTable:
    """The counts of one order m: m-grams (context of m - 1 tokens, then the token)."""

    gram_ids: np.ndarray  # sorted base-V ids of the m-grams seen
    gram_counts: np.ndarray  # their counts (continuation counts for lower Kneser-Ney orders)
    context_ids: np.ndarray  # sorted ids of the contexts (m - 1 tokens) seen
    context_totals: np.ndarray  # c(h): sum of gram_counts over the grams with that context
    context_types: np.ndarray  # N1+(h .): how many distinct tokens followed that context
    discount: float  # Kneser-Ney's D for this order (unused by add-k)


def _find(keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each query would sit in the sorted, unique ``keys``, and whether it is there."""
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=np.int64), np.zeros(len(queries), dtype=bool)
    idx = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return idx, keys[idx] == queries


def _gather(values: np.ndarray, idx: np.ndarray, found: np.ndarray) -> np.ndarray:
    """values[idx] where found, else 0."""
    if len(values) == 0:
        return np.zeros(len(idx))
    return np.where(found, values[idx], 0.0)


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The value stored under each query key, 0 for keys never seen."""
    return _gather(values, *_find(keys, queries))


def _make_table(gram_ids: np.ndarray, counts: np.ndarray, vocab_size: int, discount) -> _OrderTable:
    contexts = gram_ids // vocab_size  # sorted because gram_ids is
    context_ids, starts, types = np.unique(contexts, return_index=True, return_counts=True)
    totals = np.add.reduceat(counts, starts) if len(counts) else np.zeros(0, dtype=counts.dtype)
    if discount is None:
        n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
        # With no singletons the formula gives D = 0, which would leave unseen
        # tokens with probability 0: keep a small floor. No data at all: 0.75.
        discount = min(max(n1 / (n1 + 2 * n2), 0.1), 1.0) if n1 + n2 else 0.75
    return _OrderTable(gram_ids, counts.astype(np.float64), context_ids,
                       totals.astype(np.float64), types.astype(np.float64), float(discount))


class NGramModel:
    """An order-``order`` n-gram model over token ids in ``[0, vocab_size)``.

    ``order=1`` is a unigram model, ``order=2`` a bigram model (one token of
    context), and so on. ``smoothing`` is ``"kneser-ney"`` (interpolated
    Kneser-Ney, the default; ``discount=None`` estimates one discount per
    order from the data) or ``"add-k"`` (add ``k`` to every count; ``k=1`` is
    Laplace smoothing).

    The model scores a text from its very first token: where fewer than
    ``order - 1`` tokens of context exist (the start of a text) it uses the
    longest context there is, so the log-probabilities of a sequence add up to
    log p(x_1 .. x_n) by the chain rule.

    >>> model = NGramModel(order=3, vocab_size=4).fit([0, 1, 2, 3, 0, 1, 2, 3])
    >>> round(float(model.prob([0, 1]).sum()), 6)
    1.0
    """

    def __init__(
        self,
        order: int,
        vocab_size: int,
        smoothing: str = "kneser-ney",
        k: float = 1.0,
        discount: float | None = None,
    ):
        order = positive_int("order", order)  # 1 = unigram, 2 = bigram, ...
        vocab_size = positive_int("vocab_size", vocab_size)
        if vocab_size**order > 2**62:
            raise ValueError(
                f"vocab_size**order = {vocab_size}**{order} is too large: n-gram ids are "
                "stored as 64-bit integers; use a lower order or a smaller vocabulary"
            )
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
        if smoothing == "add-k" and not (math.isfinite(k) and k > 0):
            raise ValueError(f"k must be a finite number > 0 (k -> 0 is the unsmoothed MLE), got {k!r}")
        if discount is not None and not (0 < discount <= 1):
            raise ValueError(f"discount must be None (estimate it) or in (0, 1], got {discount!r}")
        self.order = order
        self.vocab_size = vocab_size
        self.smoothing = smoothing
        self.k = float(k)
        self.discount = discount
        self._tables: list[_OrderTable] | None = None

    def __repr__(self) -> str:
        extra = f"k={self.k}" if self.smoothing == "add-k" else f"discount={self.discount}"
        state = "fitted" if self._tables is not None else "not fitted"
        return (f"NGramModel(order={self.order}, vocab_size={self.vocab_size}, "
                f"smoothing={self.smoothing!r}, {extra}) [{state}]")

    # -- input checks -----------------------------------------------------
    def _as_tokens(self, tokens, what: str = "tokens") -> np.ndarray:
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.detach().cpu().numpy()
        x = np.asarray(tokens)
        if x.ndim != 1:
            raise ValueError(f"{what} must be a 1-D sequence of token ids, got shape {x.shape}")
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"{what} must be integer token ids, got dtype {x.dtype}")
        x = x.astype(np.int64)
        if x.size and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(
                f"{what} must be ids in [0, {self.vocab_size}) (vocab_size={self.vocab_size}), "
                f"got values in [{x.min()}, {x.max()}]"
            )
        return x

    def _check_fitted(self) -> list[_OrderTable]:
        if self._tables is None:
            raise RuntimeError("this NGramModel has not been fitted: call model.fit(tokens) first")
        return self._tables

    # -- counting ---------------------------------------------------------
    def fit(self, tokens) -> "NGramModel":
        """Count the n-grams of every order 1..order in ``tokens``; returns ``self``."""
        x = self._as_tokens(tokens)
        if len(x) == 0:
            raise ValueError("cannot fit an n-gram model on an empty sequence")
        V, n = self.vocab_size, self.order
        # ids[m-1]: sorted distinct m-grams and their counts. An m-gram's id is
        # its tokens read as a base-V number, oldest token most significant.
        ids, counts = [], []
        grams = x.copy()  # ids of the m-grams ending at positions m-1, m, ...
        for m in range(1, n + 1):
            if m > 1:
                grams = grams[:-1] * V + x[m - 1:]
            u, c = np.unique(grams, return_counts=True)
            ids.append(u)
            counts.append(c)
        tables = []
        for m in range(1, n + 1):
            gram_ids, gram_counts = ids[m - 1], counts[m - 1]
            if self.smoothing == "kneser-ney" and m < n:
                # Continuation count of an m-gram: how many distinct tokens
                # preceded it, i.e. how many distinct (m+1)-grams end with it.
                gram_ids, gram_counts = np.unique(ids[m] % V**m, return_counts=True)
            tables.append(_make_table(gram_ids, gram_counts, V, self.discount))
        self._tables = tables
        return self

    @property
    def num_ngrams(self) -> tuple[int, ...]:
        """How many distinct m-grams each order m = 1..order stores: the model's size."""
        return tuple(len(t.gram_ids) for t in self._check_fitted())

    @property
    def discounts(self) -> tuple[float, ...]:
        """Kneser-Ney's discount D for each order m = 1..order (given, or estimated by ``fit``)."""
        return tuple(t.discount for t in self._check_fitted())

    # -- probabilities ----------------------------------------------------
    def _probs(self, context_ids: np.ndarray, context_lens: np.ndarray,
               targets: np.ndarray) -> np.ndarray:
        """p(target | context) for N queries at once.

        ``context_ids[i]`` is the base-V id of the last ``context_lens[i]``
        (at most order - 1) tokens before ``targets[i]``.
        """
        V = self.vocab_size
        p = np.full(len(targets), 1.0 / V)  # order 0: the uniform distribution
        for m, table in enumerate(self._check_fitted(), start=1):
            ctx = context_ids % V ** (m - 1)  # the last m - 1 tokens of the context
            c_hw = _lookup(table.gram_ids, table.gram_counts, ctx * V + targets)
            idx, seen = _find(table.context_ids, ctx)  # one search serves c(h) and N1+(h .)
            c_h = _gather(table.context_totals, idx, seen)
            has_context = context_lens >= m - 1  # at a text's start, no context this long exists
            if self.smoothing == "add-k":
                p = np.where(has_context, (c_hw + self.k) / (c_h + self.k * V), p)
            else:
                D = table.discount
                types = _gather(table.context_types, idx, seen)
                p_m = (np.maximum(c_hw - D, 0.0) + D * types * p) / np.maximum(c_h, 1.0)
                p = np.where(has_context & seen, p_m, p)
        return p

    def prob(self, context=()) -> np.ndarray:
        """The next-token distribution, shape ``(vocab_size,)``, after ``context``.

        Only the last ``order - 1`` tokens of ``context`` matter; a shorter
        context (even an empty one) is allowed.
        """
        ctx = self._as_tokens(context, "context")
        n_ctx = min(len(ctx), self.order - 1)
        ctx_id = 0
        for tok in ctx[len(ctx) - n_ctx:]:
            ctx_id = ctx_id * self.vocab_size + int(tok)
        return self._next_token_probs(ctx_id, n_ctx)

    def _next_token_probs(self, ctx_id: int, n_ctx: int) -> np.ndarray:
        V = self.vocab_size
        return self._probs(np.full(V, ctx_id, dtype=np.int64), np.full(V, n_ctx), np.arange(V))

    def token_log_probs(self, tokens) -> np.ndarray:
        """log p(x_t | x_<t) in nats for every position t of ``tokens`` (shape ``(len(tokens),)``)."""
        x = self._as_tokens(tokens)
        V, N = self.vocab_size, len(x)
        context_ids = np.zeros(N, dtype=np.int64)
        for j in range(1, min(self.order, N)):  # the token j steps back is base-V digit j - 1
            context_ids[j:] += x[:-j] * V ** (j - 1)
        context_lens = np.minimum(np.arange(N), self.order - 1)
        return np.log(self._probs(context_ids, context_lens, x))

    def log_prob(self, tokens) -> float:
        """log p(x_1 .. x_n) in nats: the chain rule's sum of next-token log-probabilities."""
        return float(self.token_log_probs(tokens).sum())

    def cross_entropy(self, tokens) -> float:
        """Mean negative log-likelihood of ``tokens``, in nats per token."""
        lp = self.token_log_probs(tokens)
        if len(lp) == 0:
            raise ValueError("need at least one token to measure cross-entropy")
        return float(-lp.mean())

    nll = cross_entropy  # same convention as MarkovSource.nll: mean nats per token

    def perplexity(self, tokens) -> float:
        """exp(cross-entropy): the model's effective number of choices per token."""
        return math.exp(self.cross_entropy(tokens))

    # -- generation -------------------------------------------------------
    def sample(
        self,
        n: int,
        seed: int | None = None,
        context=(),
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> np.ndarray:
        """Generate ``n`` tokens after ``context`` (returned without the context).

        Each step turns ``prob(context)`` into logits and calls
        :func:`lmcourse.generate.sample_next` with ``temperature``, ``top_k``
        and ``top_p`` (temperature 0 is greedy). ``seed`` makes it
        reproducible; ``None`` uses torch's global generator.
        """
        n = non_negative_int("n", n)
        context = self._as_tokens(context, "context")
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        V, keep = self.vocab_size, self.order - 1
        # The context as a base-V id of its last `keep` tokens, updated in place
        # each step: no need to rebuild it from the whole history.
        n_ctx = min(len(context), keep)
        ctx_id = 0
        for tok in context[len(context) - n_ctx:]:
            ctx_id = ctx_id * V + int(tok)
        out = np.empty(n, dtype=np.int64)
        for i in range(n):
            probs = self._next_token_probs(ctx_id, n_ctx)
            with np.errstate(divide="ignore"):  # a zero probability becomes a -inf logit
                logits = torch.from_numpy(np.log(probs))
            out[i] = int(sample_next(logits, temperature, top_k, top_p, generator))
            n_ctx = min(n_ctx + 1, keep)
            ctx_id = (ctx_id * V + out[i]) % V**keep
        return out
