"""A GPT as a translator: train on ``source <sep> target <eos>``, continue ``source <sep>``.

A decoder-only language model does any text-to-text task written as text: the
task's input is a prompt and its answer the continuation (Radford et al., 2019;
Brown et al., 2020). Only the target tokens are scored in the loss (label -100,
which ``F.cross_entropy`` ignores): at test time the source is given, so
predicting it would spend capacity on nothing. Lesson 09 builds this in the
notebook; lesson 07 trains several of them (forward and reverse directions) to
measure data augmentation, so the tested version lives here.

    tr = Translator(vocabulary, seq_len=24, n_layer=2, n_head=2, n_embd=64)
    history = tr.fit(pairs, steps=300, batch_size=32, lr=4e-3)   # pairs of (source, target) strings
    tr.translate(["the dog sees a cat"])                         # greedy decoding
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch
import torch.nn.functional as F

from lmcourse import runtime
from lmcourse import train as lmtrain
from lmcourse.data.augment import MASK  # the token that masking augmentation writes
from lmcourse.generate import generate
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.validate import positive_int

__all__ = ["PAD", "SEP", "EOS", "MASK", "IGNORE", "Translator", "target_loss"]

PAD, SEP, EOS = "<pad>", "<sep>", "<eos>"
IGNORE = -100  # the label of positions the loss skips


def target_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """Cross-entropy over target tokens only: positions labelled -100 are ignored."""
    x, y = batch
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE)


class Translator:
    """A word-level GPT that maps a source sentence to a target sentence (words split on spaces)."""

    def __init__(self, vocabulary: Sequence[str], seq_len: int, *, n_layer: int = 2, n_head: int = 2,
                 n_embd: int = 64, device: torch.device | str | None = None):
        words = list(dict.fromkeys(vocabulary))
        clash = [w for w in words if w in (PAD, SEP, EOS, MASK)]
        if clash or not words or any(not isinstance(w, str) or not w or w.split() != [w] for w in words):
            raise ValueError(f"vocabulary must be non-empty words without spaces and without the special "
                             f"tokens {PAD, SEP, EOS, MASK}; got {len(words)} words, e.g. {words[:5]}")
        self.itos = [PAD, SEP, EOS, MASK] + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.seq_len = positive_int("seq_len", seq_len)  # longest `source <sep> target <eos>`, in tokens
        self.device = torch.device(device) if device is not None else runtime.device()
        self.model = GPT(GPTConfig(vocab_size=len(self.itos), block_size=self.seq_len, n_layer=n_layer,
                                   n_head=n_head, n_embd=n_embd)).to(self.device)

    # -- encoding ---------------------------------------------------------

    def encode(self, source: str, target: str | None = None) -> list[int]:
        """Ids of ``source <sep>``, followed by ``target <eos>`` when a target is given."""
        for name, text in (("source", source), ("target", target)):
            if text is None:
                continue
            if not isinstance(text, str):
                raise TypeError(f"{name} must be a string of words, got {type(text).__name__}")
            unknown = [w for w in text.split() if w not in self.stoi]
            if unknown:
                raise ValueError(f"{name} {text!r} has words outside the vocabulary: {unknown[:5]}")
        ids = [self.stoi[w] for w in source.split()] + [self.stoi[SEP]]
        if target is not None:
            ids += [self.stoi[w] for w in target.split()] + [self.stoi[EOS]]
        if len(ids) > self.seq_len:
            raise ValueError(f"{source!r} -> {target!r} takes {len(ids)} tokens, more than seq_len={self.seq_len}")
        return ids

    def tensors(self, pairs: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """x: each ``source <sep> target <eos>``, padded, less its last position (seq_len - 1 ids);
        y: at each position of x, the next token if it is a target token (or <eos>), else -100."""
        x = torch.full((len(pairs), self.seq_len), self.stoi[PAD])
        y = torch.full((len(pairs), self.seq_len), IGNORE)
        for i, (source, target) in enumerate(pairs):
            ids = self.encode(source, target)
            x[i, :len(ids)] = torch.tensor(ids)
            start = len(source.split()) + 1  # the first target token
            y[i, start - 1:len(ids) - 1] = torch.tensor(ids[start:])  # predicted from the position before it
        return x[:, :-1], y[:, :-1]

    # -- training and translating ------------------------------------------

    def fit(self, pairs: Sequence[tuple[str, str]], *, steps: int, batch_size: int, lr: float, seed: int = 0,
            val_pairs: Sequence[tuple[str, str]] | None = None, eval_batches: int = 0):
        """Train on ``(source, target)`` string pairs with ``lmcourse.train``; return its History.

        Batches are drawn uniformly from ``pairs`` (with replacement), so two
        runs with the same ``steps`` and ``batch_size`` see the same number of
        examples however many pairs each has: the fair way to compare training sets.
        """
        pairs = _check_pairs("pairs", pairs)
        batch_size = positive_int("batch_size", batch_size)
        data = {"train": self.tensors(pairs)}
        if val_pairs is not None:
            data["val"] = self.tensors(_check_pairs("val_pairs", val_pairs))
        elif eval_batches:
            raise ValueError("eval_batches > 0 needs val_pairs to evaluate on")

        def get_batch(split, generator):
            x, y = data[split]
            rows = torch.randint(len(x), (batch_size,), generator=generator)
            return x[rows], y[rows]

        config = lmtrain.TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, eval_batches=eval_batches,
                                     eval_interval=max(1, steps // 5), seed=seed, progress=False)
        return lmtrain.train(self.model, get_batch, config, loss_fn=target_loss, device=self.device)

    def translate(self, sources: Sequence[str], max_words: int | None = None) -> list[str]:
        """Greedy translations, batched by source length (equal-length prompts need no padding).

        ``max_words`` caps each output's length (default: what fits in seq_len); a model that
        loops is cut there, and back-translations stay short enough to pair with their targets.
        """
        if isinstance(sources, str):
            raise TypeError("translate takes a list of sentences, got one string: wrap it in a list")
        max_words = positive_int("max_words", max_words) if max_words is not None else self.seq_len
        by_length = defaultdict(list)
        for i, source in enumerate(sources):
            by_length[len(source.split())].append(i)
        out: list[str] = [""] * len(sources)
        eos = self.stoi[EOS]
        for indices in by_length.values():
            prompts = torch.tensor([self.encode(sources[i]) for i in indices], device=self.device)
            steps = min(max_words + 1, self.seq_len - prompts.shape[1])  # + 1: room for <eos>
            new = generate(self.model, prompts, steps, temperature=0)
            for i, ids in zip(indices, new[:, prompts.shape[1]:].tolist()):
                ids = ids[:ids.index(eos)] if eos in ids else ids[:max_words]
                out[i] = " ".join(self.itos[j] for j in ids if j >= 4)  # specials are not words
        return out


def _check_pairs(name: str, pairs) -> list[tuple[str, str]]:
    pairs = [tuple(p) for p in pairs]
    if not pairs:
        raise ValueError(f"{name} is empty: expected a list of (source, target) string pairs")
    bad = [p for p in pairs if len(p) != 2 or not all(isinstance(s, str) and s.split() for s in p)]
    if bad:
        raise ValueError(f"{name} must hold (source, target) pairs of non-empty strings, got e.g. {bad[0]!r}")
    return pairs
