"""Preparing a corpus for a language model: normalise, deduplicate, split, scrub, measure.

A language model learns whatever is in its data, so preparation is about
removing what should not be learned (byte noise, repeated text, test answers,
personal data) while keeping everything it should predict. What a language
model does NOT do is the classic text-classification clean-up: lowercasing,
stemming, removing stop words. The model has to predict every token of real
text, capitals and "the" included.

The module follows a pipeline, one section each:

1. ``normalize_text``: Unicode NFC and whitespace/control characters; meaning-preserving.
2. ``exact_duplicates``, ``near_duplicates`` (MinHash + LSH), ``deduplicate``.
3. ``split_documents`` by document (``contiguous_chunks`` and ``overlap_groups``
   help), and ``contamination``: shared n-grams between splits.
4. ``quality_problems``: Gopher's heuristic quality rules.
5. ``scrub_pii``: e-mail addresses, phone numbers, IPs, card numbers -> typed placeholders.

``words`` is the comparison key shared by these steps. Measuring a corpus
(Zipf's law, lengths, character sets) and mixing corpora of unequal size live
in ``lmcourse.data.statistics``.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np

# ---------------------------------------------------------------------------
# 1. Normalisation

_NORMAL_FORMS = ("NFC", "NFD", "NFKC", "NFKD")
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]")  # CRLF, CR, VT, FF, NEL, Unicode separators
_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")  # Unicode category Zs, except " "
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ufeff]")  # C0/C1 controls but \t \n, and BOMs
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def normalize_text(text: str, form: str = "NFC") -> str:
    """Clean up how text is *encoded* without changing what it *says*.

    - Unicode normal form ``form`` (default NFC): "é" typed as e + combining
      accent and "é" typed as one code point become the same string, so they
      become the same tokens. NFKC would go further and fold compatibility
      characters ("ﬁ" -> "fi", but also "x²" -> "x2"), which can change meaning:
      use it for comparison keys, not for the text you train on.
    - Line breaks: CRLF, CR, form feeds and Unicode line separators become "\\n".
    - Space characters (no-break, ideographic, ...) become " "; control
      characters and byte-order marks are removed; tabs and newlines stay.
    - Trailing spaces at the end of lines are removed.

    Deliberately NOT done: lowercasing, collapsing runs of spaces inside a line
    (that would break the indentation of code), removing accents or punctuation.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects a str, got {type(text).__name__}")
    if form not in _NORMAL_FORMS:
        raise ValueError(f"form must be one of {', '.join(_NORMAL_FORMS)}, got {form!r}")
    text = unicodedata.normalize(form, text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _SPACES.sub(" ", text)
    text = _CONTROLS.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    # Cleaning may have produced a new combining sequence (a control char
    # between a letter and its accent): normalise once more.
    return unicodedata.normalize(form, text)


# ---------------------------------------------------------------------------
# Hashing words and n-grams (shared by deduplication and contamination checks)
#
# Text is turned into an array of 64-bit token hashes, and an n-gram into one
# 64-bit hash of n consecutive token hashes, computed for all positions at once
# with NumPy. Hashes are stable across runs (no Python hash randomisation), so
# results are reproducible.

_WORD = re.compile(r"\w+")
_U64 = np.uint64
_MULT = _U64(0x100000001B3)  # an odd multiplier for the rolling polynomial


def words(text: str) -> list[str]:
    """The word tokens used to compare texts: NFKC, casefolded, runs of letters/digits.

    A comparison key, not a tokenizer for training: punctuation and case are
    dropped so that "Exit." and "exit" count as the same words.
    """
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: scrambles 64-bit integers so every output bit depends on every input bit."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


@functools.lru_cache(maxsize=1 << 20)
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def _token_hashes(tokens: Sequence[str]) -> np.ndarray:
    """A stable 64-bit hash for each token (cached: words repeat a lot)."""
    return np.fromiter(map(_token_hash, tokens), dtype=_U64, count=len(tokens))


def _ngram_hashes(token_hashes: np.ndarray, n: int) -> np.ndarray:
    """One hash per window of ``n`` consecutive tokens (empty if fewer than ``n`` tokens)."""
    m = len(token_hashes) - n + 1
    if m <= 0:
        return np.empty(0, dtype=_U64)
    h = np.zeros(m, dtype=_U64)
    for j in range(n):  # h = t0*M^(n-1) + t1*M^(n-2) + ... (mod 2^64), then scrambled
        h = h * _MULT + token_hashes[j : j + m]
    return _mix64(h)


def _units(text: str, unit: str) -> list[str]:
    if unit == "word":
        return words(text)
    if unit == "char":
        # Characters of the comparison key, with runs of whitespace as one space.
        return list(" ".join(unicodedata.normalize("NFKC", text).casefold().split()))
    raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")


def shingles(text: str, n: int = 5, unit: str = "word") -> np.ndarray:
    """The set of hashed n-grams ("shingles", Broder 1997) of ``text``, as a sorted array.

    ``unit="word"`` suits documents (Lee et al. 2022 use word 5-grams);
    ``unit="char"`` suits short lines and languages written without spaces.
    A text shorter than ``n`` units is one shingle: the whole text.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of {unit}s, got {n}")
    units = _units(text, unit)
    if not units:
        return np.empty(0, dtype=_U64)
    hashes = _token_hashes(units)
    return np.unique(_ngram_hashes(hashes, min(n, len(units))))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| for two sorted arrays of distinct shingles (0 if both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


# ---------------------------------------------------------------------------
# 2. Deduplication


@dataclass(frozen=True)
class Drop:
    """Why one item was removed: it repeats item ``duplicate_of`` (which is kept)."""

    index: int
    duplicate_of: int
    reason: str  # "exact" or "near"
    similarity: float  # 1.0 for exact duplicates, the shingle Jaccard for near ones


@dataclass(frozen=True)
class Dedup:
    """The outcome of deduplicating ``n_items`` items: what was kept, what was dropped and why."""

    n_items: int
    kept: list[int]
    dropped: list[Drop]

    @property
    def rate(self) -> float:
        """The fraction of items removed as duplicates."""
        return len(self.dropped) / self.n_items if self.n_items else 0.0

    def apply(self, items: Sequence) -> list:
        """The kept items, in their original order."""
        if len(items) != self.n_items:
            raise ValueError(f"this Dedup was computed on {self.n_items} items, got {len(items)}")
        return [items[i] for i in self.kept]

    def reasons(self) -> Counter:
        return Counter(d.reason for d in self.dropped)


def _check_items(items) -> list[str]:
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TypeError("expected a sequence of strings (documents or lines), e.g. text.splitlines()")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"item {i} is a {type(item).__name__}, expected str")
    return list(items)


def exact_duplicates(items: Sequence[str]) -> Dedup:
    """Drop every item whose normalised text equals an earlier item's; keep the first copy.

    The key is a SHA-1 of ``normalize_text(item).strip()``: storing 20-byte
    hashes instead of the texts is how this scales to billions of documents.
    """
    items = _check_items(items)
    first: dict[bytes, int] = {}
    kept, dropped = [], []
    for i, item in enumerate(items):
        key = hashlib.sha1(normalize_text(item).strip().encode()).digest()
        if key in first:
            dropped.append(Drop(i, first[key], "exact", 1.0))
        else:
            first[key] = i
            kept.append(i)
    return Dedup(len(items), kept, dropped)


class MinHasher:
    """MinHash signatures (Broder 1997): short sketches whose agreement estimates Jaccard similarity.

    For a random hash function h, P[min h(A) = min h(B)] = |A ∩ B| / |A ∪ B|.
    With ``num_perm`` independent hash functions the fraction of equal
    signature entries estimates the Jaccard similarity, with standard error
    about sqrt(J(1-J)/num_perm). Each hash function is splitmix64 applied to
    the shingle hash XOR a different random seed.
    """

    def __init__(self, num_perm: int = 128, seed: int = 0):
        if num_perm < 1:
            raise ValueError(f"num_perm must be >= 1, got {num_perm}")
        self.num_perm = num_perm
        self.seeds = np.random.default_rng(seed).integers(0, 2**63, size=num_perm, dtype=np.int64).astype(_U64)

    def signature(self, shingle_set: np.ndarray) -> np.ndarray:
        """A (num_perm,) uint64 signature; an empty set gets the all-max signature."""
        if len(shingle_set) == 0:
            return np.full(self.num_perm, np.iinfo(_U64).max, dtype=_U64)
        return _mix64(shingle_set[:, None] ^ self.seeds[None, :]).min(axis=0)

    @staticmethod
    def estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
        return float(np.mean(sig_a == sig_b))


def lsh_candidate_probability(similarity, bands: int, rows: int):
    """P(two items with Jaccard ``similarity`` share at least one LSH bucket) = 1 - (1 - s^r)^b.

    This S-shaped curve rises steeply around s ≈ (1/b)^(1/r): pairs far above
    it are almost surely compared, pairs far below almost never.
    """
    s = np.asarray(similarity, dtype=float)
    return 1.0 - (1.0 - s**rows) ** bands


def near_duplicates(
    items: Sequence[str],
    threshold: float = 0.8,
    n: int = 5,
    unit: str = "word",
    num_perm: int = 128,
    bands: int = 32,
    seed: int = 0,
) -> Dedup:
    """Drop items whose shingle sets have Jaccard similarity >= ``threshold`` with an earlier kept item.

    Comparing all pairs costs O(N²). Locality-sensitive hashing avoids it: cut
    each MinHash signature into ``bands`` bands of ``num_perm // bands`` rows
    and put the item in one bucket per band; only items sharing a bucket are
    compared (see ``lsh_candidate_probability``). Candidates are then checked
    with their exact Jaccard similarity, so LSH can miss a pair (rarely, for
    the default 32 bands of 4 rows) but never invents one.
    Items with no words are kept and never compared: ``exact_duplicates`` handles them.
    """
    items = _check_items(items)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold is a Jaccard similarity in (0, 1], got {threshold}")
    if bands < 1 or num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a positive multiple of bands ({bands})")
    rows = num_perm // bands
    hasher = MinHasher(num_perm, seed)
    sets = [shingles(item, n, unit) for item in items]

    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    kept, dropped = [], []
    for i, s in enumerate(sets):
        if len(s) == 0:
            kept.append(i)
            continue
        sig = hasher.signature(s)
        keys = [sig[b * rows : (b + 1) * rows].tobytes() for b in range(bands)]
        candidates = sorted({j for b, key in enumerate(keys) for j in buckets[b].get(key, ())})
        best, best_sim = -1, 0.0
        for j in candidates:
            sim = jaccard(s, sets[j])
            if sim > best_sim:
                best, best_sim = j, sim
        if best >= 0 and best_sim >= threshold:
            dropped.append(Drop(i, best, "near", best_sim))
            continue
        kept.append(i)
        for b, key in enumerate(keys):
            buckets[b].setdefault(key, []).append(i)
    return Dedup(len(items), kept, dropped)


def deduplicate(items: Sequence[str], near: bool = True, **near_options) -> Dedup:
    """Exact deduplication, then (if ``near``) near-duplicate removal on what is left.

    Indices in the result refer to the original ``items``; a near duplicate's
    ``duplicate_of`` is the original index of the kept item it resembles.
    """
    items = _check_items(items)
    exact = exact_duplicates(items)
    if not near:
        return exact
    rest = exact.apply(items)
    fuzzy = near_duplicates(rest, **near_options)
    original = exact.kept  # position in `rest` -> index in `items`
    dropped = exact.dropped + [
        Drop(original[d.index], original[d.duplicate_of], d.reason, d.similarity) for d in fuzzy.dropped
    ]
    kept = [original[k] for k in fuzzy.kept]
    return Dedup(len(items), kept, sorted(dropped, key=lambda d: d.index))


# ---------------------------------------------------------------------------
# 3. Splits without leakage


def _as_documents(docs) -> dict[Hashable, str]:
    """Documents as {key: text}: a mapping is used as is, a sequence is keyed by position."""
    if isinstance(docs, str):
        raise TypeError("expected several documents (a dict of name -> text, or a list of texts), got one str")
    pairs = docs.items() if isinstance(docs, Mapping) else enumerate(docs)
    out = {}
    for key, text in pairs:
        if not isinstance(text, str):
            raise TypeError(f"document {key!r} is a {type(text).__name__}, expected str")
        out[key] = text
    return out


@dataclass(frozen=True)
class DocumentSplits:
    """Whole documents assigned to train / validation / test, as {key: text} dicts."""

    train: dict
    val: dict
    test: dict

    def chars(self) -> dict[str, int]:
        return {name: sum(map(len, part.values())) for name, part in self.parts().items()}

    def parts(self) -> dict[str, dict]:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_documents(
    docs, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, groups: Iterable[Iterable] = ()
) -> DocumentSplits:
    """Shuffle whole documents and cut the list so each split gets about its share of characters.

    Splitting by document (a play, a web page, a manual section) instead of by
    line keeps each text on one side: lines of the same scene share names,
    phrases and context, so a line-level split lets the test set leak into
    training and makes held-out loss look better than it is.
    ``docs`` is a dict {name: text} or a list of texts (then keys are positions).
    ``groups`` lists sets of keys that must stay together (e.g. from
    ``overlap_groups``); every other document is a group of its own.
    """
    docs = _as_documents(docs)
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test) summing to 1, got {fractions}"
        )
    units: list[list] = []
    grouped: set = set()
    for group in groups:
        group = list(group)
        for key in group:
            if key not in docs:
                raise ValueError(f"group member {key!r} is not one of the documents")
            if key in grouped:
                raise ValueError(f"document {key!r} is in more than one group")
            grouped.add(key)
        units.append(group)
    units += [[key] for key in docs if key not in grouped]
    position = {key: i for i, key in enumerate(docs)}
    units = sorted((sorted(unit, key=position.get) for unit in units), key=lambda unit: position[unit[0]])

    sizes = [sum(len(docs[k]) for k in unit) for unit in units]
    total = sum(sizes) or 1
    bounds = np.cumsum(fractions)
    parts: list[dict] = [{}, {}, {}]
    done = 0
    for u in np.random.default_rng(seed).permutation(len(units)):
        middle = (done + sizes[u] / 2) / total  # where this unit's middle falls
        part = parts[min(int(np.searchsorted(bounds, middle, side="right")), 2)]
        for key in units[u]:
            part[key] = docs[key]
        done += sizes[u]
    for name, part, frac in zip(("train", "val", "test"), parts, fractions):
        if frac > 0 and not part:
            raise ValueError(
                f"the {name} split got no document: {len(units)} documents (or groups) are too few "
                f"or too unequal in length for fractions {fractions}"
            )
    return DocumentSplits(*parts)


def contiguous_chunks(text: str, n: int, sep: str = "\n\n") -> list[str]:
    """Cut ``text`` at ``sep`` into about ``n`` contiguous pieces of similar length.

    For a corpus whose document boundaries were lost (tiny_shakespeare is
    plays glued together), contiguous chunks are the next best "documents":
    a chunk keeps a scene's lines together. ``sep.join(chunks) == text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    blocks = text.split(sep)
    target = len(text) / n
    chunks, current, size = [], [], 0
    for block in blocks:
        current.append(block)
        size += len(block) + len(sep)
        if size >= target and len(chunks) < n - 1:
            chunks.append(sep.join(current))
            current, size = [], 0
    if current:
        chunks.append(sep.join(current))
    return chunks


def overlap_groups(docs, n: int = 13) -> list[list]:
    """Group documents that share a word ``n``-gram, directly or through a chain of others.

    Returns the groups (lists of keys) with two or more documents, largest
    first. Pass them to ``split_documents(..., groups=...)`` so that a
    document and the one it was copied into (a section quoted inside a
    longer page, two editions of one play) land in the same split. Beware
    chains: in a corpus full of shared passages, a few links can join most
    documents into one group, and then no split is possible. Remove the
    shared passages instead, or use a larger ``n``.
    """
    docs = _as_documents(docs)
    keys = list(docs)
    grams = [np.unique(_ngram_hashes(_token_hashes(words(docs[k])), n)) for k in keys]
    hashes = np.concatenate(grams) if grams else np.empty(0, dtype=_U64)
    owner = np.repeat(np.arange(len(keys)), [len(g) for g in grams])
    order = np.argsort(hashes, kind="stable")
    hashes, owner = hashes[order], owner[order]
    shared = hashes[1:] == hashes[:-1]  # consecutive equal n-grams belong to different documents
    pairs = np.unique(np.stack([owner[:-1][shared], owner[1:][shared]], axis=1), axis=0)

    parent = list(range(len(keys)))  # union-find over documents

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        parent[root(a)] = root(b)
    groups: dict[int, list] = {}
    for i, key in enumerate(keys):
        groups.setdefault(root(i), []).append(key)
    return sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)


