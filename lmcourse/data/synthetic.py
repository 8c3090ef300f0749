"""Synthetic text whose entropy rate is known exactly.

A real corpus never tells you how good a model *could* be. A random sparse
Markov chain of order k does: each context of k symbols allows only a few next
symbols, with fixed probabilities, so the best any model can do is the chain's
own conditional entropy averaged over how often each context occurs:

    H = sum_c  pi(c) * H(next | c)        (nats per symbol)

where pi is the stationary distribution over contexts. A model's cross-entropy
on text from the chain can approach H but never go below it (in expectation).
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

ALPHABET = string.ascii_lowercase + string.digits + string.ascii_uppercase


@dataclass
class MarkovSource:
    """A random order-``order`` Markov chain over ``vocab_size`` symbols.

    Each context allows ``branching`` next symbols with Dirichlet(``concentration``)
    probabilities. Smaller ``concentration`` means more skewed choices, lower entropy.
    """

    vocab_size: int = 16
    order: int = 2
    branching: int = 3
    concentration: float = 1.0
    seed: int = 0
    transition: np.ndarray = field(init=False, repr=False)  # (V**order, V)
    stationary: np.ndarray = field(init=False, repr=False)  # (V**order,)

    def __post_init__(self):
        V, k, b = self.vocab_size, self.order, self.branching
        if not 2 <= V <= len(ALPHABET):
            raise ValueError(f"vocab_size must be between 2 and {len(ALPHABET)}, got {V}")
        if k < 1 or V**k > 200_000:
            raise ValueError(f"order must be >= 1 with vocab_size**order <= 200000, got order={k}")
        if not 1 <= b <= V:
            raise ValueError(f"branching must be between 1 and vocab_size={V}, got {b}")
        rng = np.random.default_rng(self.seed)
        # Resample until the chain has a single closed class of contexts (every
        # context leads into it): then the stationary distribution, and H, are
        # unique. Contexts outside the class are transient and never sampled.
        for _ in range(100):
            self.transition = self._random_transition(rng)
            self.stationary = self._stationary_distribution()
            if self._all_reach(int(np.argmax(self.stationary))):
                break
        else:
            raise ValueError("could not build a chain with one closed class: raise branching")

    # -- construction -------------------------------------------------------
    def _random_transition(self, rng) -> np.ndarray:
        V, n_ctx, b = self.vocab_size, self.vocab_size**self.order, self.branching
        P = np.zeros((n_ctx, V))
        for c in range(n_ctx):
            support = rng.choice(V, size=b, replace=False)
            P[c, support] = rng.dirichlet(np.full(b, self.concentration))
        return P

    def _next_context(self, ctx: np.ndarray, sym: np.ndarray) -> np.ndarray:
        # A context is the base-V number of its k symbols, oldest first.
        return (ctx * self.vocab_size) % (self.vocab_size**self.order) + sym

    def _all_reach(self, target: int) -> bool:
        """Whether every context can reach ``target`` (search backwards from it)."""
        n_ctx = self.vocab_size**self.order
        ctx, sym = np.nonzero(self.transition > 0)
        nxt = self._next_context(ctx, sym)
        predecessors = [[] for _ in range(n_ctx)]
        for a, b in zip(ctx, nxt):
            predecessors[b].append(a)
        seen, stack = {target}, [target]
        while stack:
            for a in predecessors[stack.pop()]:
                if a not in seen:
                    seen.add(a)
                    stack.append(a)
        return len(seen) == n_ctx

    def _stationary_distribution(self) -> np.ndarray:
        n_ctx = self.vocab_size**self.order
        ctx, sym = np.nonzero(self.transition > 0)
        nxt = self._next_context(ctx, sym)
        prob = self.transition[ctx, sym]
        if self.branching == 1:
            # Deterministic chain: the lazy power iteration below would need about
            # cycle_length**2 steps (seconds, or no convergence at all), so walk the
            # map instead. n_ctx steps surely land on a cycle; pi is uniform on it.
            c = 0
            for _ in range(n_ctx):
                c = nxt[c]  # one successor per context, rows in order: nxt[c] follows c
            on_cycle = [c]
            while nxt[on_cycle[-1]] != c:
                on_cycle.append(nxt[on_cycle[-1]])
            pi = np.zeros(n_ctx)
            pi[on_cycle] = 1.0 / len(on_cycle)
            return pi
        pi = np.full(n_ctx, 1.0 / n_ctx)
        # Power iteration on the lazy chain (I + P) / 2: same fixed point as P,
        # but it converges even when P is periodic.
        for _ in range(100_000):
            step = np.bincount(nxt, weights=pi[ctx] * prob, minlength=n_ctx)
            new = 0.5 * (pi + step)
            if np.abs(new - pi).sum() < 1e-13:
                new[new < 1e-12] = 0.0  # transient contexts: mass that has drained away
                return new / new.sum()
            pi = new
        raise RuntimeError("stationary distribution did not converge")

    # -- the numbers ----------------------------------------------------------
    @property
    def alphabet(self) -> str:
        return ALPHABET[: self.vocab_size]

    @property
    def entropy_rate(self) -> float:
        """Exact entropy rate in nats per symbol: the floor for any model's cross-entropy."""
        P = self.transition
        with np.errstate(divide="ignore", invalid="ignore"):
            h_ctx = -np.where(P > 0, P * np.log(P), 0.0).sum(axis=1)
        return float(self.stationary @ h_ctx)

    @property
    def entropy_rate_bits(self) -> float:
        return self.entropy_rate / np.log(2)

    # -- sampling and scoring ---------------------------------------------
    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` symbols (ints in [0, vocab_size)) starting from the stationary distribution."""
        rng = np.random.default_rng(self.seed + 1 if seed is None else seed)
        V, k = self.vocab_size, self.order
        ctx = int(rng.choice(V**k, p=self.stationary))
        out = np.empty(n + k, dtype=np.int64)
        for i in range(k - 1, -1, -1):  # unpack the starting context, oldest first
            out[i] = ctx % V
            ctx //= V
        ctx = int(np.dot(out[:k], V ** np.arange(k - 1, -1, -1)))
        cdf = np.cumsum(self.transition, axis=1)
        u = rng.random(n)
        for t in range(n):
            sym = min(int(np.searchsorted(cdf[ctx], u[t], side="right")), V - 1)
            while self.transition[ctx, sym] == 0:  # guard against float round-off at the top
                sym -= 1
            out[k + t] = sym
            ctx = (ctx * V) % V**k + sym
        return out[k:] if n >= 0 else out[:0]

    def sample_text(self, n: int, seed: int | None = None) -> str:
        alphabet = self.alphabet
        return "".join(alphabet[i] for i in self.sample(n, seed))

    def nll(self, tokens) -> float:
        """Mean negative log-likelihood (nats) of ``tokens[order:]`` under the true chain."""
        x = np.asarray(tokens, dtype=np.int64)
        V, k = self.vocab_size, self.order
        if x.ndim != 1 or len(x) <= k:
            raise ValueError(f"need a 1-D sequence longer than order={k}, got shape {x.shape}")
        ctx = np.zeros(len(x) - k, dtype=np.int64)
        for j in range(k):
            ctx = ctx * V + x[j : len(x) - k + j]
        p = self.transition[ctx, x[k:]]
        if np.any(p == 0):
            return float("inf")
        return float(-np.log(p).mean())
