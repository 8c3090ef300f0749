"""Tokenizers trained from scratch: characters, words and byte-level BPE.

A language model reads integers, not text. A tokenizer is the two-way map
between them: ``encode`` cuts text into pieces and numbers them, ``decode``
glues the pieces back. All three tokenizers here share one interface:

    tok = BPETokenizer.train(text, vocab_size=1000)
    ids = tok.encode("Hello world")      # list[int]
    tok.decode(ids)                      # "Hello world"
    tok.tokens("Hello world")            # ['Hello', ' world']: the pieces, for reading
    tok.save("bpe.json"); BPETokenizer.load("bpe.json")

Every tokenizer keeps ``vocab``: the bytes each id stands for. Ids 0..255 are
always the 256 possible bytes, so any text can be written with them, and the
learned pieces (characters, words, merged byte strings) follow from id 256.
Decoding is then the same for all three: join the bytes of the ids and read
them as UTF-8.

Why bytes and not an ``<unk>`` token for text never seen in training? Mapping
every unknown piece to one ``<unk>`` id throws the piece away: "大" and "😀"
would both decode to "<unk>", and ``decode(encode(s)) == s`` would fail for
most of the world's text. Spelling an unknown piece out in its UTF-8 bytes
costs a few more ids but loses nothing. SentencePiece calls this
``byte_fallback``; GPT-2's byte-level BPE (Radford et al., 2019) goes all the
way and builds its whole vocabulary out of bytes.
"""
from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter, defaultdict
from numbers import Number
from typing import Iterable

from lmcourse.atomic import write_json

# The 256 byte ids every tokenizer starts from.
BYTES = [bytes([b]) for b in range(256)]

# Word-level pre-tokenizer: a run of word characters, a run of whitespace, or
# one punctuation mark. The pieces cover the text exactly, so joining them
# gives it back.
WORD_PATTERN = r"\w+|\s+|[^\w\s]"

# GPT-2-style pre-tokenizer, written for the standard ``re`` module (GPT-2
# uses ``regex`` with \p{L} and \p{N}). In order: English contractions; a
# run of letters, a run of digits, or a run of other symbols, each with an
# optional leading space, so " the" is one piece; whitespace not followed by
# text (so the last space before a word stays with the word); any other
# whitespace. ``[^\W\d_]`` is "a word character that is not a digit or an
# underscore": a letter. The underscore is a word character for ``re``, so
# it is added to the symbols by hand, or it would match nothing.
GPT2_PATTERN = r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"


def _check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text.isascii():  # ASCII is always valid UTF-8: skip the encode for it
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            # Only lone surrogates (U+D800..U+DFFF) fail: halves of UTF-16 pairs, left by
            # JSON "\ud83d" escapes or bytes read with errors="surrogateescape".
            at = error.start
            raise ValueError(
                f"{what} has a lone surrogate U+{ord(text[at]):04X} at position {at} "
                f"(near {text[max(0, at - 10):at + 10]!r}): a half of a UTF-16 pair, which "
                "UTF-8 cannot encode; remove or replace it first, e.g. "
                "text.encode('utf-8', errors='replace').decode('utf-8')"
            ) from None
    return text