@dataclass(frozen=True)
class Contamination:
    """How much of a test set also occurs in the training set, as shared word n-grams."""

    n: int
    test_ngrams: int  # n-grams (positions) in the test documents
    overlapping: int  # of those, how many also occur somewhere in training
    contaminated: list  # keys of test documents sharing at least one n-gram with training
    examples: list[str] = field(default_factory=list)  # a few shared n-grams, as text

    @property
    def fraction(self) -> float:
        return self.overlapping / self.test_ngrams if self.test_ngrams else 0.0


def contamination(train, test, n: int = 13, max_examples: int = 5) -> Contamination:
    """Find test documents that share a word ``n``-gram with any training document.

    GPT-3's contamination analysis (Brown et al. 2020) flagged benchmark items
    sharing a 13-gram with the training data: 13 words in a row are almost
    never shared by chance, so an overlap means the text itself was seen.
    ``train`` and ``test`` are dicts {name: text}, lists of texts, or one str.
    n-grams never span two documents.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    train_docs = _as_documents([train] if isinstance(train, str) else train)
    test_docs = _as_documents([test] if isinstance(test, str) else test)
    train_grams = [_ngram_hashes(_token_hashes(words(t)), n) for t in train_docs.values()]
    seen = np.unique(np.concatenate(train_grams)) if train_grams else np.empty(0, dtype=_U64)

    total = overlapping = 0
    flagged, examples = [], []
    for key, text in test_docs.items():
        ws = words(text)
        grams = _ngram_hashes(_token_hashes(ws), n)
        # `seen` is sorted: binary search is O(m log N) per document, where
        # np.isin would re-sort all N training n-grams for every test document.
        at = np.minimum(np.searchsorted(seen, grams), max(len(seen) - 1, 0))
        hit = seen[at] == grams if len(seen) else np.zeros(len(grams), dtype=bool)
        total += len(grams)
        overlapping += int(hit.sum())
        if hit.any():
            flagged.append(key)
            for pos in np.flatnonzero(hit)[: max_examples - len(examples)]:
                examples.append(" ".join(ws[pos : pos + n]))
    return Contamination(n, total, overlapping, flagged, examples)


# ---------------------------------------------------------------------------
# 4. Quality filtering

GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("•", "‣", "●", "◦", "-", "*", "·")


def quality_problems(text: str) -> list[str]:
    """The heuristic quality rules of Gopher's MassiveWeb (Rae et al. 2021) that ``text`` breaks.

    An empty list means the document passes. The rules catch machine-made
    text (lists of keywords, tables of symbols, navigation menus) cheaply:
    50 to 100,000 words; mean word length 3 to 10 characters; at most 0.1
    "#" or ellipses per word; at most 90% of lines starting with a bullet and
    30% ending with an ellipsis; at least 80% of words containing a letter;
    and at least two occurrences of the stop words "the be to of and that have with".
    That last rule is why a language model keeps stop words: their presence
    is what real prose looks like.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    tokens = text.split()
    n = len(tokens)
    if n == 0:
        return ["no words"]
    problems = []
    if not 50 <= n <= 100_000:
        problems.append(f"{n} words (want 50 to 100,000)")
    mean_length = sum(map(len, tokens)) / n
    if not 3 <= mean_length <= 10:
        problems.append(f"mean word length {mean_length:.1f} (want 3 to 10)")
    for symbol, count in (("#", text.count("#")), ("ellipsis", text.count("...") + text.count("…"))):
        if count / n > 0.1:
            problems.append(f"{count / n:.3f} {symbol} per word (want <= 0.1)")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines:
        bullets = sum(line.startswith(_BULLETS) for line in lines) / len(lines)
        if bullets > 0.9:
            problems.append(f"{bullets:.0%} of lines start with a bullet (want <= 90%)")
        ellipses = sum(line.endswith(("...", "…")) for line in lines) / len(lines)
        if ellipses > 0.3:
            problems.append(f"{ellipses:.0%} of lines end with an ellipsis (want <= 30%)")
    alphabetic = sum(any(c.isalpha() for c in t) for t in tokens) / n
    if alphabetic < 0.8:
        problems.append(f"{alphabetic:.1%} of words contain a letter (want >= 80%)")
    stop = sum(w in GOPHER_STOP_WORDS for w in words(text))
    if stop < 2:
        listed = " ".join(sorted(GOPHER_STOP_WORDS))
        problems.append(f"{stop} occurrences of the stop words {listed} (want >= 2)")
    return problems


