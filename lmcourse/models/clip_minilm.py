"""A pretrained text tower for lesson 10: all-MiniLM-L6-v2 as LiT's "L" or "U" text side.

all-MiniLM-L6-v2 is a 6-layer, 384-wide MiniLM (Wang et al., 2020) tuned on a
billion sentence pairs to give sentence embeddings (Reimers & Gurevych, 2019,
Sentence-BERT): the mean of its token vectors. It plugs into
``ContrastiveModel`` as the text tower:

    text = MiniLMTextTower(trainable=False)                   # locked: "L"
    model = ContrastiveModel(image_tower, text, embed_dim=image_tower.width,
                             lock_image=True, lock_text=True)  # LL: only the text head and the temperature train

A locked tower is a fixed function of the caption, and the shapes captions
repeat a lot, so it keeps one embedding per distinct caption and encodes only
the captions it has not seen.
"""
from __future__ import annotations

import torch
from torch import nn

from lmcourse.transfer import MAX_TOKENS, encode, load_minilm

__all__ = ["MiniLMTextTower"]


class MiniLMTextTower(nn.Module):
    """all-MiniLM-L6-v2 with mean pooling: ``forward(captions: list[str]) -> (N, 384)``.

    ``trainable=False`` freezes every weight and caches each distinct
    caption's embedding (the cache is used whenever no parameter requires a
    gradient, so a ``ContrastiveModel(lock_text=True)`` that freezes a
    trainable tower gets it too). ``trainable=True`` fine-tunes the
    transformer; the word-embedding table (half the parameters, 30,522 x 384)
    stays frozen, as in lesson 07: a batch's gradient touches only its own
    few rows, yet AdamW would rewrite the whole table every step.
    """

    def __init__(self, trainable: bool, device=None, batch_size: int = 128):
        super().__init__()
        if not isinstance(trainable, bool):
            raise TypeError(f"trainable must be True or False, got {trainable!r}")
        self.encoder, self.tokenizer = load_minilm(device)
        self.width = int(self.encoder.config.hidden_size)
        self.trainable = trainable
        self.batch_size = batch_size
        self.encoder.requires_grad_(trainable)
        self.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
        if not trainable:
            self.encoder.eval()
        self._cache: dict[str, torch.Tensor] = {}
        self.cache_hits = 0  # captions answered from the cache, for the lesson and the tests

    @property
    def locked(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True):
        super().train(mode and self.trainable)  # a locked encoder never turns dropout on
        return self

    def _embed(self, captions: list[str]) -> torch.Tensor:
        ids, mask = encode(self.tokenizer, captions, MAX_TOKENS)
        device = self.encoder.embeddings.word_embeddings.weight.device
        ids, mask = ids.to(device), mask.to(device)
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # mean over the real tokens

    def forward(self, captions: list[str]) -> torch.Tensor:
        if isinstance(captions, str) or not isinstance(captions, (list, tuple)) \
                or not all(isinstance(c, str) for c in captions):
            raise TypeError("captions must be a list of strings, e.g. ['a red circle'], "
                            f"got {type(captions).__name__}")
        if not captions:
            raise ValueError("captions is empty: expected at least one caption")
        if not self.locked:
            self._cache.clear()  # the weights may change: nothing cached stays true
            return self._embed(list(captions))
        new = list(dict.fromkeys(c for c in captions if c not in self._cache))
        self.cache_hits += len(captions) - len(new)
        with torch.no_grad():
            for start in range(0, len(new), self.batch_size):
                chunk = new[start:start + self.batch_size]
                for caption, row in zip(chunk, self._embed(chunk)):
                    self._cache[caption] = row
        return torch.stack([self._cache[c] for c in captions])
