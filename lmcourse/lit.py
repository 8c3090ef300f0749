"""Locked-image tuning (LiT, Zhai et al., 2022) at small scale: pretrain, lock, align, zero-shot.

The recipe, in three steps:

    data = shapes.make_lit_data(...)
    tower = ImageTower(width)
    pretrain_image_tower(tower, data.pretrain, steps, batch_size, lr)    # supervised: colour, shape
    model = ContrastiveModel(tower, TextTower(width), width, lock_image=True)
    train_contrastive(model, data.pairs, steps, batch_size, lr)          # CLIP's loss, noisy captions
    zero_shot_accuracy(model, data.test_classes, shapes.class_names())   # classify by caption

``run_setting`` does all of it for one of the paper's settings: the first
letter is the image tower, the second the text tower; L = pretrained and
locked, U = pretrained and unlocked, u = unlocked from a random start.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from lmcourse import runtime
from lmcourse.data import shapes
from lmcourse.data.shapes import ShapeImages
from lmcourse.models.clip import ContrastiveModel, ImageTower, TextTower
from lmcourse.speed import synchronize
from lmcourse.train import TrainConfig, lr_at, make_optimizer
from lmcourse.validate import integer, number, positive_int

__all__ = ["PROMPTS", "SETTINGS", "pretrain_image_tower", "classifier_accuracy", "train_contrastive",
           "zero_shot_accuracy", "recall_at_k", "run_setting"]

# CLIP averages the text embeddings of several prompts per class ("prompt ensembling").
PROMPTS = ("a {}", "a photo of a {}", "a picture of a {}", "an image of a {}")
# Supervised pretraining runs at this multiple of the budget's learning rate: with batch norm and a
# cosine decay it learns shapes faster there (measured at the smoke budget: 0.6 vs 0.3 shape accuracy).
PRETRAIN_LR_FACTOR = 3
SETTINGS = ("Lu", "Uu", "uu", "LU", "LL", "UU", "UL", "uU", "uL")


def _check_images(name: str, data) -> ShapeImages:
    if not isinstance(data, ShapeImages):
        raise TypeError(f"{name} must be a lmcourse.data.shapes.ShapeImages (e.g. make_lit_data(...).pairs), "
                        f"got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name} holds no images")
    return data


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def pretrain_image_tower(tower: ImageTower, data: ShapeImages, steps: int, batch_size: int, lr: float,
                         *, seed: int = 0) -> dict:
    """Supervised pretraining of ``tower`` on the clean labels of ``data``, in place.

    Two linear heads read the pooled features: one names the colour, one the
    shape (the loss is the sum of their cross-entropies), as an image
    dataset's labelled concepts would. A short warm-up, then a cosine decay
    to 5 % of ``lr`` (``lmcourse.train.lr_at``). Returns ``{"head", "losses",
    "seconds"}``; ``head(features)`` gives (N, colours + shapes) logits.
    """
    _check_images("data", data)
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    lr = number("lr", lr, low=0, low_open=True)
    device = _device_of(tower)
    n_colours = len(shapes.COLOURS)
    head = torch.nn.Linear(tower.width, n_colours + len(shapes.SHAPES)).to(device)
    both = torch.nn.ModuleDict({"tower": tower, "head": head})
    config = TrainConfig(steps=steps, lr=lr, weight_decay=0.01, warmup_steps=steps // 20, min_lr_ratio=0.05)
    optimizer = make_optimizer(both, config)
    images, colour, shape = data.images.to(device), data.colour.to(device), data.shape.to(device)
    generator = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    both.train()
    for step in range(steps):
        for group in optimizer.param_groups:  # warm-up, then a cosine decay: the last steps settle
            group["lr"] = lr_at(step, config)
        idx = torch.randint(len(data), (batch_size,), generator=generator).to(device)
        logits = head(tower(images[idx]))
        loss = (F.cross_entropy(logits[:, :n_colours], colour[idx])
                + F.cross_entropy(logits[:, n_colours:], shape[idx]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    synchronize(device)
    tower.eval()
    return {"head": head, "losses": [float(x) for x in losses], "seconds": time.perf_counter() - start}


@torch.no_grad()
def classifier_accuracy(tower: ImageTower, head: torch.nn.Module, data: ShapeImages) -> float:
    """Share of ``data`` whose colour and shape the supervised heads both name right."""
    _check_images("data", data)
    was = tower.training
    tower.eval()
    logits = head(tower(data.images.to(_device_of(tower)))).cpu()
    tower.train(was)
    n_colours = len(shapes.COLOURS)
    right = (logits[:, :n_colours].argmax(-1) == data.colour) & (logits[:, n_colours:].argmax(-1) == data.shape)
    return float(right.float().mean())


def train_contrastive(model: ContrastiveModel, pairs: ShapeImages, steps: int, batch_size: int, lr: float,
                      *, seed: int = 0, cache: bool = True, on_step=None) -> dict:
    """Train ``model``'s unlocked parts with CLIP's loss on random batches of ``pairs``.

    A constant learning rate (AdamW), so the model after k steps of a longer
    run is the model a k-step run would give: ``on_step(step, model)``, called
    after every update, can evaluate a sweep of step counts in one run. With
    ``cache=True`` a locked tower's features for all of ``pairs`` are
    computed once, before the first step; ``cache=False`` recomputes them for
    every batch (the speed comparison). Returns ``{"losses",
    "seconds_per_step", "cache_seconds"}``; evaluation in ``on_step`` is not
    timed.
    """
    if not isinstance(model, ContrastiveModel):
        raise TypeError(f"model must be a ContrastiveModel, got {type(model).__name__}")
    _check_images("pairs", pairs)
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    if batch_size > len(pairs):
        raise ValueError(f"batch_size must be at most the {len(pairs)} pairs, got {batch_size}")
    lr = number("lr", lr, low=0, low_open=True)
    device = _device_of(model)
    images, captions = pairs.images.to(device), pairs.captions
    config = TrainConfig(steps=steps, lr=lr, weight_decay=0.01)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(seed)

    start = time.perf_counter()
    image_cache = model.image_features(images) if model.lock_image and cache else None
    text_cache = model.text_features(captions) if model.lock_text and cache else None
    synchronize(device)
    cache_seconds = time.perf_counter() - start

    losses, train_seconds = [], 0.0
    model.train()
    for step in range(1, steps + 1):
        start = time.perf_counter()
        # Distinct pairs in a batch: a duplicate would be its own negative.
        idx = torch.randperm(len(pairs), generator=generator)[:batch_size]
        if image_cache is not None:
            image_features = image_cache[idx.to(device)]
        elif model.lock_image:
            with torch.no_grad():  # locked but not cached: the tower runs again on every batch
                image_features = model.image_tower(images[idx.to(device)])
        else:
            image_features = model.image_tower(images[idx.to(device)])
        batch_captions = [captions[i] for i in idx.tolist()]
        if text_cache is not None:
            text_features = text_cache[idx.to(device)]
        elif model.lock_text:
            with torch.no_grad():
                text_features = model.text_tower(batch_captions)
        else:
            text_features = model.text_tower(batch_captions)
        loss = model.loss_from_embeddings(model.embed_image_features(image_features),
                                          model.embed_text_features(text_features))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        losses.append(loss.detach())
        synchronize(device)
        train_seconds += time.perf_counter() - start
        if on_step is not None:
            on_step(step, model)
            model.train()
    return {"losses": [float(x) for x in losses], "seconds_per_step": train_seconds / steps,
            "cache_seconds": cache_seconds}


def _labels_for(data: ShapeImages, class_names: list[str]) -> torch.Tensor:
    names = shapes.class_names()
    index = {name: i for i, name in enumerate(class_names)}
    missing = sorted({names[c] for c in data.combo.tolist()} - set(index))
    if missing:
        raise ValueError(f"class_names must include the class of every image; missing {missing}")
    return torch.tensor([index[names[c]] for c in data.combo.tolist()])


@torch.no_grad()
def class_embeddings(model: ContrastiveModel, class_names: list[str], prompts=PROMPTS) -> torch.Tensor:
    """(C, embed_dim): per class, the mean of its prompts' unit embeddings, renormalised (CLIP)."""
    texts = [p.format(name) for name in class_names for p in prompts]
    emb = model.encode_texts(texts).reshape(len(class_names), len(prompts), -1)
    return F.normalize(emb.mean(1), dim=-1)


