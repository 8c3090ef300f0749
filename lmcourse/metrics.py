"""Numbers that say how good a model is.

Three families, one section each:

- Language modelling: cross-entropy and perplexity, and the unit conversions
  between nats, bits, tokens and characters.
- Classification: accuracy, precision, recall and F1 (equal to scikit-learn).
- Generated text against references: ROUGE-1/2/L with the longest common
  subsequence behind ROUGE-L (equal to ``rouge_score``), and corpus BLEU with
  the 13a tokenizer (equal to ``sacrebleu``).
- Generated text against itself, how diverse a set of samples is: distinct-n
  and self-BLEU (lesson 11).

How *fast* a model generates (time to first token, per-token latency,
throughput) is a measurement of the system, not of the text: it lives in
``lmcourse.speed``.

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
    "lcs_length",
    "rouge",
    "bleu",
    "tokenize_13a",
    "distinct_n",
    "self_bleu",
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


# ---------------------------------------------------------------------------
# Classification: accuracy, precision, recall, F1
#
# For one class c, count over the examples:
#   tp = predicted c and truly c, fp = predicted c but not c, fn = truly c but missed.
#   precision = tp / (tp + fp)   (of what we called c, how much was c)
#   recall    = tp / (tp + fn)   (of what was c, how much we found)
#   F1        = 2 tp / (2 tp + fp + fn), the harmonic mean of the two.
# A ratio whose denominator is 0 (a class never predicted, or never present) is
# defined as 0.0, scikit-learn's default (zero_division="warn" returns 0).

_AVERAGES = ("binary", "macro", "micro", "weighted")


def _check_labels(y_true, y_pred) -> tuple[list, list]:
    y_true, y_pred = list(y_true), list(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}"
        )
    if not y_true:
        raise ValueError("need at least one example, got empty y_true and y_pred")
    for y in y_true + y_pred:
        if not isinstance(y, Hashable):
            raise ValueError(f"labels must be hashable class labels (int, str, ...), got {y!r}")
    return y_true, y_pred


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def accuracy(y_true, y_pred) -> float:
    """Fraction of examples whose predicted label equals the true label.

    Equal to ``sklearn.metrics.accuracy_score``. On imbalanced data it
    flatters a classifier that always predicts the majority class: look at
    per-class precision and recall (macro F1) too.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def precision_recall_f1(
    y_true, y_pred, average: str = "binary", pos_label=1
) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` from per-class counts, averaged as ``average`` says.

    - ``"binary"``: the scores of the class ``pos_label`` only (at most two
      classes allowed).
    - ``"macro"``: the unweighted mean over classes: every class counts the
      same, so rare classes weigh as much as common ones.
    - ``"micro"``: pool tp, fp, fn over all classes first; with one label per
      example precision = recall = F1 = accuracy.
    - ``"weighted"``: the mean over classes weighted by each class's number of
      true examples (its support).

    The classes are every label seen in ``y_true`` or ``y_pred``. Equal to
    ``sklearn.metrics.precision_recall_fscore_support`` with the same
    ``average`` and ``pos_label``.
    """
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    y_true, y_pred = _check_labels(y_true, y_pred)
    try:
        classes = sorted(set(y_true) | set(y_pred))
    except TypeError:
        raise ValueError("labels must all be of one comparable kind (all ints or all strings)") from None

    if average == "binary":
        if len(classes) > 2:
            raise ValueError(
                f"average='binary' needs at most two classes, got {len(classes)}; "
                "use average='macro', 'micro' or 'weighted'"
            )
        if pos_label not in classes and len(classes) == 2:
            raise ValueError(f"pos_label={pos_label!r} is not one of the labels {classes}")
        classes = [pos_label]

    tp, fp, fn = Counter(), Counter(), Counter()
    for t, p in zip(y_true, y_pred):
        if t == p:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1

    if average == "micro":
        TP, FP, FN = (sum(c[k] for k in classes) for c in (tp, fp, fn))
        return _ratio(TP, TP + FP), _ratio(TP, TP + FN), _ratio(2 * TP, 2 * TP + FP + FN)

    per_class = [
        (_ratio(tp[c], tp[c] + fp[c]), _ratio(tp[c], tp[c] + fn[c]),
         _ratio(2 * tp[c], 2 * tp[c] + fp[c] + fn[c]))
        for c in classes
    ]
    if average == "weighted":
        weights = [tp[c] + fn[c] for c in classes]  # support: true examples of each class
    else:  # binary (a single class) or macro
        weights = [1] * len(classes)
    total = sum(weights)
    return tuple(  # type: ignore[return-value]
        _ratio(sum(w * scores[i] for w, scores in zip(weights, per_class)), total)
        for i in range(3)
    )


def f1(y_true, y_pred, average: str = "binary", pos_label=1) -> float:
    """F1 score: ``precision_recall_f1(...)[2]``; equal to ``sklearn.metrics.f1_score``."""
    return precision_recall_f1(y_true, y_pred, average=average, pos_label=pos_label)[2]


# ---------------------------------------------------------------------------
# ROUGE (Lin, 2004): overlap of a generated summary with a reference summary
#
# ROUGE-n counts the n-grams the two share (each shared n-gram at most as many
# times as it appears in both); ROUGE-L uses the longest common subsequence,
# which rewards words in the right order without requiring them adjacent.
# Precision divides by the hypothesis' count, recall by the reference's, and
# the reported number is their F-measure, as rouge_score reports it.

_ROUGE_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_ROUGE_VALID = re.compile(r"^[a-z0-9]+$")


def _rouge_tokens(text: str, stemmer=None) -> list[str]:
    """rouge_score's default tokenizer: lowercase, keep runs of [a-z0-9], stem words longer than 3."""
    words = _ROUGE_NON_ALNUM.sub(" ", text.lower()).split()
    if stemmer is not None:
        words = [stemmer.stem(w) if len(w) > 3 else w for w in words]
    # the stemmer could in principle emit other characters: keep only valid tokens
    return [w for w in words if _ROUGE_VALID.match(w)]


def _f_measure(overlap: int, n_hyp: int, n_ref: int) -> float:
    precision = overlap / max(n_hyp, 1)
    recall = overlap / max(n_ref, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _rouge_n(hyp: list[str], ref: list[str], n: int) -> float:
    h, r = _ngrams(hyp, n), _ngrams(ref, n)
    overlap = sum((h & r).values())  # Counter & keeps the minimum count of each n-gram
    return _f_measure(overlap, sum(h.values()), sum(r.values()))


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two token sequences.

    A subsequence keeps the order but may skip tokens: "the cat sat" and "the
    black cat sat down" share "the cat sat" (3). Dynamic programming over
    prefixes, kept one row at a time (O(len(a) * len(b)) time, O(len(b))
    memory): ``row[j]`` is the LCS of the prefix of ``a`` seen so far and
    ``b[:j]``. Tokens are compared with ``==``, so case and spelling count.
    """
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0  # LCS(a[:i-1], b[:j-1])
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = prev_diag + 1 if x == y else max(above, row[j - 1])
            prev_diag = above
    return row[-1]


def _rouge_l(hyp: list[str], ref: list[str]) -> float:
    if not hyp or not ref:
        return 0.0
    return _f_measure(lcs_length(hyp, ref), len(hyp), len(ref))


def rouge(hypotheses: Sequence[str], references: Sequence, stemming: bool = False) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures over hypothesis/reference pairs.

    ``references`` has one entry per hypothesis: a string, or a list of
    strings, in which case each score is the best over those references (as
    ``rouge_score``'s ``score_multi`` does). With ``stemming=True`` words
    longer than three letters are reduced by the Porter stemmer, so "cats" and
    "cat" match. Equal to ``rouge_score.rouge_scorer.RougeScorer(["rouge1",
    "rouge2", "rougeL"], use_stemmer=stemming)`` averaged over the pairs.
    """
    hypotheses, references = _check_pairs(hypotheses, references)
    stemmer = None
    if stemming:
        # The Porter (1980) stemmer is a long list of suffix rules; writing it
        # again is out of this course's scope, so use NLTK's (a dependency of
        # rouge_score), the very stemmer rouge_score calls.
        from nltk.stem.porter import PorterStemmer
        stemmer = PorterStemmer()

    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, refs in zip(hypotheses, references):
        h = _rouge_tokens(hyp, stemmer)
        scores = [
            (_rouge_n(h, r, 1), _rouge_n(h, r, 2), _rouge_l(h, r))
            for r in (_rouge_tokens(ref, stemmer) for ref in refs)
        ]
        for i, key in enumerate(totals):
            totals[key] += max(s[i] for s in scores)
    return {key: value / len(hypotheses) for key, value in totals.items()}


def _check_pairs(hypotheses, references) -> tuple[list[str], list[list[str]]]:
    """Check hypotheses against references; return references as a list of lists of strings."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise ValueError("hypotheses and references must be lists of strings, not a single string")
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"need one reference entry per hypothesis, got {len(hypotheses)} hypotheses "
            f"and {len(references)} references"
        )
    if not hypotheses:
        raise ValueError("need at least one hypothesis")
    refs_list = []
    for i, (hyp, refs) in enumerate(zip(hypotheses, references)):
        if not isinstance(hyp, str):
            raise ValueError(f"hypothesis {i} must be a string, got {type(hyp).__name__}")
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(
                f"reference entry {i} must be a string or a non-empty list of strings, got {refs!r}"
            )
        refs_list.append(refs)
    return hypotheses, refs_list


# ---------------------------------------------------------------------------
# BLEU (Papineni et al., 2002), as sacrebleu computes it (Post, 2018)
#
# Corpus BLEU pools, over all sentences, the clipped n-gram matches for n = 1..4
# (a hypothesis n-gram counts at most as often as it appears in any single
# reference) and the hypothesis n-gram totals, then takes the geometric mean of
# the four precisions times a brevity penalty exp(1 - r/c) when the hypotheses'
# total length c is below the references' r (for each sentence the reference
# length closest to the hypothesis', the shorter on ties). An order with no
# match gets the "exp" smoothing of mteval-v13a: precision 1 / (2^k * total)
# for the k-th such order.

_MAX_ORDER = 4
_13A_RULES = [
    # punctuation and symbols become tokens of their own
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    # a period or comma is split off unless it sits between digits (3.14, 1,000)
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    # a dash after a digit is split off
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(line: str) -> list[str]:
    """The tokenizer of WMT's mteval-v13a script, sacrebleu's default.

    Undo a few HTML escapes, then put spaces around punctuation (keeping
    numbers like 3.14 and 1,000 whole) and split on whitespace.
    """
    line = line.rstrip()
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&")
                .replace("&lt;", "<").replace("&gt;", ">"))
    line = f" {line} "  # so the rules see a boundary at both ends
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _all_ngrams(tokens: list[str]) -> Counter:
    return Counter(
        tuple(tokens[i:i + n]) for n in range(1, _MAX_ORDER + 1) for i in range(len(tokens) - n + 1)
    )


def bleu(hypotheses: Sequence[str], references: Sequence) -> float:
    """Corpus BLEU on a 0-100 scale, equal to ``sacrebleu.corpus_bleu``'s default.

    ``references`` has one entry per hypothesis: a string, or a list of
    strings when a sentence has several references. Text is tokenized with
    :func:`tokenize_13a`, case-sensitive.
    """
    hypotheses, references = _check_pairs(hypotheses, references)
    correct = [0] * _MAX_ORDER
    total = [0] * _MAX_ORDER
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        h = tokenize_13a(hyp)
        best = Counter()  # max count of each n-gram over the references: the clipping limit
        lengths = []
        for ref in refs:
            r = tokenize_13a(ref)
            lengths.append(len(r))
            best |= _all_ngrams(r)  # Counter | keeps the maximum count
        hyp_len += len(h)
        ref_len += min(lengths, key=lambda n: (abs(n - len(h)), n))
        for ngram, count in _all_ngrams(h).items():
            total[len(ngram) - 1] += count
            correct[len(ngram) - 1] += min(count, best[ngram])

    return _bleu_score(correct, total, hyp_len, ref_len)


def _bleu_score(correct: list[int], total: list[int], hyp_len: int, ref_len: int) -> float:
    """BLEU (0-100) from pooled clipped matches and totals per order and the two lengths."""
    if not any(correct):
        return 0.0
    log_precision = 0.0
    halvings = 1
    for n in range(_MAX_ORDER):
        if total[n] == 0:  # no hypothesis is this long: BLEU is 0 (sacrebleu's log(0))
            return 0.0
        if correct[n] == 0:
            halvings *= 2
            log_precision += math.log(1.0 / (halvings * total[n]))
        else:
            log_precision += math.log(correct[n] / total[n])
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * brevity * math.exp(log_precision / _MAX_ORDER)


# ---------------------------------------------------------------------------
# Diversity of a set of samples: distinct-n and self-BLEU
#
# Both look only at the generated texts, never at a reference: they say how
# much the samples differ from one another, not whether they are any good. A
# model that always writes the same sentence scores the worst on both, however
# fine the sentence; a model that writes random words scores the best.


def _check_texts(texts, minimum: int, what: str) -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"texts must be a list of strings, not a single string ({what})")
    texts = list(texts)
    if len(texts) < minimum:
        raise ValueError(f"{what} needs at least {minimum} text(s), got {len(texts)}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"text {i} must be a string, got {type(t).__name__}")
    return texts


def distinct_n(texts: Sequence[str], n: int, unit: str = "words") -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams over all n-grams of ``texts``, in [0, 1].

    The n-grams of every text are pooled (none spans two texts) and the number
    of different ones is divided by their total, so 1.0 means no n-gram occurs
    twice and 1/len(texts) is what copies of one text score at best. ``unit``
    is ``"words"`` (the 13a tokens BLEU uses, so punctuation counts as a word)
    or ``"chars"``. The value falls as texts get longer or more numerous, even
    at the same diversity: compare sets of the same size and length only.
    Texts with no n-gram at all (blank, or all shorter than n) score 0.0.
    """
    from lmcourse.validate import positive_int

    n = positive_int("n", n)
    if unit not in ("words", "chars"):
        raise ValueError(f"unit must be 'words' or 'chars', got {unit!r}")
    texts = _check_texts(texts, 1, "distinct_n")
    counts = Counter()
    for text in texts:
        tokens = tokenize_13a(text) if unit == "words" else list(text)
        counts.update(_ngrams(tokens, n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0  # no n-gram at all (blank text): nothing varies


def self_bleu(texts: Sequence[str]) -> float:
    """Self-BLEU (Zhu et al., 2018, Texygen), 0-100: how much each text repeats the others.

    Each text in turn is the hypothesis and all the *other* texts are its
    references; the score is the mean of those sentence-level BLEUs (the
    course's :func:`bleu` of one hypothesis, BLEU-4 with sacrebleu's smoothing).
    100 means every text is a copy of another; 0 that no text shares even a
    word with the rest. Equal to ``mean(bleu([t], [others]) for t in texts)``,
    computed in one pass: for every n-gram it keeps the two largest counts
    over the texts, so the clipping limit "largest count among the others" is
    the largest count unless this text holds it, then the second largest.
    """
    texts = _check_texts(texts, 2, "self_bleu")
    tokens = [tokenize_13a(t) for t in texts]
    grams = [_all_ngrams(t) for t in tokens]
    top: dict[tuple, list] = {}  # n-gram -> [largest count, its text, second largest]
    for i, g in enumerate(grams):
        for ngram, c in g.items():
            entry = top.setdefault(ngram, [0, -1, 0])
            if c > entry[0]:
                entry[:] = [c, i, entry[0]]
            elif c > entry[2]:
                entry[2] = c
    lengths = [len(t) for t in tokens]
    scores = []
    for i, g in enumerate(grams):
        correct, total = [0] * _MAX_ORDER, [0] * _MAX_ORDER
        for ngram, c in g.items():
            best, holder, second = top[ngram]
            total[len(ngram) - 1] += c
            correct[len(ngram) - 1] += min(c, second if holder == i else best)
        h = lengths[i]
        others = lengths[:i] + lengths[i + 1:]
        ref_len = min(others, key=lambda r: (abs(r - h), r))  # bleu's closest reference length
        scores.append(_bleu_score(correct, total, h, ref_len) if h else 0.0)
    return sum(scores) / len(scores)
