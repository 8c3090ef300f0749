"""Contrastive image-text models: CLIP (Radford et al. 2021) and locked-image tuning (Zhai et al. 2022).

``clip_loss`` is the symmetric InfoNCE objective both papers train with: in a
batch of N matching (image, caption) pairs, each image must pick its own
caption out of the N, and each caption its own image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lmcourse.validate import number


def _check_embeddings(name: str, x) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)}, {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor of shape (N, d), got {got}")


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float) -> torch.Tensor:
    """The symmetric contrastive loss of N matching pairs (row i of each is pair i).

    Both embeddings are L2-normalised, so their dot products are cosines in
    [-1, 1]; dividing by a small temperature (CLIP learns it, starting at 0.07)
    sharpens the softmax over the batch. Image i's correct caption is caption i,
    so the labels are the diagonal, in both directions; the loss is the mean of
    the image->text and text->image cross-entropies.
    """
    _check_embeddings("image_emb", image_emb)
    _check_embeddings("text_emb", text_emb)
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"image_emb {tuple(image_emb.shape)} and text_emb {tuple(text_emb.shape)} must have "
                         "the same shape (N, d): row i of each is the i-th matching pair")
    if not isinstance(temperature, torch.Tensor):
        temperature = number("temperature", temperature, low=0.0, low_open=True)
    image_emb = F.normalize(image_emb, dim=-1)
    text_emb = F.normalize(text_emb.to(image_emb.dtype), dim=-1)
    logits = image_emb @ text_emb.T / temperature  # (N, N): row i scores image i against every caption
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
