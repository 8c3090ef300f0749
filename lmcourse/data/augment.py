"""Data augmentation for text: altered copies of training examples, added to the real ones.

Augmentation *adds* data; cleaning (``lmcourse.data.cleaning``) removes or fixes
it. For images, a flipped cat is still a cat; for text, almost every edit can
change the meaning, so text augmentation is either noise the label survives or
a model that writes new examples:

* **token replacement**: each word, with probability ``p``, becomes a random
  word of the vocabulary (SwitchOut, Wang et al., 2018; data noising, Xie et al., 2017);
* **token masking**: each word, with probability ``p``, becomes a mask token
  (word dropout; BERT's masking is the same edit used as a training task);
* **random swap** and **random deletion**, two of EDA's four edits (Wei & Zou,
  2019); its other two need a synonym dictionary;
* **back-translation** (Sennrich et al., 2016): train a reverse model
  (target -> source) on the parallel data, translate extra *target-language*
  sentences back into synthetic sources, and train on the synthetic pairs. The
  target side, what the model must learn to write, is real text.

Every edit takes a ``random.Random`` or a seed, so a run is reproducible.

    rng = random.Random(0)
    replace_tokens("the dog sees a cat", 0.2, vocabulary, rng)
    noisy_copies(pairs, mask_tokens, copies=2, seed=0, p=0.15)  # sources edited, targets kept
    back_translate(kelvan_sentences, reverse_model.translate)   # (synthetic English, real Kelvan)
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

from lmcourse.validate import non_negative_int, number

__all__ = ["MASK", "replace_tokens", "mask_tokens", "swap_tokens", "delete_tokens", "noisy_copies",
           "back_translate"]

MASK = "<mask>"


def _rng(rng: random.Random | int | None) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if rng is None or (isinstance(rng, int) and not isinstance(rng, bool)):
        return random.Random(rng)
    raise TypeError(f"rng must be a random.Random, an int seed or None, got {type(rng).__name__}")


def _words(sentence: str) -> list[str]:
    if not isinstance(sentence, str):
        raise TypeError(f"sentence must be a string of words, got {type(sentence).__name__}")
    return sentence.split()


def _probability(p) -> float:
    return number("p", p, low=0.0, high=1.0)


def replace_tokens(sentence: str, p: float, vocabulary: Sequence[str], rng: random.Random | int | None = None) -> str:
    """Each word, with probability ``p``, replaced by a different word drawn uniformly from ``vocabulary``.

    "Different" makes ``p`` the rate of changed words exactly, not ``p`` less the
    chance of drawing the same word back. The length is kept.
    """
    p, rng = _probability(p), _rng(rng)
    vocabulary = list(dict.fromkeys(vocabulary))
    if len(vocabulary) < 2:
        raise ValueError(f"vocabulary needs at least 2 distinct words to replace one with another, got {vocabulary}")
    out = []
    for word in _words(sentence):
        if rng.random() < p:
            new = rng.choice(vocabulary)
            while new == word:  # at most a few draws: the vocabulary has 2 or more words
                new = rng.choice(vocabulary)
            word = new
        out.append(word)
    return " ".join(out)


def mask_tokens(sentence: str, p: float, rng: random.Random | int | None = None, mask: str = MASK) -> str:
    """Each word, with probability ``p``, replaced by ``mask``. The length is kept."""
    p, rng = _probability(p), _rng(rng)
    if not isinstance(mask, str) or mask.split() != [mask]:
        raise ValueError(f"mask must be one word without spaces, got {mask!r}")
    return " ".join(mask if rng.random() < p else word for word in _words(sentence))


def swap_tokens(sentence: str, n_swaps: int, rng: random.Random | int | None = None) -> str:
    """EDA's random swap: ``n_swaps`` times, exchange two randomly chosen positions."""
    n_swaps, rng = non_negative_int("n_swaps", n_swaps), _rng(rng)
    words = _words(sentence)
    if len(words) >= 2:
        for _ in range(n_swaps):
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def delete_tokens(sentence: str, p: float, rng: random.Random | int | None = None) -> str:
    """EDA's random deletion: each word dropped with probability ``p``; one word always stays."""
    p, rng = _probability(p), _rng(rng)
    words = _words(sentence)
    kept = [w for w in words if rng.random() >= p]
    if words and not kept:  # an empty sentence is not an example
        kept = [rng.choice(words)]
    return " ".join(kept)


def noisy_copies(pairs: Sequence[tuple[str, str]], edit: Callable[..., str], *, copies: int = 1,
                 seed: int = 0, **edit_args) -> list[tuple[str, str]]:
    """``copies`` edited copies of every ``(source, target)`` pair: ``edit(source, rng=..., **edit_args)``.

    Only the source is edited. The target is what the model learns to write, so
    it stays clean; noise in the input teaches the model to translate from a
    context it cannot fully trust, which is what a regulariser should do. The
    originals are not included: add them yourself (``pairs + noisy_copies(pairs, ...)``).
    """
    copies = non_negative_int("copies", copies)
    if not callable(edit):
        raise TypeError(f"edit must be a function such as mask_tokens, got {type(edit).__name__}")
    pairs = [tuple(p) for p in pairs]
    if any(len(p) != 2 for p in pairs):
        raise ValueError("pairs must be (source, target) pairs")
    rng = random.Random(seed)
    return [(edit(source, rng=rng, **edit_args), target) for _ in range(copies) for source, target in pairs]


def back_translate(targets: Sequence[str], reverse_translate: Callable[[list[str]], list[str]],
                   ) -> list[tuple[str, str]]:
    """Synthetic pairs ``(reverse_translate(target), target)`` for monolingual target-side sentences.

    ``reverse_translate`` maps a list of target-language sentences to a list of
    source-language ones (e.g. ``Translator.translate`` of a model trained on
    the pairs reversed). A back-translation that comes out empty is dropped:
    it would teach the model to write a sentence from nothing.
    """
    if isinstance(targets, str):
        raise TypeError("targets must be a list of sentences, got one string: wrap it in a list")
    targets = list(targets)
    if not all(isinstance(t, str) and t.split() for t in targets):
        raise ValueError("targets must be non-empty sentences (strings)")
    sources = reverse_translate(targets)
    if not isinstance(sources, (list, tuple)) or len(sources) != len(targets):
        raise ValueError(f"reverse_translate must return one sentence per target ({len(targets)}), "
                         f"got {type(sources).__name__} of length {len(sources) if hasattr(sources, '__len__') else '?'}")
    return [(s, t) for s, t in zip(sources, targets) if isinstance(s, str) and s.split()]
