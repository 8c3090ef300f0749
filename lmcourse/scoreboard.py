"""One table of bits per character for every model of the course, on the same text.

Lessons 01, 03, 05 and 06 train very different models on the same Shakespeare
characters. Compared one lesson at a time, each only beats a unigram model,
which says little. Here every model is scored on the *same* validation text,
in the same way, next to the strongest simple baseline there is: an
interpolated Kneser-Ney n-gram of the best order.

    data = scoreboard.char_data(B)                  # the lessons' text, vocabulary and batches
    bits = scoreboard.bits_per_char(model, data)    # every validation character, scored once
    scoreboard.record("GPT", bits, data, lesson="06", note="4 x 128, 1500 steps")
    scoreboard.table(data)                          # baselines + every model recorded so far

Results are kept in ``$LMCOURSE_HOME/results/bits_per_char.json`` (written
atomically), keyed by the budget and a hash of the text, so lesson 06 can show
the RNN of lesson 03 without training it again, and a smoke-sized run never
mixes with a cpu-sized one. ``crossover()`` reads the saved figures of longer
runs (``benchmarks/bench_crossover.py``): how much training the neural models
need before they overtake the n-gram.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from lmcourse import atomic, runtime
from lmcourse.data.batching import LMBatches
from lmcourse.data.corpora import load_text
from lmcourse.grading.learner_progress import home
from lmcourse.models.ngram import NGramModel

# The course's neural models, and the lesson that trains each.
COURSE_MODELS = {"RNN": "03", "LSTM": "05", "GRU": "05", "GPT": "06"}
KNESER_NEY_ORDERS = range(2, 9)
CORPUS = "tiny_shakespeare"


# ---------------------------------------------------------------------------
# The data every lesson shares


@dataclass
class CharData:
    """The lessons' characters: text, vocabulary, ids and train/val/test batches."""

    budget_name: str
    text: str
    chars: list[str]
    ids: torch.Tensor
    batches: LMBatches
    stoi: dict[str, int] = field(repr=False, default_factory=dict)

    def __post_init__(self):
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> list[int]:
        unknown = sorted(set(s) - set(self.stoi))
        if unknown:
            raise ValueError(f"characters {unknown} are not in the vocabulary of {self.vocab_size}")
        return [self.stoi[ch] for ch in s]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    @property
    def key(self) -> str:
        """Budget and text, so results of different data never mix."""
        digest = hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]
        return f"{self.budget_name}-{len(self.text)}-{self.batches.block_size}-{digest}"

    def __repr__(self) -> str:
        return (f"CharData({len(self.text):,} characters of {CORPUS}, vocabulary {self.vocab_size}, "
                f"budget {self.budget_name!r}; {self.batches})")


def char_data(b: runtime.Budget | None = None, device: torch.device | str | None = None) -> CharData:
    """The first ``b.corpus_chars`` characters of Shakespeare, as lessons 03-06 use them.

    The vocabulary is the characters that occur (``sorted(set(text))``), the
    splits are contiguous 90/5/5 % blocks, and batches are ``b.batch_size``
    windows of ``b.block_size`` characters.
    """
    b = b or runtime.budget()
    text = load_text(CORPUS).text[: b.corpus_chars]
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([stoi[ch] for ch in text], dtype=torch.long)
    batches = LMBatches.from_tokens(ids, batch_size=b.batch_size, block_size=b.block_size,
                                    fractions=(0.9, 0.05, 0.05), device=device)
    return CharData(b.name, text, chars, ids, batches)


# ---------------------------------------------------------------------------
# Scoring


