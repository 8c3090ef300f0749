"""From one long token sequence to the (x, y) batches a language model trains on.

A language model learns to predict token ``t+1`` from tokens ``..t``. A
training example is a window of ``block_size`` tokens, ``x``, and the same
window shifted one step to the right, ``y``: every position of ``x`` gets its
own next-token target, so one window carries ``block_size`` predictions.

    tokens  = [5, 9, 2, 7, 3, 8]             block_size = 4
    x       = [5, 9, 2, 7]
    y       = [9, 2, 7, 3]                   y[i] is the token after x[i]

The splits are contiguous blocks (the first 90 % train, then validation, then
test), not random windows: windows overlap, so shuffling them into splits
would put the same text in train and in test and flatter the test score.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lmcourse.validate import positive_int

SPLIT_NAMES = ("train", "val", "test")


def as_tokens(tokens) -> torch.Tensor:
    """A 1-D int64 tensor of token ids from a tensor, NumPy array or list of ints."""
    if isinstance(tokens, torch.Tensor):
        t = tokens
    else:
        array = np.asarray(tokens)
        if array.size == 0:
            array = array.astype(np.int64)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"tokens must be integer ids, got an array of {array.dtype}")
        t = torch.from_numpy(array)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"tokens must be integer ids, got a tensor of {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"tokens must be one 1-D sequence, got shape {tuple(t.shape)}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"token ids must be >= 0, found {int(t.min())}")
    return t.long()


@dataclass(frozen=True)
class Splits:
    """Three contiguous, non-overlapping pieces of one token sequence."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}: choose one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {name: len(self[name]) for name in SPLIT_NAMES}


def split(tokens, fractions: Sequence[float] = (0.9, 0.05, 0.05), *,
          block_size: int | None = None) -> Splits:
    """Cut ``tokens`` into train, validation and test blocks, in that order.

    ``fractions`` are the three shares (positive, summing to 1). With
    ``block_size``, every split must hold at least one window plus its target
    (``block_size + 1`` tokens).
    """
    t = as_tokens(tokens)
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3:
        raise ValueError(f"fractions must be three numbers (train, val, test), got {fractions}")
    if any(not f > 0 for f in fractions):
        raise ValueError(f"every fraction must be positive, got {fractions}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions} (sum {sum(fractions):g})")
    n = len(t)
    n_train = round(fractions[0] * n)
    n_val = round(fractions[1] * n)
    pieces = Splits(t[:n_train], t[n_train:n_train + n_val], t[n_train + n_val:])
    need = 1 if block_size is None else positive_int("block_size", block_size) + 1
    for name, size in pieces.sizes().items():
        if size < need:
            raise ValueError(
                f"the {name} split has {size} tokens but needs at least {need}"
                + (f" (block_size {block_size} + 1 target)" if block_size else "")
                + f": {n} tokens split by {fractions} is too short; use more data"
                + (" or a smaller block_size" if block_size else "")
            )
    return pieces


def random_windows(data: torch.Tensor, batch_size: int, block_size: int,
                   generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``data`` and their next-token targets.

    Returns ``x, y`` of shape ``(batch_size, block_size)``, int64, on ``device``
    (default: where ``data`` is), with ``y[b, i] == data[start_b + i + 1]``.
    The same ``generator`` state gives the same windows.
    """
    data = _long_1d(data)
    positive_int("batch_size", batch_size)
    positive_int("block_size", block_size)
    if len(data) < block_size + 1:
        raise ValueError(
            f"data has {len(data)} tokens; a window of block_size {block_size} plus its "
            f"target needs at least {block_size + 1}"
        )
    rng_device = generator.device if generator is not None else "cpu"
    # Any start from 0 to len - block_size - 1 leaves room for the last target.
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator,
                           device=rng_device).to(data.device)
    index = starts[:, None] + torch.arange(block_size, device=data.device)
    x, y = data[index], data[index + 1]
    device = data.device if device is None else torch.device(device)
    return x.to(device), y.to(device)


def sequential_windows(data: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All non-overlapping windows of ``data``, in order, for exact evaluation.

    Returns ``x, y`` of shape ``(n, block_size)`` with ``n = (len(data) - 1) // block_size``:
    every token from ``data[1]`` to ``data[n * block_size]`` is a target exactly
    once (the last few tokens that do not fill a window are left out). They are
    views of ``data``: nothing is copied.
    """
    data = _long_1d(data)
    positive_int("block_size", block_size)
    n = (len(data) - 1) // block_size
    if n < 1:
        raise ValueError(
            f"data has {len(data)} tokens; one window of block_size {block_size} needs "
            f"{block_size + 1}"
        )
    x = data[: n * block_size].view(n, block_size)
    y = data[1 : n * block_size + 1].view(n, block_size)
    return x, y


class LMBatches:
    """Train/val/test token splits that serve random batches.

    It is a ``get_batch(split, generator) -> (x, y)`` callable, the form the
    training loop takes:

        batches = LMBatches.from_tokens(ids, batch_size=32, block_size=64)
        x, y = batches("train", generator)

    ``device`` defaults to ``lmcourse.runtime.device()``: windows are cut on
    the CPU (cheap indexing) and only the small batch is copied over.
    """

    def __init__(self, splits: Splits, batch_size: int, block_size: int,
                 device: torch.device | str | None = None):
        if not isinstance(splits, Splits):
            raise TypeError(f"splits must be a Splits (from split()), got {type(splits).__name__}")
        self.batch_size = positive_int("batch_size", batch_size)
        self.block_size = positive_int("block_size", block_size)
        if device is None:
            from lmcourse.runtime import device as best_device

            device = best_device()
        self.device = torch.device(device)
        for name, size in splits.sizes().items():
            if size < block_size + 1:
                raise ValueError(f"the {name} split has {size} tokens, fewer than block_size "
                                 f"{block_size} + 1: use a smaller block_size or more data")
        self.splits = splits

    @classmethod
    def from_tokens(cls, tokens, batch_size: int, block_size: int,
                    fractions: Sequence[float] = (0.9, 0.05, 0.05),
                    device: torch.device | str | None = None) -> "LMBatches":
        return cls(split(tokens, fractions, block_size=block_size), batch_size, block_size,
                   device)

    def get(self, split: str, generator: torch.Generator | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch ``(x, y)`` of shape ``(batch_size, block_size)`` from ``split``."""
        return random_windows(self.splits[split], self.batch_size, self.block_size,
                              generator=generator, device=self.device)

    __call__ = get

    def windows(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Every non-overlapping window of ``split`` (on the CPU), for exact perplexity."""
        return sequential_windows(self.splits[split], self.block_size)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={size:,}" for name, size in self.splits.sizes().items())
        return (f"LMBatches({sizes} tokens; batch_size={self.batch_size}, "
                f"block_size={self.block_size}, device={self.device})")


def _long_1d(data) -> torch.Tensor:
    # Called once per batch: a 1-D LongTensor passes straight through, skipping
    # as_tokens' scan for negative ids, which would cost O(len(data)) every step.
    if isinstance(data, torch.Tensor) and data.dtype == torch.long and data.dim() == 1:
        return data
    return as_tokens(data)