# ---------------------------------------------------------------------------
# 5. Personal data


def luhn_valid(number: str) -> bool:
    """The Luhn checksum used by payment card numbers (and IMEIs).

    From the right, double every second digit (subtracting 9 if that exceeds
    9) and add all digits: valid numbers give a multiple of 10. Separators
    (spaces, hyphens) are ignored; anything else makes the number invalid.
    """
    digits = [int(c) for c in number if c.isdigit()]
    if not digits or any(not (c.isdigit() or c in " -") for c in number):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Each pattern finds candidates; a validator (where given) decides. Order
# matters: e-mails first (they contain dots and digits), then IP addresses and
# card numbers, whose digit groups would otherwise look like phone numbers.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"  # one part of a domain name
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*"  # local part, not glued to a preceding word
    rf"@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,}}"  # domain ending in a top-level domain
    r"(?![\w@-])"  # ...and not running on ("a@b.com." keeps its full stop)
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_CARD = re.compile(r"(?<![\w+-])\d(?:[ -]?\d){12,18}(?![\w-])")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0958, +1 (555) 123-4567
    r"|\(\d{2,5}\)[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,2}"  # (555) 123-4567, (020) 7946 0958
    r"|\d{3}([-.])\d{3}\1\d{4}"  # 555-123-4567, 555.123.4567
    r")(?![\w])"
)