def as_token_ids(ids, vocab_size: int) -> list[int]:
    """``ids`` as a list of plain ints in ``[0, vocab_size)``, or a clear error.

    Accepted, because they are what code hands a tokenizer: lists and tuples of
    ints; NumPy integers and 0-d integer tensors (what iterating an array or a
    tensor gives, or ``logits.argmax()``); 0-d and 1-d integer NumPy arrays and
    torch tensors; a single int is one id. ``True``/``False`` and floats are not ids: ``TypeError``.
    An id outside the vocabulary: ``ValueError`` naming it and the vocabulary size.
    """
    if hasattr(ids, "ndim") and hasattr(ids, "tolist"):  # a NumPy array or a torch tensor
        dtype = str(ids.dtype).removeprefix("torch.")
        if not dtype.startswith(("int", "uint")):
            raise TypeError(f"token ids must be integers, got an array of {dtype}")
        if ids.ndim > 1:
            raise ValueError(
                f"token ids must be one 1-D sequence, got shape {tuple(ids.shape)}; "
                "decode a batch row by row: [tok.decode(row) for row in ids]")
        ids = [ids.tolist()] if ids.ndim == 0 else ids.tolist()
    elif isinstance(ids, Number):
        ids = [ids]  # one id, like a 0-d tensor; the checks below turn away bools and floats
    elif isinstance(ids, str):
        raise TypeError("token ids must be integers, got a str: encode turns text into ids")
    try:
        items = iter(ids)
    except TypeError:
        raise TypeError("token ids must be a sequence of integers (a list, a NumPy array or "
                        f"a tensor), got {type(ids).__name__}") from None
    out = []
    for position, i in enumerate(items):
        value = i
        if type(value) is not int:  # the common case, plain ints, skips the checks below
            if hasattr(value, "ndim") and hasattr(value, "tolist") and value.ndim == 0:
                value = value.tolist()  # np.int64(5) or tensor(5) -> 5
            if isinstance(value, bool) or not isinstance(value, int):
                why = ": True and False are not token ids" if isinstance(value, bool) else ""
                raise TypeError(f"token ids must be integers, got {i!r} ({type(i).__name__}) "
                                f"at position {position}{why}")
            value = int(value)
        if not 0 <= value < vocab_size:
            raise ValueError(f"token id {value} at position {position} is not in [0, {vocab_size}): "
                             f"the vocabulary has {vocab_size} ids")
        out.append(value)
    return out


def _show(piece: bytes) -> str:
    """A readable form of a token: its text, or <0xNN> for bytes that are not valid UTF-8 alone."""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"<0x{b:02X}>" for b in piece)


class Tokenizer:
    """The interface shared by every tokenizer: text <-> list of ids.

    Subclasses set ``vocab`` (id -> bytes) and implement ``encode``; ``name``
    names the kind of tokenizer and is stored in saved files.
    """

    name = "tokenizer"
    vocab: list[bytes]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """Join the bytes of ``ids`` and read them as UTF-8.

        ``decode(encode(s)) == s`` always holds. An arbitrary id sequence can
        cut a character's bytes in half; like GPT-2 we replace such broken
        bytes with U+FFFD instead of failing. ``ids`` may be a list, a NumPy
        array or a tensor of integer ids (see ``as_token_ids``).
        """
        vocab = self.vocab
        pieces = [vocab[i] for i in as_token_ids(ids, len(vocab))]
        return b"".join(pieces).decode("utf-8", errors="replace")

    def tokens(self, text: str) -> list[str]:
        """The pieces ``encode`` cuts ``text`` into, as strings to read."""
        return [_show(self.vocab[i]) for i in self.encode(text)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    # -- saving and loading --------------------------------------------------
    def _state(self) -> dict:
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON, atomically (a crash never leaves half a file)."""
        write_json(path, {"type": self.name, "format": 1, **self._state()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Read a tokenizer written by ``save``. ``Tokenizer.load`` reads any kind."""
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a saved tokenizer (invalid JSON: {e})") from None
        kinds = {k.name: k for k in (CharTokenizer, WordTokenizer, BPETokenizer)}
        kind = state.get("type") if isinstance(state, dict) else None
        if kind not in kinds or state.get("format") != 1:
            raise ValueError(
                f"{path} is not a saved tokenizer: expected a JSON object with "
                f'"type" one of {sorted(kinds)} and "format": 1'
            )
        if cls is not Tokenizer and kind != cls.name:
            raise ValueError(f"{path} holds a {kind!r} tokenizer, not {cls.name!r}: use Tokenizer.load")
        try:
            return kinds[kind]._from_state(state)
        except (KeyError, TypeError, ValueError, re.error) as e:
            raise ValueError(f"{path} is not a valid saved {kind!r} tokenizer: {e}") from None


class _PieceTokenizer(Tokenizer):
    """A vocabulary of text pieces; a piece outside it is spelled in UTF-8 bytes.

    Ids 0..255 are the bytes, ids 256.. are ``pieces`` in order. Subclasses
    say how text is split into pieces (``split``) and how pieces are chosen.
    """

    def __init__(self, pieces: Iterable[str]):
        self.pieces = list(pieces)
        if not all(isinstance(p, str) and p for p in self.pieces):
            raise ValueError("pieces must be non-empty strings")
        for i, p in enumerate(self.pieces):
            _check_text(p, f"piece {i}")
        if len(set(self.pieces)) != len(self.pieces):
            raise ValueError("pieces must not repeat")
        self.vocab = BYTES + [p.encode("utf-8") for p in self.pieces]
        self._ids = {p: 256 + i for i, p in enumerate(self.pieces)}

    def split(self, text: str) -> list[str]:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in self.split(_check_text(text)):
            i = self._ids.get(piece)
            if i is None:
                ids.extend(piece.encode("utf-8"))  # byte fallback: byte b has id b
            else:
                ids.append(i)
        return ids

    def _state(self) -> dict:
        return {"pieces": self.pieces}

    @classmethod
    def _from_state(cls, state: dict) -> "_PieceTokenizer":
        if not isinstance(state["pieces"], list):
            raise TypeError('"pieces" must be a list of strings')
        return cls(state["pieces"])


class CharTokenizer(_PieceTokenizer):
    """One id per character (Unicode code point) seen in training."""

    name = "char"

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(_check_text(text))))

    def split(self, text: str) -> list[str]:
        return list(text)


