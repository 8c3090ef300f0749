"""A toy summarisation task: match reports and the one-line summaries an editor wrote.

Summarisation data sets are news articles with human highlights (CNN/Daily
Mail, Hermann et al., 2015; XSum, Narayan et al., 2018), which a course cannot
ship. These reports are generated from templates instead, about invented
teams, so there is no licence to worry about and the facts are known:

    report.sentences   # ("It was a grey Saturday at Marsh Lane.",
                       #  "The Riverton Otters beat the Hillford Hawks 3-1 at Marsh Lane.",
                       #  "Mara Quill scored twice for the Riverton Otters.", ...)
    report.summary     # "Mara Quill scores twice as Riverton Otters win 3-1 against Hillford Hawks"
    report.key         # 1: the sentence that states the result

Like a real news story, a report states the result in one sentence and fills
the rest with colour (the weather, the crowd, a quote, the next fixture). Half
of the reports open with that colour rather than the result, so "take the first
sentence" (the lead baseline, strong on real news) is right only half of the
time. The reference summary is a paraphrase, not a copy: it uses other words
and other word forms ("win" for "beat", "scores" for "scored"), which is what
makes ROUGE with stemming differ from ROUGE without it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from lmcourse.validate import positive_int

__all__ = ["Report", "match_reports", "TEAMS"]

TEAMS = ("Riverton Otters", "Hillford Hawks", "Ashby Foxes", "Marlow Bears",
         "Dunmore Eagles", "Eastwick Wolves", "Brackley Badgers", "Carran Herons")
GROUNDS = {team: ground for team, ground in zip(TEAMS, (
    "Marsh Lane", "the Mill Ground", "Ashby Park", "Quarry Road",
    "the Old Showground", "Eastwick Common", "Brook Meadow", "the Harbour Field"))}
FIRST_NAMES = ("Mara", "Jonah", "Tess", "Idris", "Noor", "Felix", "Ines", "Caleb", "Wren", "Tobias")
SURNAMES = ("Quill", "Pike", "Hollis", "Marsh", "Okafor", "Lund", "Varga", "Sato", "Brennan", "Dale")
DAYS = ("Saturday", "Sunday", "Wednesday")
WEATHER = ("grey", "cold", "bright", "windy", "wet")
TIMES = {1: "once", 2: "twice", 3: "three times"}
QUOTES = ("We never stopped running", "The players earned this one", "That was our best half of the season")


@dataclass(frozen=True)
class Report:
    """One match report: its sentences, the reference summary, and which sentence states the result."""

    sentences: tuple[str, ...]
    summary: str
    key: int

    @property
    def document(self) -> str:
        return " ".join(self.sentences)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"


def _report(rng: random.Random) -> Report:
    winner, loser, upcoming = rng.sample(TEAMS, 3)
    home = rng.choice((winner, loser))
    ground, day = GROUNDS[home], rng.choice(DAYS)
    w = rng.randint(1, 4)
    lose_goals = rng.randint(0, w - 1)
    score = f"{w}-{lose_goals}"
    scorer, times = _person(rng), rng.randint(1, min(w, 3))

    result = rng.choice((
        f"The {winner} beat the {loser} {score} at {ground}.",
        f"The {winner} defeated the {loser} {score} on {day}.",
        f"A {score} victory over the {loser} lifted the {winner} up the table.",
    ))
    scene = rng.choice((
        f"It was a {rng.choice(WEATHER)} {day} at {ground}.",
        f"{rng.randint(2, 9) * 500:,} fans came to {ground} on a {rng.choice(WEATHER)} afternoon.",
    ))
    colour = [
        f"{scorer} scored {TIMES[times]} for the {winner}.",
        rng.choice((
            f"The {loser} had the better of the first half but could not hold on.",
            f"{loser.split()[0]} keeper {_person(rng)} made a string of saves.",
        )),
        f'"{rng.choice(QUOTES)}," said {_person(rng)}, who manages the {winner}.',
        f"The {winner} face the {upcoming} next {rng.choice(DAYS)}.",
    ]
    rng.shuffle(colour)
    if rng.random() < 0.5:  # a feature-style opening: the scene, then the result
        sentences, key = [scene, result] + colour, 1
    else:  # a news-style opening: the result first, the scene later
        sentences, key = [result] + colour[:2] + [scene] + colour[2:], 0
    summary = rng.choice((
        f"{scorer} scores {TIMES[times]} as {winner} win {score} against {loser}",
        f"{winner} win {score} against {loser}, {scorer} scores {TIMES[times]}",
    ))
    return Report(tuple(sentences), summary, key)


def match_reports(n: int, seed: int = 0) -> list[Report]:
    """``n`` match reports with their reference summaries, the same for the same ``seed``."""
    n = positive_int("n", n)
    rng = random.Random(seed)
    return [_report(rng) for _ in range(n)]