def _ip_ok(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if address.version == 6:  # "a::b" slices and "12:30:45" times are not addresses
        return sum(1 for g in candidate.split(":") if g) >= 3
    return True


def _phone_ok(candidate: str) -> bool:
    return 7 <= sum(c.isdigit() for c in candidate) <= 15  # E.164 allows at most 15 digits


# (kind, pattern, validator or None), applied in this order.
PII_PATTERNS: list[tuple[str, re.Pattern, object]] = [
    ("EMAIL", _EMAIL, None),
    ("IP", _IPV4, _ip_ok),
    ("IP", _IPV6, _ip_ok),
    ("CREDIT_CARD", _CARD, luhn_valid),
    ("SSN", _SSN, None),
    ("PHONE", _PHONE, _phone_ok),
]
PII_KINDS = ("EMAIL", "IP", "CREDIT_CARD", "SSN", "PHONE")


@dataclass(frozen=True)
class Scrubbed:
    text: str
    counts: Counter  # placeholder kind -> how many replacements


def scrub_pii(text: str, kinds: str | Iterable[str] | None = None) -> Scrubbed:
    """Replace e-mail addresses, IP addresses, card numbers, SSNs and phone numbers with <KIND>.

    Card numbers are replaced only if they pass the Luhn check (nine in ten
    random 16-digit numbers fail it), IPs only if they parse as addresses.
    ``kinds`` picks a subset, e.g. ``["EMAIL", "PHONE"]``; ``counts`` says how
    many of each were replaced.
    This is pattern matching: it cannot find names, street addresses or
    anything written in an unexpected format ("alice at example dot com"),
    and it will sometimes replace a harmless number that looks like a phone.
    """
    if not isinstance(text, str):
        raise TypeError(f"scrub_pii expects a str, got {type(text).__name__}")
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = set(PII_KINDS if kinds is None else kinds)
    unknown = kinds - set(PII_KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {', '.join(PII_KINDS)}")
    counts: Counter = Counter()
    for kind, pattern, valid in PII_PATTERNS:
        if kind not in kinds:
            continue

        def replace(match: re.Match, kind=kind, valid=valid) -> str:
            if valid is not None and not valid(match.group(0)):
                return match.group(0)  # looked like one, but is not (e.g. fails the Luhn check)
            counts[kind] += 1
            return f"<{kind}>"

        text = pattern.sub(replace, text)
    return Scrubbed(text, counts)
