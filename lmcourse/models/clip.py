"""Contrastive image-text models: CLIP (Radford et al. 2021) and locked-image tuning (Zhai et al. 2022).

``clip_loss`` is the symmetric InfoNCE objective both papers train with: in a
batch of N matching (image, caption) pairs, each image must pick its own
caption out of the N, and each caption its own image. ``ImageTower`` (a small
CNN) and ``TextTower`` (a bag of words) are lesson 10's towers, and
``ContrastiveModel`` joins any two, locking either (a locked tower's features
are computed once and cached).
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from lmcourse.validate import number, positive_int


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


# ---------------------------------------------------------------------------
# The two towers and the contrastive model


class ImageTower(nn.Module):
    """A small CNN: (N, 3, 32, 32) images in [0, 1] -> (N, width) features.

    Three stride-2 convolutions (32 -> 16 -> 8 -> 4 pixels) with batch norm, a fourth,
    then global max pooling (a shape is detected wherever it sits: measured,
    it learns shapes faster than average pooling) and a linear layer: its output is what a
    classifier head reads (the "pre-logits"), and what LiT's locked tower
    hands on.
    """

    def __init__(self, width: int = 64):
        super().__init__()
        self.width = positive_int("width", width)
        layers, channels = [], 3
        for out in (width // 4, width // 2, width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.GELU()]
            channels = out
        self.net = nn.Sequential(*layers, nn.Conv2d(width, width, 3, padding=1), nn.GELU())
        # The pre-logits: a linear layer after pooling, so the features are not all positive
        # (after a GELU they would be, and every pair of images would have a high cosine).
        self.pre_logits = nn.Linear(width, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1:] != (3, 32, 32):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a float tensor of shape (N, 3, 32, 32), got {got}")
        return self.pre_logits(self.net(images).amax(dim=(2, 3)))


class WordVocab:
    """Lower-cased words to ids; id 0 is padding, id 1 is <unk> (any word outside the list)."""

    def __init__(self, words):
        self.words = ["<pad>", "<unk>"] + sorted(set(words))
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, captions: list[str]) -> torch.Tensor:
        """(N, T) ids, padded with 0 to the longest caption (at least one token each)."""
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise TypeError("captions must be a list of strings, e.g. ['a red circle'], "
                            f"got {type(captions).__name__}")
        ids = [[self.index.get(w, 1) for w in re.findall(r"[a-z]+", c.lower())] or [1] for c in captions]
        out = torch.zeros(len(ids), max(map(len, ids), default=1), dtype=torch.long)
        for i, row in enumerate(ids):
            out[i, :len(row)] = torch.tensor(row)
        return out


class TextTower(nn.Module):
    """A caption encoder that tokenizes for itself: list of N strings -> (N, width).

    Word embeddings, averaged over the caption, then one linear layer: a bag
    of words. A caption here describes one object, so word order carries
    little, and a linear map of the mean composes: "red" and "triangle"
    learnt apart give "red triangle" a place it never saw trained.
    The vocabulary defaults to every word the shapes captions and prompts use;
    any other word maps to <unk>.
    """

    def __init__(self, width: int = 64, words=None):
        super().__init__()
        from lmcourse.data.shapes import vocabulary

        self.width = positive_int("width", width)
        self.vocab = WordVocab(vocabulary() if words is None else words)
        self.embed = nn.Embedding(len(self.vocab), width, padding_idx=0)
        self.proj = nn.Linear(width, width)

    def forward(self, captions: list[str]) -> torch.Tensor:
        ids = self.vocab.encode(captions).to(self.embed.weight.device)
        mask = (ids > 0).unsqueeze(-1).float()
        mean = (self.embed(ids) * mask).sum(1) / mask.sum(1)
        return self.proj(mean)


class ContrastiveModel(nn.Module):
    """Two towers, projections into one embedding space, and CLIP's loss.

    ``lock_image`` / ``lock_text`` freeze a tower (LiT's "L"): its parameters
    get no gradient, it runs in eval mode (batch-norm statistics fixed), and
    its features for a tensor of images (or a list of captions) are computed
    once and cached. As in LiT's big_vision configs (``out_dim=(None, d)``,
    image parameters on a frozen schedule), a locked image tower gets no head:
    its pre-logit features are the embedding, so ``embed_dim`` must equal its
    width. Every other tower gets a trainable linear head. ``logit_scale`` is
    CLIP's learnable inverse temperature, stored as a log, starting at
    log(1/0.07) and clamped at log(100) (Radford et al., 2021).
    """

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module, embed_dim: int,
                 lock_image: bool = False, lock_text: bool = False):
        super().__init__()
        for name, tower in (("image_tower", image_tower), ("text_tower", text_tower)):
            if not isinstance(tower, nn.Module) or not isinstance(getattr(tower, "width", None), int):
                raise TypeError(f"{name} must be an nn.Module with an integer attribute width "
                                f"(its feature size), got {type(tower).__name__}")
        for name, flag in (("lock_image", lock_image), ("lock_text", lock_text)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        self.embed_dim = positive_int("embed_dim", embed_dim)
        if lock_image and image_tower.width != embed_dim:
            raise ValueError(f"a locked image tower has no head (as in LiT), so embed_dim must equal its width "
                             f"{image_tower.width}, got {embed_dim}")
        self.image_tower, self.text_tower = image_tower, text_tower
        self.lock_image, self.lock_text = lock_image, lock_text
        self.image_head = nn.Identity() if lock_image else nn.Linear(image_tower.width, embed_dim)
        self.text_head = nn.Linear(text_tower.width, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        for tower, locked in ((image_tower, lock_image), (text_tower, lock_text)):
            if locked:
                tower.requires_grad_(False)
                tower.eval()
        self._cache: dict[str, tuple] = {}

    def train(self, mode: bool = True):
        super().train(mode)
        for tower, locked in ((self.image_tower, self.lock_image), (self.text_tower, self.lock_text)):
            if locked:
                tower.eval()  # a locked tower is a fixed function: no batch statistics
        return self

    def _features(self, kind: str, tower: nn.Module, locked: bool, inputs):
        if not locked:
            return tower(inputs)
        # A locked tower is a fixed function: compute once per input and keep it. The key is the
        # object itself (held here, so its id cannot be reused) and, for a tensor, its version
        # counter, which in-place edits bump.
        version = inputs._version if isinstance(inputs, torch.Tensor) else tuple(inputs)
        hit = self._cache.get(kind)
        if hit is not None and hit[0] is inputs and hit[1] == version:
            return hit[2]
        with torch.no_grad():
            features = tower(inputs)
        self._cache[kind] = (inputs, version, features)
        return features

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """The image tower's features (N, width); cached when the tower is locked."""
        return self._features("image", self.image_tower, self.lock_image, images)

    def text_features(self, captions: list[str]) -> torch.Tensor:
        """The text tower's features (N, width); cached when the tower is locked."""
        return self._features("text", self.text_tower, self.lock_text, captions)

    def embed_image_features(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_head(features), dim=-1)

    def embed_text_features(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(features), dim=-1)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, embed_dim) unit-length image embeddings."""
        return self.embed_image_features(self.image_features(images))

    def encode_texts(self, captions: list[str]) -> torch.Tensor:
        """(N, embed_dim) unit-length caption embeddings."""
        return self.embed_text_features(self.text_features(captions))

    def temperature(self) -> torch.Tensor:
        return 1.0 / self.logit_scale.clamp(max=math.log(100.0)).exp()

    def loss_from_embeddings(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return clip_loss(image_emb, text_emb, self.temperature())

    def loss(self, images: torch.Tensor, captions: list[str]) -> torch.Tensor:
        """CLIP's symmetric loss on a batch of N matching (image, caption) pairs."""
        if len(images) != len(captions):
            raise ValueError(f"expected as many captions as images, got {len(captions)} and {len(images)}")
        return self.loss_from_embeddings(self.encode_images(images), self.encode_texts(captions))