class WordTokenizer(_PieceTokenizer):
    """Words, whitespace runs and punctuation marks; the most frequent become the vocabulary."""

    name = "word"

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None, min_count: int = 1) -> "WordTokenizer":
        """Keep the pieces seen at least ``min_count`` times, most frequent first.

        ``vocab_size`` (if given) caps the whole vocabulary, the 256 byte ids
        included. Ties in frequency are broken alphabetically, so training is
        deterministic.
        """
        if vocab_size is not None and vocab_size < 256:
            raise ValueError(f"vocab_size counts the 256 byte ids, so it must be >= 256, got {vocab_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(re.findall(WORD_PATTERN, _check_text(text)))
        kept = sorted((p for p, c in counts.items() if c >= min_count), key=lambda p: (-counts[p], p))
        if vocab_size is not None:
            kept = kept[: vocab_size - 256]
        return cls(kept)

    def split(self, text: str) -> list[str]:
        return re.findall(WORD_PATTERN, text)


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` (left to right) by ``new_id``."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (Sennrich et al., 2016; Radford et al., 2019).

    Start from the 256 bytes and repeatedly merge the most frequent adjacent
    pair of tokens into a new token. Merge ``r`` (its rank) creates id
    ``256 + r``. Text is first cut into pre-tokens by ``pattern`` so that
    merges never cross a word boundary: " the" can become a token, "e t" cannot.
    """

    name = "bpe"

    def __init__(self, merges: Iterable[tuple[int, int]], pattern: str = GPT2_PATTERN):
        self.merges = [tuple(m) for m in merges]
        self.vocab = list(BYTES)
        for a, b in self.merges:
            known = range(len(self.vocab))
            if not (isinstance(a, int) and isinstance(b, int) and a in known and b in known):
                raise ValueError(f"merge ({a!r}, {b!r}) must join two ids that exist before it")
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.ranks = {pair: r for r, pair in enumerate(self.merges)}
        self.pattern = pattern
        self._split = re.compile(pattern).findall
        self._cache: dict[str, list[int]] = {}  # pre-token -> ids; words repeat a lot

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = GPT2_PATTERN) -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if no pairs are left).

        Fast in pure Python because of three bookkeeping tricks:
        1. each distinct pre-token is stored once with its count (" the" may
           occur 50 000 times, but it is one entry);
        2. pair counts, and for each pair the set of words that contain it,
           are updated after a merge only for the words the merge touched;
        3. a heap finds the most frequent pair; entries made stale by an
           update are skipped when they surface.
        Ties go to the smaller pair of ids, so training is deterministic.
        """
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(
                f"vocab_size counts the 256 byte ids, so it must be an int >= 256, got {vocab_size!r}"
            )
        counts = Counter(re.findall(pattern, _check_text(text)))
        words = [list(w.encode("utf-8")) for w in counts]
        freqs = list(counts.values())

        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for w, (ids, n) in enumerate(zip(words, freqs)):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += n
                where[pair].add(w)
        heap = [(-n, pair) for pair, n in pair_counts.items()]
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        while 256 + len(merges) < vocab_size:
            best = None
            while heap:
                neg_count, pair = heapq.heappop(heap)
                if pair_counts.get(pair) == -neg_count:  # else the entry is stale
                    best = pair
                    break
            if best is None:
                break  # every pre-token is a single token: nothing left to merge
            new_id = 256 + len(merges)
            merges.append(best)

            delta: dict[tuple[int, int], int] = defaultdict(int)
            for w in where.pop(best):
                old, n = words[w], freqs[w]
                new = _merge(old, best, new_id)
                old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
                for pair in old_pairs:
                    delta[pair] -= n
                for pair in new_pairs:
                    delta[pair] += n
                for pair in set(old_pairs).difference(new_pairs, [best]):
                    where[pair].discard(w)
                for pair in set(new_pairs).difference(old_pairs):
                    where[pair].add(w)
                words[w] = new
            for pair, d in delta.items():
                if d == 0:
                    continue
                n = pair_counts[pair] + d
                if n > 0:
                    pair_counts[pair] = n
                    heapq.heappush(heap, (-n, pair))
                else:
                    del pair_counts[pair]
                    where.pop(pair, None)
        return cls(merges, pattern)

    def _bpe(self, word: bytes) -> list[int]:
        """Apply the merges to one pre-token, lowest rank first, as training did."""
        ids, ranks = list(word), self.ranks
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
            if pair not in ranks:
                break
            ids = _merge(ids, pair, 256 + ranks[pair])
        return ids

    def encode(self, text: str) -> list[int]:
        ids, cache = [], self._cache
        if len(cache) > 200_000:  # bound memory on huge, varied inputs
            cache.clear()
        for word in self._split(_check_text(text)):
            piece = cache.get(word)
            if piece is None:
                piece = cache[word] = self._bpe(word.encode("utf-8"))
            ids.extend(piece)
        return ids

    def _state(self) -> dict:
        return {"pattern": self.pattern, "merges": [list(m) for m in self.merges]}

    @classmethod
    def _from_state(cls, state: dict) -> "BPETokenizer":
        merges, pattern = state["merges"], state["pattern"]
        if not isinstance(pattern, str):
            raise TypeError('"pattern" must be a string')
        if not (isinstance(merges, list) and all(isinstance(m, list) and len(m) == 2 for m in merges)):
            raise TypeError('"merges" must be a list of [id, id] pairs')
        return cls(merges, pattern)


def reference_bpe(text: str, vocab_size: int):
    """Hugging Face ``tokenizers`` byte-level BPE set up like ``BPETokenizer``: the yardstick.

    256 byte symbols counted inside ``vocab_size`` (as ours), a GPT-2-style
    split, no prefix space and no special tokens, so the two differ only in how
    they learn and apply merges. Tests, benchmarks and lesson 02 compare against it.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    hf.train_from_iterator([text], trainer=trainer)
    return hf
