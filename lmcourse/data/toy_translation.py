"""A toy translation task: a fragment of English and Kelvan, a small invented language.

Real translation data is large and licensed; this task is generated, so it
costs nothing, has as many sentence pairs as a lesson wants, and every
difficulty of translation in it is known. Each sentence says who did what to
whom: a subject, a verb in the present or past tense, an object and sometimes
a time word. Both languages render the same :class:`Meaning`:

    English: the big dog saw a small cat yesterday
    Kelvan:  gesti lo vesko grande una mira piki ka vidis

Kelvan differs from English in the ways real languages do, so that a
word-for-word dictionary is not enough:

* word order: time word first, then subject, object, verb (SOV, like Japanese
  or Turkish), and adjectives after their noun (like French or Spanish);
* grammatical gender: every noun is masculine (-o) or feminine (-a); articles
  and adjectives agree with it in gender and number (like Spanish);
* the verb ends in a suffix for tense *and* the subject's number, in the past
  too, where English "saw" shows no number;
* the object is marked by the particle ``ka`` (a case marker, like Japanese "wo").

Names (Anna, Omar, ...) are the same in both languages, as names usually are,
so a model can learn to copy them. And a few English words have two Kelvan
translations used equally often ("big" is ``grand-`` or ``magn-``), so a
sentence has several correct translations, and a reference shows only one of
them: the situation in which BLEU punishes a right answer.

    pairs = parallel_corpus(1000, seed=0)      # distinct pairs, reproducible
    pairs[0].source, pairs[0].target           # the target is one correct translation
    translations(pairs[0].meaning)             # all of them
    word_for_word(pairs[0].source)             # the dictionary baseline
    wrong_meanings(pairs[0].meaning, 3, seed=0)  # near-miss meanings, e.g. for multiple choice
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace

from lmcourse.validate import non_negative_int, positive_int

__all__ = [
    "NounPhrase", "Meaning", "Pair", "NOUNS", "ADJECTIVES", "VERBS", "NAMES", "TIME_WORDS", "DICTIONARY",
    "random_meaning", "to_english", "to_kelvan", "translations", "word_for_word", "parallel_corpus",
    "wrong_meanings", "vocabulary",
]

# Kelvan stems come in tuples: a word with two translations (synonyms, used
# equally often) has two stems, and a dictionary lists the first.
# English singular -> (English plural, Kelvan stems, gender: "m" or "f")
NOUNS = {
    "dog": ("dogs", ("vesk",), "m"),
    "horse": ("horses", ("kaval",), "m"),
    "fox": ("foxes", ("ruf",), "m"),
    "farmer": ("farmers", ("agren", "kultor"), "m"),
    "king": ("kings", ("reg",), "m"),
    "cat": ("cats", ("mir",), "f"),
    "bird": ("birds", ("pip",), "f"),
    "child": ("children", ("nin",), "f"),
    "girl": ("girls", ("tal",), "f"),
    "teacher": ("teachers", ("dokt",), "f"),
}
# English -> Kelvan stems
ADJECTIVES = {"big": ("grand", "magn"), "small": ("pik", "min"), "old": ("vek",), "young": ("jun",),
              "red": ("rus",), "happy": ("fel",)}
# English base form -> (third person singular, past, Kelvan stems)
VERBS = {
    "see": ("sees", "saw", ("vid", "spekt")),
    "like": ("likes", "liked", ("am",)),
    "follow": ("follows", "followed", ("sekv",)),
    "find": ("finds", "found", ("trov",)),
    "help": ("helps", "helped", ("ajut",)),
    "chase": ("chases", "chased", ("kur",)),
}
NAMES = ("Anna", "Omar", "Lena", "Ravi")  # written the same in both languages
# English time word -> (Kelvan, the tense it goes with)
TIME_WORDS = {"today": ("tavi", "present"), "now": ("nuno", "present"), "yesterday": ("gesti", "past")}
TENSES = ("present", "past")
OBJECT_MARKER = "ka"

# Kelvan endings, keyed by (gender, plural) or (tense, plural subject)
NOUN_ENDINGS = {("m", False): "o", ("m", True): "oi", ("f", False): "a", ("f", True): "ai"}
ADJECTIVE_ENDINGS = {("m", False): "e", ("m", True): "en", ("f", False): "i", ("f", True): "in"}
VERB_ENDINGS = {("present", False): "as", ("present", True): "an", ("past", False): "is", ("past", True): "in"}
# (English article, gender, plural) -> Kelvan article. English "some" is the plural of "a".
ARTICLES = {
    ("the", "m", False): "lo", ("the", "m", True): "los", ("the", "f", False): "la", ("the", "f", True): "las",
    ("a", "m", False): "un", ("a", "f", False): "una", ("some", "m", True): "alko", ("some", "f", True): "alka",
}


@dataclass(frozen=True)
class NounPhrase:
    """A name, or an article, an optional adjective and a noun (English singular form)."""

    noun: str
    plural: bool = False
    definite: bool = True
    adjective: str | None = None

    def __post_init__(self):
        if self.noun in NAMES:
            if self.plural or self.adjective is not None:
                raise ValueError(f"a name takes no plural and no adjective, got {self}")
        elif self.noun not in NOUNS:
            raise ValueError(f"unknown noun {self.noun!r}: expected one of {sorted(NOUNS)} or a name {NAMES}")
        if self.adjective is not None and self.adjective not in ADJECTIVES:
            raise ValueError(f"unknown adjective {self.adjective!r}: expected one of {sorted(ADJECTIVES)}")

    @property
    def is_name(self) -> bool:
        return self.noun in NAMES


@dataclass(frozen=True)
class Meaning:
    """Who did what to whom, and when: what a sentence of either language says."""

    subject: NounPhrase
    verb: str  # English base form, a key of VERBS
    tense: str  # "present" or "past"
    obj: NounPhrase
    time: str | None = None  # a key of TIME_WORDS that fits the tense, or None

    def __post_init__(self):
        if self.verb not in VERBS:
            raise ValueError(f"unknown verb {self.verb!r}: expected one of {sorted(VERBS)}")
        if self.tense not in TENSES:
            raise ValueError(f"tense must be one of {TENSES}, got {self.tense!r}")
        if self.time is not None:
            if self.time not in TIME_WORDS:
                raise ValueError(f"unknown time word {self.time!r}: expected None or one of {sorted(TIME_WORDS)}")
            if TIME_WORDS[self.time][1] != self.tense:
                raise ValueError(f"{self.time!r} does not go with the {self.tense} tense")


@dataclass(frozen=True)
class Pair:
    """One sentence pair: the meaning, its English source and one Kelvan translation of it."""

    meaning: Meaning
    source: str
    target: str


# ---------------------------------------------------------------------------
# Rendering a meaning in each language


def _english_np(np_: NounPhrase) -> list[str]:
    if np_.is_name:
        return [np_.noun]
    plural_form = NOUNS[np_.noun][0]
    words = ([np_.adjective] if np_.adjective else []) + [plural_form if np_.plural else np_.noun]
    if np_.definite:
        article = "the"
    elif np_.plural:
        article = "some"
    else:
        article = "an" if words[0][0] in "aeiou" else "a"  # "an old dog", "a dog"
    return [article] + words


def to_english(meaning: Meaning) -> str:
    """The English sentence: subject, verb, object, then the time word. Lowercase, no full stop."""
    third_person, past, _ = VERBS[meaning.verb]
    if meaning.tense == "past":
        verb = past
    else:  # present: "the dog sees", "the dogs see"
        verb = meaning.verb if meaning.subject.plural else third_person
    words = _english_np(meaning.subject) + [verb] + _english_np(meaning.obj)
    if meaning.time:
        words.append(meaning.time)
    return " ".join(words)


# A Kelvan sentence is built as a list of slots, one per word, each slot the
# tuple of words that may stand there (one word, or one per synonym).


def _kelvan_np(np_: NounPhrase) -> list[tuple[str, ...]]:
    if np_.is_name:
        return [(np_.noun,)]
    _, stems, gender = NOUNS[np_.noun]
    key = (gender, np_.plural)
    english_article = "the" if np_.definite else ("some" if np_.plural else "a")
    slots = [(ARTICLES[(english_article, gender, np_.plural)],), tuple(s + NOUN_ENDINGS[key] for s in stems)]
    if np_.adjective:  # after the noun, agreeing with it
        slots.append(tuple(s + ADJECTIVE_ENDINGS[key] for s in ADJECTIVES[np_.adjective]))
    return slots


def _kelvan_slots(meaning: Meaning) -> list[tuple[str, ...]]:
    """Time word, subject, object + ``ka``, verb (agreeing with the subject), as slots."""
    slots = [(TIME_WORDS[meaning.time][0],)] if meaning.time else []
    slots += _kelvan_np(meaning.subject) + _kelvan_np(meaning.obj) + [(OBJECT_MARKER,)]
    ending = VERB_ENDINGS[(meaning.tense, meaning.subject.plural)]
    slots.append(tuple(s + ending for s in VERBS[meaning.verb][2]))
    return slots


def to_kelvan(meaning: Meaning, rng: random.Random | None = None) -> str:
    """One Kelvan translation: each synonym drawn with ``rng``, or the first (the dictionary's) if None."""
    return " ".join(rng.choice(words) if rng is not None else words[0] for words in _kelvan_slots(meaning))


def translations(meaning: Meaning) -> list[str]:
    """Every correct Kelvan translation of ``meaning`` (one per combination of synonyms), sorted."""
    return sorted(" ".join(words) for words in itertools.product(*_kelvan_slots(meaning)))


# ---------------------------------------------------------------------------
# The dictionary baseline


def _build_dictionary() -> dict[str, str]:
    """English word form -> the Kelvan form a bilingual dictionary would list.

    A dictionary knows each word alone, so where Kelvan needs context it gives
    the citation form: masculine singular articles and adjectives, and the
    singular of the ambiguous past tense ("saw": who saw, one or many?). Of
    two synonyms it lists the first.
    """
    d = {"the": "lo", "a": "un", "an": "un", "some": "alko"}
    for singular, (plural, (stem, *_), gender) in NOUNS.items():
        d[singular] = stem + NOUN_ENDINGS[(gender, False)]
        d[plural] = stem + NOUN_ENDINGS[(gender, True)]
    for english, (stem, *_) in ADJECTIVES.items():
        d[english] = stem + ADJECTIVE_ENDINGS[("m", False)]
    for base, (third_person, past, (stem, *_)) in VERBS.items():
        d[base] = stem + VERB_ENDINGS[("present", True)]  # "see" only follows a plural subject here
        d[third_person] = stem + VERB_ENDINGS[("present", False)]
        d[past] = stem + VERB_ENDINGS[("past", False)]
    for english, (kelvan, _) in TIME_WORDS.items():
        d[english] = kelvan
    d.update({name: name for name in NAMES})
    return d


DICTIONARY = _build_dictionary()


def word_for_word(source: str) -> str:
    """Translate each English word alone with :data:`DICTIONARY`, keeping English word order.

    The baseline a learner of Kelvan would write on day one: right words,
    wrong order, no object marker, and agreement only where English shows it.
    """
    out = []
    for word in source.split():
        if word not in DICTIONARY:
            raise ValueError(f"{word!r} is not an English word of this task (e.g. {sorted(DICTIONARY)[:5]}...)")
        out.append(DICTIONARY[word])
    return " ".join(out)


# ---------------------------------------------------------------------------
# Sampling


def _random_np(rng: random.Random) -> NounPhrase:
    if rng.random() < 0.15:
        return NounPhrase(rng.choice(NAMES))
    adjective = rng.choice(sorted(ADJECTIVES)) if rng.random() < 0.4 else None
    return NounPhrase(rng.choice(sorted(NOUNS)), plural=rng.random() < 0.35,
                      definite=rng.random() < 0.6, adjective=adjective)


def random_meaning(rng: random.Random) -> Meaning:
    """One meaning drawn with ``rng`` (a ``random.Random``)."""
    subject, obj = _random_np(rng), _random_np(rng)
    tense = rng.choice(TENSES)
    times = [t for t, (_, tense_of_t) in TIME_WORDS.items() if tense_of_t == tense]
    time = rng.choice(times) if rng.random() < 0.4 else None
    return Meaning(subject, rng.choice(sorted(VERBS)), tense, obj, time)


def parallel_corpus(n: int, seed: int = 0) -> list[Pair]:
    """``n`` pairs with distinct meanings, the same for the same ``seed``.

    Distinct, so that the first ``k`` pairs and the rest can serve as test and
    training sets without a test sentence leaking into training. Each target
    is one of the meaning's translations, its synonyms drawn at random.
    """
    n = positive_int("n", n)
    if n > 1_000_000:  # about 2 million meanings exist; drawing nearly all of them would crawl
        raise ValueError(f"n must be at most 1,000,000 distinct pairs, got {n:,}")
    rng = random.Random(seed)
    seen: set[Meaning] = set()
    pairs = []
    while len(pairs) < n:
        meaning = random_meaning(rng)
        if meaning not in seen:
            seen.add(meaning)
            pairs.append(Pair(meaning, to_english(meaning), to_kelvan(meaning, rng)))
    return pairs


def wrong_meanings(meaning: Meaning, k: int, seed: int = 0) -> list[Meaning]:
    """``k`` distinct meanings that differ from ``meaning`` in one point, all the same length.

    The changes: subject and object swapped, a noun's number flipped, another
    noun (or name), another verb. Their Kelvan sentences have as many words as
    the right one and share most of them: near misses that only a reader of
    the source can rule out (the distractors of a multiple-choice test). None
    of them has a translation in common with ``meaning``.
    """
    k = non_negative_int("k", k)
    candidates = []
    if meaning.subject != meaning.obj:
        candidates.append(replace(meaning, subject=meaning.obj, obj=meaning.subject))
    for role in ("subject", "obj"):
        np_ = getattr(meaning, role)
        if not np_.is_name:
            candidates.append(replace(meaning, **{role: replace(np_, plural=not np_.plural)}))
        others = [n for n in (NAMES if np_.is_name else NOUNS) if n != np_.noun]
        candidates += [replace(meaning, **{role: replace(np_, noun=n)}) for n in others]
    candidates += [replace(meaning, verb=v) for v in VERBS if v != meaning.verb]
    distinct = list(dict.fromkeys(c for c in candidates if not set(translations(c)) & set(translations(meaning))))
    if k > len(distinct):
        raise ValueError(f"only {len(distinct)} one-point changes of this meaning exist, asked for k={k}")
    return random.Random(seed).sample(distinct, k)


def vocabulary() -> list[str]:
    """Every word of both languages (names once), sorted: a model's vocabulary needs nothing else."""
    words = set(DICTIONARY) | set(DICTIONARY.values()) | {OBJECT_MARKER} | set(ARTICLES.values())
    for _, stems, gender in NOUNS.values():
        words |= {s + NOUN_ENDINGS[(gender, p)] for s in stems for p in (False, True)}
    for stems in ADJECTIVES.values():
        words |= {s + ending for s in stems for ending in ADJECTIVE_ENDINGS.values()}
    for *_, stems in VERBS.values():
        words |= {s + ending for s in stems for ending in VERB_ENDINGS.values()}
    return sorted(words)