@torch.no_grad()
def zero_shot_accuracy(model: ContrastiveModel, shape_images: ShapeImages, class_names: list[str],
                       prompts=PROMPTS) -> float:
    """Share of images whose nearest class embedding (prompts averaged) is their own class."""
    _check_images("shape_images", shape_images)
    if isinstance(class_names, str) or not class_names or not all(isinstance(c, str) for c in class_names):
        raise TypeError(f"class_names must be a non-empty list of strings, got {class_names!r}")
    labels = _labels_for(shape_images, list(class_names))
    was = model.training
    model.eval()
    classes = class_embeddings(model, list(class_names), prompts)
    images = model.encode_images(shape_images.images.to(classes.device))
    predicted = (images @ classes.T).argmax(-1).cpu()
    model.train(was)
    return float((predicted == labels).float().mean())


@torch.no_grad()
def recall_at_k(model: ContrastiveModel, shape_images: ShapeImages, ks=(1, 5)) -> dict:
    """Retrieval recall@k in both directions, ``{"i2t@1": ..., "t2i@1": ..., ...}``.

    Many images share a caption word for word, so captions are matched as
    text: image->text ranks the distinct captions and counts a hit when the
    image's own caption is in the top k; text->image ranks all images for each
    distinct caption and counts a hit when one of the top k has that caption.
    """
    _check_images("shape_images", shape_images)
    if isinstance(ks, int) or not ks:
        raise TypeError(f"ks must be a non-empty tuple of integers, e.g. (1, 5), got {ks!r}")
    ks = tuple(integer("ks[i]", k, minimum=1) for k in ks)
    was = model.training
    model.eval()
    unique = sorted(set(shape_images.captions))
    position = {c: i for i, c in enumerate(unique)}
    own = torch.tensor([position[c] for c in shape_images.captions])  # (N,) caption id of each image
    texts = model.encode_texts(unique)
    images = model.encode_images(shape_images.images.to(texts.device))
    sims = (images @ texts.T).cpu()  # (N images, U captions)
    model.train(was)
    out = {}
    for k in ks:
        top_texts = sims.topk(min(k, sims.shape[1]), dim=1).indices  # (N, k)
        out[f"i2t@{k}"] = float((top_texts == own[:, None]).any(1).float().mean())
        top_images = sims.T.topk(min(k, sims.shape[0]), dim=1).indices  # (U, k) image ids
        hits = (own[top_images] == torch.arange(len(unique))[:, None]).any(1)
        out[f"t2i@{k}"] = float(hits.float().mean())
    return out


