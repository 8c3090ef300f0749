"""Measuring a corpus, and mixing corpora of unequal size.

Before training on a corpus, look at it: how skewed its word frequencies are
(``zipf_fit``, ``top_share``), how long its documents are (``lengths``),
which characters it uses (``describe_charset``). When several corpora are
mixed into one training stream, ``temperature_weights`` decides how often
each is sampled.

Words are counted with ``lmcourse.data.cleaning.words`` (NFKC, casefolded),
the same key deduplication uses.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lmcourse.data.cleaning import _check_items, words
from lmcourse.validate import number

# ---------------------------------------------------------------------------
# Corpus statistics


@dataclass(frozen=True)
class ZipfFit:
    """A straight line through log(count) vs log(rank): count ≈ C · rank^slope."""

    slope: float
    intercept: float  # natural log of C
    counts: np.ndarray  # all counts, sorted from the most frequent type down
    fit_ranks: tuple[int, int]  # the rank range the line was fitted on

    def predict(self, rank) -> np.ndarray:
        return np.exp(self.intercept) * np.asarray(rank, dtype=float) ** self.slope


def _as_counts(tokens_or_counts) -> np.ndarray:
    if isinstance(tokens_or_counts, Mapping):
        values = list(tokens_or_counts.values())
    elif isinstance(tokens_or_counts, str):
        raise TypeError(
            "expected tokens (a list) or counts (a dict/Counter), got one str: split it first, e.g. words(text)"
        )
    else:
        values = list(Counter(tokens_or_counts).values())
    counts = np.sort(np.asarray(values, dtype=float))[::-1]
    return counts[counts > 0]


def zipf_fit(tokens_or_counts, min_count: int = 5, points: int = 50) -> ZipfFit:
    """Fit Zipf's law, count(rank) ∝ rank^slope, by least squares in log-log space.

    Zipf (1935/1949) observed slope ≈ -1 for word frequencies. Two choices keep
    the fit honest: ranks are sampled evenly in log space (``points`` of them),
    so the thousands of rare types do not outvote the frequent ones; and the
    fit stops at the last type seen at least ``min_count`` times, because below
    that, counts are small integers (1, 2, 3...) that form flat steps.
    """
    counts = _as_counts(tokens_or_counts)
    last = int(np.searchsorted(-counts, -min_count, side="right"))  # ranks with count >= min_count
    if last < 10:
        raise ValueError(f"need at least 10 types seen >= {min_count} times to fit Zipf's law, got {last}")
    ranks = np.unique(np.round(np.logspace(0, np.log10(last), points)).astype(int))
    slope, intercept = np.polyfit(np.log(ranks), np.log(counts[ranks - 1]), 1)
    return ZipfFit(float(slope), float(intercept), counts, (1, last))


def top_share(tokens_or_counts, k: int = 10) -> float:
    """The fraction of all tokens taken by the ``k`` most frequent types."""
    counts = _as_counts(tokens_or_counts)
    return float(counts[:k].sum() / counts.sum()) if len(counts) else 0.0


def lengths(items: Sequence[str], unit: str = "char") -> np.ndarray:
    """Length of each item in characters (``unit="char"``) or in ``words`` (``unit="word"``)."""
    items = _check_items(items)
    if unit == "char":
        return np.array([len(t) for t in items], dtype=int)
    if unit == "word":
        return np.array([len(words(t)) for t in items], dtype=int)
    raise ValueError(f"unit must be 'char' or 'word', got {unit!r}")


@dataclass(frozen=True)
class CharsetReport:
    size: int  # distinct characters
    ascii_printable: int  # of those, printable ASCII (space to ~) plus \n and \t
    other: list[tuple[str, int, str]]  # (char, count, Unicode name) for all the rest, most frequent first


def describe_charset(text: str) -> CharsetReport:
    """Which characters a corpus uses: a character-level vocabulary comes from here, not from a constant."""
    counts = Counter(text)
    plain = [c for c in counts if (" " <= c <= "~") or c in "\n\t"]
    other = [
        (c, n, unicodedata.name(c, f"U+{ord(c):04X}"))
        for c, n in counts.most_common()
        if c not in plain
    ]
    return CharsetReport(len(counts), len(plain), other)


# ---------------------------------------------------------------------------
# Mixing sources of unequal size


def temperature_weights(sizes, temperature: float = 1.0) -> np.ndarray:
    """Sampling probabilities for a mixture of sources: p_i ∝ (n_i / N)^(1/T).

    T = 1 samples in proportion to size (the big source dominates); T -> ∞
    samples every source equally (the small ones are repeated many times).
    Multilingual models sit in between: T = 5 (Arivazhagan et al. 2019), or
    alpha = 1/T = 0.3 in XLM-R (Conneau et al. 2020).
    """
    sizes = np.asarray(list(sizes.values()) if isinstance(sizes, Mapping) else sizes, dtype=float)
    if sizes.ndim != 1 or len(sizes) == 0 or (sizes <= 0).any():
        raise ValueError(f"sizes must be a non-empty list of positive numbers, got {sizes.tolist()}")
    temperature = number("temperature", temperature, low=0, low_open=True)
    p = (sizes / sizes.sum()) ** (1.0 / temperature)
    return p / p.sum()
