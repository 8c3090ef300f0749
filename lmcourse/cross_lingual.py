"""Two synthetic languages that say the same things, for measuring cross-lingual transfer.

Multilingual models such as mBERT (Devlin et al. 2019), XLM (Lample & Conneau
2019) and XLM-R (Conneau et al. 2020) are trained on many languages at once,
with one subword vocabulary shared by all of them. Fine-tuned on a task in one
language, they do it in others they were never fine-tuned in (Pires et al.
2019; Wu & Dredze 2019). To measure where that comes from we need languages
whose relation is known exactly, so this module generates two from one
grammar of meanings. A meaning says who does what to whom:

    Meaning(subject=Phrase("fox", count=3, adjective="red"), verb="chase", object=Phrase("Anna"))
    language A:  3 red foxes chase Anna .
    language B:  3 vulpoen roso Anna ka kurun .

They differ as real languages do:

* word forms: every content word of A has exactly one translation in B
  (``LEXICON``, a bijection), spelled differently (B's words are invented,
  so any piece they share with A's is chance, as "en" in "children" and "vulpoen");
* word order: A is subject-verb-object with adjectives before the noun
  (English); B is subject-object-verb with adjectives after the noun and the
  object marked by the particle ``ka`` (Japanese, Turkish and Korean put the
  verb last; French and Spanish put most adjectives after the noun);
* morphology: A marks the plural with ``-s`` on the noun and agreement with a
  bare verb ("the fox chases", "3 foxes chase"); B adds ``-en`` to a plural
  noun and ends its verb in ``-at`` (one) or ``-un`` (several), so B's
  agreement reaches from the first word to the last.

And they share what real languages share: names (Anna, Omar, ...), digits and
the full stop are written the same in both, the "anchors" that a shared
vocabulary turns into shared tokens.

    text_a = corpus("a", 2000, seed=0)         # one sentence per line, reproducible
    pairs = parallel(5, seed=1)                # (meaning, A sentence, B sentence)
    report = shared_pieces(tokenizer, text_a, text_b)   # what a shared BPE shares

What carries over from one language to another in such models is studied by
Artetxe et al. (2020): a model pretrained in one language and given only new
word embeddings for another still transfers, so the shared vocabulary is not
the whole story; the layers above the embeddings hold structure that both
languages use. ``bits_per_char`` scores any course GPT on held-out text so
that models with the same tokenizer can be compared with an n-gram.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from lmcourse.data.batching import as_tokens
from lmcourse.scoreboard import token_nll
from lmcourse.validate import integer, positive_int

__all__ = ["LANGUAGES", "NOUNS", "ADJECTIVES", "VERBS", "NAMES", "COUNTS", "LEXICON", "Phrase", "Meaning",
           "random_meaning", "render", "corpus", "parallel", "shared_pieces", "bits_per_char",
           "ngram_bits_per_char", "fresh_embeddings"]

LANGUAGES = ("a", "b")

# A word -> B word. Nouns and verbs are stems: the endings come from the grammar.
NOUNS = {"dog": "vesko", "cat": "mira", "fox": "vulpo", "bird": "pipa", "horse": "kavalo",
         "child": "nino", "king": "rego", "farmer": "agrano"}
ADJECTIVES = {"red": "roso", "small": "piki", "big": "grandi", "old": "veki", "happy": "feli",
              "young": "juni"}
VERBS = {"see": "vid", "like": "am", "chase": "kur", "help": "ajut", "find": "trov", "follow": "sekv"}
NAMES = ("Anna", "Omar", "Lena", "Ravi")  # anchors: the same in both languages
COUNTS = tuple(range(2, 10))  # a plural phrase starts with a digit, the same in both languages
LEXICON = {**NOUNS, **ADJECTIVES, **VERBS, **{name: name for name in NAMES}}

# The grammar words of each language.
A_THE, B_THE, B_OBJECT = "the", "lo", "ka"
B_PLURAL, B_VERB_ONE, B_VERB_MANY = "en", "at", "un"
A_IRREGULAR_PLURAL = {"fox": "foxes", "child": "children"}


@dataclass(frozen=True)
class Phrase:
    """A noun phrase: a name, or ``count`` (1 = "the") of a noun with an optional adjective."""

    head: str  # a noun of NOUNS or a name of NAMES
    count: int = 1
    adjective: str | None = None

    def __post_init__(self):
        if self.head in NAMES:
            if self.count != 1 or self.adjective is not None:
                raise ValueError(f"a name ({self.head!r}) takes no count and no adjective")
            return
        if self.head not in NOUNS:
            raise ValueError(f"a phrase's head must be a noun of {sorted(NOUNS)} or a name of "
                             f"{list(NAMES)}, got {self.head!r}")
        if self.count != 1 and self.count not in COUNTS:
            raise ValueError(f"count must be 1 (singular) or one of {list(COUNTS)}, got {self.count!r}")
        if self.adjective is not None and self.adjective not in ADJECTIVES:
            raise ValueError(f"adjective must be None or one of {sorted(ADJECTIVES)}, got {self.adjective!r}")

    @property
    def plural(self) -> bool:
        return self.count > 1


@dataclass(frozen=True)
class Meaning:
    """Who does what to whom: the thing both languages say."""

    subject: Phrase
    verb: str
    object: Phrase

    def __post_init__(self):
        if self.verb not in VERBS:
            raise ValueError(f"verb must be one of {sorted(VERBS)}, got {self.verb!r}")
        for role in ("subject", "object"):
            if not isinstance(getattr(self, role), Phrase):
                raise TypeError(f"Meaning.{role} must be a Phrase, got {type(getattr(self, role)).__name__}")


def _random_phrase(rng: random.Random) -> Phrase:
    if rng.random() < 0.2:
        return Phrase(rng.choice(NAMES))
    count = 1 if rng.random() < 0.5 else rng.choice(COUNTS)
    adjective = rng.choice(sorted(ADJECTIVES)) if rng.random() < 0.5 else None
    return Phrase(rng.choice(sorted(NOUNS)), count, adjective)


def random_meaning(rng: random.Random) -> Meaning:
    """One meaning drawn with ``rng``: names a fifth of the time, half the phrases plural."""
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
    return Meaning(_random_phrase(rng), rng.choice(sorted(VERBS)), _random_phrase(rng))


def _phrase_a(p: Phrase) -> list[str]:
    if p.head in NAMES:
        return [p.head]
    noun = A_IRREGULAR_PLURAL.get(p.head, p.head + "s") if p.plural else p.head
    return [str(p.count) if p.plural else A_THE] + ([p.adjective] if p.adjective else []) + [noun]


def _phrase_b(p: Phrase) -> list[str]:
    if p.head in NAMES:
        return [p.head]
    noun = NOUNS[p.head] + (B_PLURAL if p.plural else "")
    return [str(p.count) if p.plural else B_THE, noun] + ([ADJECTIVES[p.adjective]] if p.adjective else [])


def render(meaning: Meaning, language: str) -> str:
    """``meaning`` as a sentence of language ``"a"`` or ``"b"``, ending in " ."."""
    if not isinstance(meaning, Meaning):
        raise TypeError(f"meaning must be a Meaning, got {type(meaning).__name__}")
    if language == "a":
        verb = meaning.verb if meaning.subject.plural else meaning.verb + "s"
        words = _phrase_a(meaning.subject) + [verb] + _phrase_a(meaning.object)
    elif language == "b":
        verb = VERBS[meaning.verb] + (B_VERB_MANY if meaning.subject.plural else B_VERB_ONE)
        words = _phrase_b(meaning.subject) + _phrase_b(meaning.object) + [B_OBJECT, verb]
    else:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    return " ".join(words + ["."])


def parallel(n: int, seed: int = 0) -> list[tuple[Meaning, str, str]]:
    """``n`` random meanings with their sentences in both languages: ``(meaning, a, b)``."""
    n = positive_int("n", n)
    rng = random.Random(integer("seed", seed, minimum=None))
    return [(m, render(m, "a"), render(m, "b")) for m in (random_meaning(rng) for _ in range(n))]


def corpus(language: str, n_sentences: int, seed: int = 0) -> str:
    """``n_sentences`` random sentences of ``language``, one per line (each line ends in a newline).

    The same seed gives the same text, and both languages drawn with one seed
    say the same things in the same order (a parallel corpus); draw them with
    different seeds for two unrelated monolingual corpora, as real ones are.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    index = LANGUAGES.index(language) + 1
    return "".join(pair[index] + "\n" for pair in parallel(n_sentences, seed))