def run_setting(setting: str, data, budget, text_tower=None, *, image_tower: ImageTower | None = None,
                seed: int = 0, cache: bool = True) -> dict:
    """Train one LiT setting and evaluate it after each of ``budget.lit_steps`` steps.

    ``setting`` is two letters, image tower then text tower: L (pretrained,
    locked), U (pretrained, unlocked), u (random start, unlocked). A
    pretrained image tower is ``image_tower`` (copied, never changed), else
    one is pretrained here on ``data.pretrain``. A pretrained text tower (L or
    U) must be passed as ``text_tower`` (any module with ``forward(list[str])
    -> (N, width)`` and ``width``); with "u" a fresh ``TextTower`` is used.
    Returns ``{"setting", "points": [{"steps", "zero_shot_combos",
    "zero_shot_classes", "zero_shot_seen", "i2t@1", ...}], "seconds_per_step",
    "cache_seconds", "losses", "model"}``.
    """
    if not isinstance(setting, str) or len(setting) != 2 or setting[0] not in "LUu" or setting[1] not in "LUu":
        raise ValueError(f"setting must be two letters from L, U, u (image tower, then text tower), "
                         f"e.g. one of {SETTINGS}; got {setting!r}")
    if not isinstance(data, shapes.LitData):
        raise TypeError(f"data must be a lmcourse.data.shapes.LitData (make_lit_data(...)), got {type(data).__name__}")
    budget = runtime.budget(budget)
    if (setting[1] == "u") != (text_tower is None):
        raise ValueError(f"setting {setting!r}: a pretrained text tower (L or U) comes as text_tower=..., and "
                         "'u' means a fresh TextTower, so pass text_tower only with L or U")
    device = runtime.device()
    torch.manual_seed(seed)
    width = budget.lit_width
    if setting[0] == "u":
        tower = ImageTower(width).to(device)
    else:
        if image_tower is None:
            image_tower = ImageTower(width).to(device)
            pretrain_image_tower(image_tower, data.pretrain, budget.lit_pretrain_steps, budget.lit_batch,
                                 PRETRAIN_LR_FACTOR * budget.learning_rate, seed=seed)
        tower = copy.deepcopy(image_tower).to(device)
    text = TextTower(width) if text_tower is None else text_tower
    model = ContrastiveModel(tower, text, tower.width, lock_image=setting[0] == "L",
                             lock_text=setting[1] == "L").to(device)
    names = shapes.class_names()
    points = []

    def evaluate(step, model):
        if step in budget.lit_steps:
            point = {"steps": step,
                     "zero_shot_combos": zero_shot_accuracy(model, data.test_combos, names),
                     "zero_shot_classes": zero_shot_accuracy(model, data.test_classes, names),
                     "zero_shot_seen": zero_shot_accuracy(model, data.test_seen, names)}
            point.update(recall_at_k(model, data.test_seen))
            points.append(point)

    run = train_contrastive(model, data.pairs, max(budget.lit_steps), budget.lit_batch, budget.learning_rate,
                            seed=seed, cache=cache, on_step=evaluate)
    return {"setting": setting, "points": points, "model": model, **run}
