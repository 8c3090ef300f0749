"""Checks for lesson 10's exercise: the symmetric contrastive loss of CLIP and LiT.

``clip_loss(image_emb, text_emb, temperature)`` takes two float tensors of
shape (N, d), row i of each being the i-th matching (image, caption) pair, and
a temperature (a float or a 0-d tensor). It returns a 0-d tensor: both sides
L2-normalised, ``logits = image @ text.T / temperature``, and the mean of the
image->text and text->image cross-entropies whose labels are the diagonal
(Radford et al. 2021; Zhai et al. 2022). The reference is
``lmcourse.models.clip.clip_loss``.

The cases are built from the generator they are given, so the batch grader's
hidden cases (another seed) are new draws of the same kinds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lmcourse.grading.checks import Case, Exercise, Mistake, register
from lmcourse.models.clip import clip_loss as _clip_loss


def _logits(img, txt, T, normalise=(True, True)):
    if normalise[0]:
        img = F.normalize(img, dim=-1)
    if normalise[1]:
        txt = F.normalize(txt, dim=-1)
    return img @ txt.T / T


def _diagonal(logits):
    return torch.arange(len(logits), device=logits.device)


def _symmetric(logits, labels, reduction="mean", combine=0.5):
    i2t = F.cross_entropy(logits, labels, reduction=reduction)
    t2i = F.cross_entropy(logits.T, labels, reduction=reduction)
    return (i2t + t2i) * combine


def _wrong_image_to_text_only(img, txt, T):
    logits = _logits(img, txt, T)
    return F.cross_entropy(logits, _diagonal(logits))


def _wrong_text_to_image_only(img, txt, T):
    logits = _logits(img, txt, T)
    return F.cross_entropy(logits.T, _diagonal(logits))


def _wrong_no_normalisation(img, txt, T):
    logits = _logits(img, txt, T, normalise=(False, False))
    return _symmetric(logits, _diagonal(logits))


def _wrong_images_only_normalised(img, txt, T):
    logits = _logits(img, txt, T, normalise=(True, False))
    return _symmetric(logits, _diagonal(logits))


def _wrong_texts_only_normalised(img, txt, T):
    logits = _logits(img, txt, T, normalise=(False, True))
    return _symmetric(logits, _diagonal(logits))


def _wrong_times_temperature(img, txt, T):
    logits = _logits(img, txt, 1.0) * T
    return _symmetric(logits, _diagonal(logits))


def _wrong_labels_zero(img, txt, T):
    logits = _logits(img, txt, T)
    return _symmetric(logits, torch.zeros(len(logits), dtype=torch.long))


def _wrong_labels_reversed(img, txt, T):
    logits = _logits(img, txt, T)
    return _symmetric(logits, _diagonal(logits).flip(0))


def _wrong_sum_over_batch(img, txt, T):
    logits = _logits(img, txt, T)
    return _symmetric(logits, _diagonal(logits), reduction="sum")


def _wrong_sum_of_directions(img, txt, T):
    logits = _logits(img, txt, T)
    return _symmetric(logits, _diagonal(logits), combine=1.0)


def _wrong_sum_everything(img, txt, T):
    logits = _logits(img, txt, T)
    return _symmetric(logits, _diagonal(logits), reduction="sum", combine=1.0)


def _pair(gen, n, d, dtype=torch.float32, scale=1.0):
    img = torch.randn(n, d, generator=gen, dtype=torch.float64) * scale
    # Captions near their images (as after some training), so the diagonal matters.
    txt = img + 0.8 * torch.randn(n, d, generator=gen, dtype=torch.float64) * scale
    return img.to(dtype), txt.to(dtype)


def _cases(gen: torch.Generator) -> list[Case]:
    def case(name, n, d, T, dtype=torch.float32, grad=False):
        return Case(name, (*_pair(gen, n, d, dtype), T), grad=grad)

    unit_img, unit_txt = (F.normalize(x, dim=-1) for x in _pair(gen, 6, 8))
    # Norms from 0.01 to 100 in both towers, in different orders: only normalising both
    # sides gives the cosines the loss is defined on.
    img, txt = _pair(gen, 7, 5)
    norms = torch.logspace(-2, 2, 7)
    uneven = (img * norms[:, None], txt * norms.flip(0)[torch.randperm(7, generator=gen)][:, None])
    same = torch.randn(5, 6, generator=gen)
    return [
        case("8 pairs of 16-dim embeddings, temperature 0.07", 8, 16, 0.07),
        case("one pair (N=1): the loss is 0", 1, 10, 0.07),
        case("one dimension (d=1): every cosine is +1 or -1", 6, 1, 0.5),
        case("more pairs than dimensions (N=12, d=4), temperature 0.2", 12, 4, 0.2),
        case("float64 embeddings, temperature 0.1", 5, 9, 0.1, dtype=torch.float64),
        case("a large temperature (T=10): a nearly uniform softmax", 6, 8, 10.0),
        case("a tiny temperature (T=0.001): logits up to ±1000", 6, 8, 0.001),
        Case("rows already of unit length, temperature 0.05", (unit_img, unit_txt, 0.05)),
        Case("rows of very different norms (0.01 to 100), temperature 0.1", (*uneven, 0.1)),
        Case("identical embeddings: every image equals every caption", (
            same[:1].expand(5, 6).clone(), same[:1].expand(5, 6).clone(), 0.07)),
        Case("the temperature given as a 0-d tensor", (*_pair(gen, 6, 12), torch.tensor(0.07))),
        case("gradients flow back to both embeddings", 5, 7, 0.1, grad=True),
    ]


_DIRECTIONS = ("the loss is the mean of two cross-entropies over the same logits matrix: "
               "each image picks its caption among the N (along a row), and each caption "
               "picks its image among the N (along a column)")
_NORMALISE = ("CLIP compares directions, not lengths: divide every image row and every text "
              "row by its own L2 norm before the dot products, so the logits are cosines "
              "divided by the temperature")
_SUMMED = ("a loss that grows with N makes the learning rate depend on the batch size: "
           "average the per-pair cross-entropies, and average the two directions")

register(Exercise(
    id="clip_loss",
    title="The symmetric contrastive loss of CLIP (Radford et al. 2021)",
    reference=_clip_loss,
    cases=_cases,
    mistakes=[
        Mistake("only the image→text direction is computed", _DIRECTIONS, _wrong_image_to_text_only),
        Mistake("only the text→image direction is computed", _DIRECTIONS, _wrong_text_to_image_only),
        Mistake("the embeddings are not both L2-normalised", _NORMALISE, _wrong_no_normalisation),
        Mistake("the embeddings are not both L2-normalised", _NORMALISE, _wrong_images_only_normalised),
        Mistake("the embeddings are not both L2-normalised", _NORMALISE, _wrong_texts_only_normalised),
        Mistake("the similarities are multiplied by the temperature",
                "a small temperature must sharpen the softmax, so the cosines are divided by it "
                "(CLIP's learned logit scale is 1 / temperature)", _wrong_times_temperature),
        Mistake("the labels do not point at the matching pairs",
                "row i of the image embeddings goes with row i of the text embeddings: the "
                "correct class of image i is caption i, in both directions", _wrong_labels_zero),
        Mistake("the labels do not point at the matching pairs",
                "row i of the image embeddings goes with row i of the text embeddings: the "
                "correct class of image i is caption i, in both directions", _wrong_labels_reversed),
        Mistake("the cross-entropies are summed over the batch instead of averaged", _SUMMED,
                _wrong_sum_over_batch),
        Mistake("the two directions are added instead of averaged", _SUMMED, _wrong_sum_of_directions),
        Mistake("the loss is summed over the batch and over the two directions", _SUMMED,
                _wrong_sum_everything),
    ],
    unstable=("Hint: with a tiny temperature the logits reach ±1000, and exp() overflows: "
              "F.cross_entropy (or log_softmax) subtracts each row's maximum first and stays finite"),
    error_hints={
        "Expected floating point type for target": "the labels are class ids (integers, torch.long): "
                                                     "the index of the matching caption",
        "mat1 and mat2 shapes cannot be multiplied": "both embeddings have shape (N, d): transpose "
                                                     "one of them to get an (N, N) matrix of scores",
        "Target": "cross_entropy wants one label per row of the logits, each in 0 … N-1",
    },
    passed_message=("All cases pass: cosines over the temperature, the matching pairs on the diagonal, "
                    "the mean of the two directions."),
))
