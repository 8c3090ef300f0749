"""A toy topic-classification task where knowing English is the only way to generalise.

Each sentence is about one of four topics (sport, food, weather, computers):
a topic-neutral template with one or two topic words in its slots,

    we talked about the goal and the coach all evening        -> sport
    there was a story about the blizzard in the paper          -> weather

Every topic has two disjoint word lists. Training sentences use only the
``"seen"`` words; the held-out test sentences use only the ``"unseen"`` words,
synonyms and near neighbours ("football" -> "soccer", "rain" -> "drizzle").
The templates are shared by all topics, so they carry no label information.

A model that learns from the training set alone (bag of words, a network
trained from scratch) has never seen one topic word of the test set, so on
it it can only guess. A model pretrained on a lot of English has seen
"soccer" near "football" millions of times, and can place a new word next to
the ones it was trained on: that is what transfer learning buys.

    train = sentences(200, vocabulary="seen", seed=0)    # [(text, label), ...], balanced
    test = sentences(200, vocabulary="unseen", seed=1)   # only held-out topic words
    TOPICS[label]                                        # the label's name
"""
from __future__ import annotations

import random

from lmcourse.validate import non_negative_int

__all__ = ["TOPICS", "WORDS", "TEMPLATES", "VOCABULARIES", "sentences", "topic_words"]

TOPICS = ("sport", "food", "weather", "computers")
VOCABULARIES = ("seen", "unseen")

# topic -> (seen words, unseen words): no word appears in both lists or in two topics.
WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sport": (("football", "goal", "team", "coach", "stadium", "match", "player", "tournament"),
              ("soccer", "striker", "squad", "referee", "arena", "league", "athlete", "championship")),
    "food": (("bread", "soup", "cheese", "pasta", "salad", "cake", "rice", "chef"),
             ("sandwich", "noodles", "pizza", "dessert", "omelette", "curry", "baker", "cookies")),
    "weather": (("rain", "storm", "snow", "wind", "cloud", "fog", "thunder", "temperature"),
                ("drizzle", "blizzard", "hurricane", "frost", "hail", "breeze", "lightning", "forecast")),
    "computers": (("laptop", "keyboard", "software", "printer", "server", "program", "processor", "screen"),
                  ("database", "compiler", "router", "website", "algorithm", "monitor", "chip", "password")),
}

# Topic-neutral frames: the same words surround every topic's words.
TEMPLATES = (
    "we talked about the {a} and the {b} all evening",
    "my sister could not stop thinking about the {a}",
    "nobody expected the {a} to matter more than the {b}",
    "there was a story about the {a} in the paper",
    "everyone at work asked me about the {a} and the {b}",
    "i wrote a long letter about the {a}",
    "the {a} was all anyone mentioned on the radio",
    "he showed me a picture of the {a} next to the {b}",
)


def topic_words(topic: str, vocabulary: str = "seen") -> tuple[str, ...]:
    """The words of ``topic`` in one vocabulary, ``"seen"`` (training) or ``"unseen"`` (test)."""
    if topic not in WORDS:
        raise ValueError(f"topic must be one of {', '.join(TOPICS)}, got {topic!r}")
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be 'seen' or 'unseen', got {vocabulary!r}")
    return WORDS[topic][VOCABULARIES.index(vocabulary)]


def sentences(n: int, vocabulary: str = "seen", seed: int = 0) -> list[tuple[str, int]]:
    """``n`` labelled sentences ``(text, label)`` whose topic words come from ``vocabulary``.

    Labels index ``TOPICS``. The classes are balanced: label ``i % 4`` for the
    i-th sentence before shuffling, so each class has ``n // 4`` sentences and
    the first ``n % 4`` classes one more. The same ``(n, vocabulary, seed)``
    gives the same list. Sentences may repeat when ``n`` is large (each topic
    has a few hundred distinct ones per vocabulary).
    """
    n = non_negative_int("n", n)
    seed = non_negative_int("seed", seed)
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be 'seen' or 'unseen', got {vocabulary!r}")
    rng = random.Random(f"toy_topics/{vocabulary}/{seed}")  # a string seed: stable across Python versions
    out = []
    for i in range(n):
        label = i % len(TOPICS)
        words = topic_words(TOPICS[label], vocabulary)
        template = rng.choice(TEMPLATES)
        a, b = rng.sample(words, 2)  # two different words when the template has two slots
        out.append((template.format(a=a, b=b), label))
    rng.shuffle(out)
    return out


def _check_disjoint() -> None:
    """Import-time guard: the held-out vocabulary must really be unseen."""
    seen = [w for t in TOPICS for w in WORDS[t][0]]
    unseen = [w for t in TOPICS for w in WORDS[t][1]]
    template_words = {w for t in TEMPLATES for w in t.split() if not w.startswith("{")}
    everything = seen + unseen
    if len(set(everything)) != len(everything) or template_words & set(everything):
        raise AssertionError("toy_topics: a topic word is shared between lists or with a template")


_check_disjoint()