def shared_pieces(tokenizer, text_a: str, text_b: str) -> dict:
    """Which tokens of one tokenizer both languages use, and how much of each text they cover.

    Returns a dict: ``shared`` (the learned pieces, ids >= 256, that occur in
    both encodings, most frequent first, as strings), ``only_a`` and ``only_b``
    (learned pieces used by one language alone), and ``coverage_a``,
    ``coverage_b``: the fraction of each text's tokens that are shared pieces or
    single bytes used by both languages.
    """
    for name, text in (("text_a", text_a), ("text_b", text_b)):
        if not isinstance(text, str) or not text:
            raise ValueError(f"{name} must be a non-empty str, got {text!r:.40}")
    if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "vocab")):
        raise TypeError(f"tokenizer must have encode() and vocab (a lmcourse tokenizer), "
                        f"got {type(tokenizer).__name__}")
    ids_a, ids_b = tokenizer.encode(text_a), tokenizer.encode(text_b)
    count_a, count_b = _counts(ids_a), _counts(ids_b)
    both = count_a.keys() & count_b.keys()

    def pieces(ids):
        ranked = sorted(ids, key=lambda i: (-(count_a.get(i, 0) + count_b.get(i, 0)), i))
        return [tokenizer.vocab[i].decode("utf-8", errors="replace") for i in ranked if i >= 256]

    return {"shared": pieces(both), "only_a": pieces(count_a.keys() - both),
            "only_b": pieces(count_b.keys() - both),
            "coverage_a": sum(count_a[i] for i in both) / len(ids_a),
            "coverage_b": sum(count_b[i] for i in both) / len(ids_b)}