def _scored_windows(n: int, block: int) -> list[tuple[int, int]]:
    """Windows ``(start, first_scored)`` over a text of ``n`` tokens.

    Window ``start`` predicts tokens ``start+1 .. start+block``. Windows step
    by ``block // 2``, and each scores only the targets no earlier window
    scored, so every target from position 1 on is scored exactly once, with at
    least ``block // 2`` tokens of context (all the context there is near the start).
    """
    stride = max(1, block // 2)
    last_start = max(0, n - 1 - block)
    starts = list(range(0, last_start + 1, stride))
    if starts[-1] != last_start:
        starts.append(last_start)
    windows, scored_to = [], 0  # targets 1 .. scored_to are done
    for s in starts:
        windows.append((s, max(scored_to + 1, s + 1)))
        scored_to = s + block
    return windows


@torch.no_grad()
def token_nll(model: torch.nn.Module, ids: torch.Tensor, block_size: int,
              batch_windows: int = 64) -> torch.Tensor:
    """``-log p(ids[t] | context)`` in nats for t = 1 .. len(ids)-1, from a PyTorch LM.

    ``model(x)`` must return ``(logits, state)`` as the course's models do.
    The model reads windows of ``block_size`` tokens (see ``_scored_windows``).
    """
    n = len(ids)
    if n < 2:
        raise ValueError(f"need at least 2 tokens to score one prediction, got {n}")
    block = min(block_size, n - 1)
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll = torch.empty(n - 1, dtype=torch.float64)
    windows = _scored_windows(n, block)
    try:
        for i in range(0, len(windows), batch_windows):
            chunk = windows[i:i + batch_windows]
            x = torch.stack([ids[s:s + block] for s, _ in chunk]).to(dev)
            y = torch.stack([ids[s + 1:s + block + 1] for s, _ in chunk]).to(dev)
            logits, _ = model(x)
            losses = torch.nn.functional.cross_entropy(
                logits.float().transpose(1, 2), y, reduction="none").double().cpu()
            for (s, first), row in zip(chunk, losses):
                # row[j] scores target s + 1 + j
                nll[first - 1:s + block] = row[first - s - 1:]
    finally:
        model.train(was_training)
    return nll


def bits_per_char(model: torch.nn.Module, data: CharData, split: str = "val") -> float:
    """Mean bits per character of ``model`` on every character of ``split`` but the first."""
    nll = token_nll(model, data.batches.splits[split], data.batches.block_size)
    return float(nll.mean()) / math.log(2)


def ngram_bits(model: NGramModel, data: CharData, split: str = "val") -> float:
    """The same measure for a count model: context from the split itself, first character unscored."""
    ids = data.batches.splits[split].numpy()
    return float(-model.token_log_probs(ids)[1:].mean()) / math.log(2)


# ---------------------------------------------------------------------------
# Saved results


def results_path() -> Path:
    return home() / "results" / "bits_per_char.json"


def _load() -> dict:
    try:
        saved = json.loads(results_path().read_text())
        return saved if isinstance(saved, dict) else {}
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: start afresh (the file is only a cache of runs)


def _entry(saved: dict, data: CharData) -> dict:
    return saved.setdefault(data.key, {"budget": data.budget_name, "models": {}, "baselines": {}})


def record(name: str, bits: float, data: CharData, *, lesson: str = "", note: str = "") -> None:
    """Save a model's bits per character on ``data``'s validation text (replacing an older run)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    bits = float(bits)
    if not (math.isfinite(bits) and bits > 0):
        raise ValueError(f"bits must be a finite positive number, got {bits!r}")
    saved = _load()
    _entry(saved, data)["models"][name] = {
        "bits": bits, "lesson": str(lesson), "note": str(note),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic.write_json(results_path(), saved)


def _baselines(data: CharData) -> dict:
    """Unigram and Kneser-Ney (every order in KNESER_NEY_ORDERS) bits, computed once per data."""
    saved = _load()
    entry = _entry(saved, data)
    if entry["baselines"].get("orders") == list(KNESER_NEY_ORDERS):
        return entry["baselines"]
    train = data.batches.splits.train.numpy()
    V = data.vocab_size
    kn = {str(n): ngram_bits(NGramModel(n, V, smoothing="kneser-ney").fit(train), data)
          for n in KNESER_NEY_ORDERS}
    entry["baselines"] = {
        "orders": list(KNESER_NEY_ORDERS),
        "unigram": ngram_bits(NGramModel(1, V, smoothing="add-k", k=1.0).fit(train), data),
        "kneser_ney": kn,
    }
    atomic.write_json(results_path(), saved)
    return entry["baselines"]


@dataclass(frozen=True)
class Row:
    name: str
    bits: float
    kind: str  # "baseline" or "model"
    detail: str


@dataclass(frozen=True)
class BitsTable:
    """Bits per character on one validation text, best first. ``table["GPT"]`` gives one."""

    data_key: str
    budget_name: str
    val_chars: int
    rows: tuple[Row, ...]
    missing: tuple[str, ...]  # course models not recorded for this data yet

    def __getitem__(self, name: str) -> float:
        for row in self.rows:
            if row.name == name:
                return row.bits
        raise KeyError(f"{name!r} is not in the table (rows: {', '.join(r.name for r in self.rows)})")

    def __contains__(self, name: str) -> bool:
        return any(row.name == name for row in self.rows)

    @property
    def best(self) -> str:
        return self.rows[0].name

    @property
    def kneser_ney_order(self) -> int:
        return int(next(r.detail for r in self.rows if r.name == "Kneser-Ney").split()[1])

    def __str__(self) -> str:
        width = max(len(r.name) for r in self.rows)
        lines = [f"bits per character on the same {self.val_chars:,} validation characters "
                 f"(budget {self.budget_name!r})",
                 f"{'model':<{width}}  {'bits/char':>9}  {'nats/char':>9}  details"]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {r.bits:9.3f}  {r.bits * math.log(2):9.3f}  {r.detail}")
        if self.missing:
            lines.append("not measured yet with this budget: " + ", ".join(
                f"{name} (lesson {COURSE_MODELS[name]})" for name in self.missing))
        return "\n".join(lines)

    __repr__ = __str__


def table(data: CharData) -> BitsTable:
    """Unigram and Kneser-Ney baselines and every model recorded on ``data``, best first."""
    base = _baselines(data)
    kn = {int(n): bits for n, bits in base["kneser_ney"].items()}
    order = min(kn, key=kn.get)
    rows = [Row("unigram", base["unigram"], "baseline", "character counts, add-one"),
            Row("Kneser-Ney", kn[order], "baseline",
                f"order {order} (best of {min(kn)}-{max(kn)} on this text), interpolated")]
    models = _load().get(data.key, {}).get("models", {})
    for name, m in models.items():
        detail = f"lesson {m['lesson']}" + (f": {m['note']}" if m.get("note") else "")
        rows.append(Row(name, float(m["bits"]), "model", detail))
    rows.sort(key=lambda r: r.bits)
    missing = tuple(name for name in COURSE_MODELS if name not in models)
    return BitsTable(data.key, data.budget_name, len(data.batches.splits.val), tuple(rows), missing)


# ---------------------------------------------------------------------------
# Longer runs: where the neural models overtake the n-gram


@dataclass(frozen=True)
class Crossover:
    """Validation bits per character over training steps of longer runs (saved figures)."""

    budget_name: str
    kneser_ney: float  # the best Kneser-Ney n-gram on the same validation text
    kneser_ney_order: int
    curves: dict  # model name -> list of (step, bits per character)
    lesson_steps: int  # the lessons' training steps at this budget
    config: dict  # how the runs were made (models, steps, schedule, threads, commit)
    command: str

    def first_below(self, name: str) -> int | None:
        """The first measured step at which ``name`` beats Kneser-Ney, or None."""
        for step, bits in self.curves[name]:
            if bits < self.kneser_ney:
                return step
        return None

    def best(self, name: str) -> tuple[int, float]:
        return min(self.curves[name], key=lambda point: point[1])

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        for name, points in self.curves.items():
            steps, bits = zip(*points)
            ax.plot(steps, bits, "o-", markersize=3, label=name)
        ax.axhline(self.kneser_ney, color="k", linestyle="--",
                   label=f"Kneser-Ney {self.kneser_ney_order}-gram")
        ax.axvline(self.lesson_steps, color="gray", linestyle=":", label="the lessons' steps")
        ax.set(xlabel="training steps", ylabel="validation bits per character",
               title=f"longer runs at the {self.budget_name!r} budget (saved)")
        ax.legend(fontsize=8)
        return ax


def crossover(budget_name: str = "cpu") -> Crossover:
    """The saved results of ``benchmarks/bench_crossover.py`` for ``budget_name``."""
    name = f"crossover_{budget_name}.json"
    try:
        raw = json.loads(resources.files("lmcourse").joinpath("results", name).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no saved crossover results for budget {budget_name!r}: "
            f"run python benchmarks/bench_crossover.py --budget {budget_name}") from None
    curves = {k: [tuple(p) for p in v] for k, v in raw["curves"].items()}
    return Crossover(raw["budget"], raw["kneser_ney"], raw["kneser_ney_order"], curves,
                     raw["lesson_steps"], raw["config"], raw["command"])


__all__ = ["BitsTable", "CharData", "Crossover", "bits_per_char", "char_data", "crossover",
           "ngram_bits", "record", "results_path", "table", "token_nll"]

