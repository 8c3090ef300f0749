"""The input check every language model in the course runs on its token ids."""
from __future__ import annotations

import torch


def check_token_ids(idx, vocab_size: int) -> None:
    """Raise a clear error unless ``idx`` is a (B, T) int64 tensor of ids in [0, vocab_size)."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError("idx must be a torch.LongTensor of token ids, shape (B, T); "
                        f"got {type(idx).__name__}")
    if idx.dtype != torch.long:
        raise TypeError(f"idx must hold int64 token ids (torch.long), got {idx.dtype}")
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx must have shape (B, T) with T >= 1, got {tuple(idx.shape)}; "
                         "for a single sequence use idx[None]")
    # On the CPU the range check is cheap; on a GPU it would stall the pipeline with a
    # device-to-host copy every step, so there the embedding's own check stands.
    if idx.device.type == "cpu" and idx.numel():
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(f"token ids must be in [0, {vocab_size - 1}] (vocab_size "
                             f"{vocab_size}), found {low if low < 0 else high}")