def _counts(ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i in ids:
        out[i] = out.get(i, 0) + 1
    return out


@torch.no_grad()
def bits_per_char(model: torch.nn.Module, tokens, n_chars: int, block_size: int) -> float:
    """Bits per character of ``model`` on a held-out token stream that spells ``n_chars`` characters.

    Every token after the first is predicted exactly once. Windows of
    ``block_size`` tokens slide by half a window and each scores only the
    targets the previous one did not, so every prediction but those of the
    first half-window sees at least ``block_size // 2`` tokens of context.
    bits/char = (total nats) / (n_chars ln 2): models that share a tokenizer
    compare by it with any other model scored on the same tokens (an n-gram's
    ``token_log_probs(tokens)[1:].sum()`` is its total).
    """
    data = as_tokens(tokens)
    block_size, n_chars = positive_int("block_size", block_size), positive_int("n_chars", n_chars)
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 so that windows can overlap by half, got {block_size}")
    if len(data) < block_size + 1:
        raise ValueError(f"tokens has {len(data)} ids; one window of block_size {block_size} needs {block_size + 1}")
    # The course's scorer slides its windows the same way: every target after the first, once.
    return float(token_nll(model, data, block_size).sum()) / (n_chars * math.log(2))


def ngram_bits_per_char(ngram, tokens, n_chars: int) -> float:
    """Bits per character of a fitted ``NGramModel`` on the targets ``bits_per_char`` scores.

    The first token has no context for either model, so both leave it out.
    """
    data = as_tokens(tokens)
    n_chars = positive_int("n_chars", n_chars)
    if len(data) < 2:
        raise ValueError(f"tokens must hold at least 2 ids (one context, one target), got {len(data)}")
    return float(-ngram.token_log_probs(data.numpy())[1:].sum()) / (n_chars * math.log(2))


@torch.no_grad()
def fresh_embeddings(model: torch.nn.Module, first_id: int, seed: int = 0) -> torch.nn.Module:
    """Draw the token embeddings of ids ``first_id`` and above anew, as at initialisation (N(0, 0.02)).

    The rest of the model keeps what it learned. Giving a new language ids of
    its own and fresh embeddings for them, while the Transformer blocks stay
    pretrained, is the "separate vocabularies" control: nothing is shared but
    the layers (Artetxe et al. 2020 transfer a monolingual BERT this way). The
    course GPT ties its output head to the embedding, so the head's rows are
    redrawn with them (an untied head's rows are redrawn too). Changes ``model`` in place and returns it.
    """
    weight = model.tok_emb.weight
    first_id = integer("first_id", first_id, minimum=0)
    if first_id >= weight.shape[0]:
        raise ValueError(f"first_id must be below the vocabulary size {weight.shape[0]}, got {first_id}")
    generator = torch.Generator().manual_seed(integer("seed", seed, minimum=None))
    rows = torch.randn(weight.shape[0] - first_id, weight.shape[1], generator=generator) * 0.02
    weight[first_id:] = rows.to(weight.device, weight.dtype)
    head = getattr(model, "head", None)
    if head is not None and head.weight is not weight:  # an untied head: its rows are new words too
        head.weight[first_id:] = (torch.randn(rows.shape, generator=generator) * 0.02).to(head.weight)
    return model
