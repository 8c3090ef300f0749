"""Coloured shapes with captions: a small world for contrastive image-text training (lesson 10).

Every image is 32x32 RGB: one shape (circle, square, ...) in one colour, at one
of three sizes and five positions, on a noisy dark background, with a little
jitter in colour, size and place. The zero-shot classes are the 30
colour-shape pairs ("red circle", ...).

``make_lit_data`` mirrors the set-up of LiT (Zhai et al., 2022):

* ``pretrain``: many images with clean class labels (the colour-shape pair),
  the stand-in for ImageNet-21k or JFT: a closed set of classes, labelled by
  people, large and clean.
* ``pairs``: fewer images with generated captions, some of them wrong (another
  colour or shape) or vague ("a shape"), at the rate ``noise``: the stand-in
  for web alt-text.
* three test sets with clean captions: ``test_combos`` (pairs whose words are
  each seen in captions, but never together; their images are in
  ``pretrain``), ``test_classes`` (pairs no image and no caption of the
  training data ever shows) and ``test_seen`` (seen pairs, fresh images).

    data = make_lit_data(n_pretrain=4000, n_pairs=1000, n_test=300, noise=0.3, seed=0)
    data.pairs.images.shape       # (1000, 3, 32, 32)
    data.pairs.captions[:2]       # ['a small red circle', 'a blue square in the top left']
    class_names()[data.pairs.combo[0]]
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from lmcourse.validate import integer, non_negative_int, number

__all__ = [
    "COLOURS", "SHAPES", "SIZES", "POSITIONS", "RGB", "SYNONYMS", "CAPTION_TEMPLATES", "VAGUE_CAPTIONS",
    "HELD_OUT_COMBOS", "HELD_OUT_CLASSES", "ShapeImages", "LitData", "draw", "class_names", "class_id",
    "caption_words", "make_images", "make_lit_data", "vocabulary",
]

COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
SHAPES = ("circle", "square", "triangle", "ring", "cross")
SIZES = ("small", "medium", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")

RGB = {
    "red": (0.90, 0.12, 0.10), "green": (0.12, 0.78, 0.15), "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.88, 0.10), "purple": (0.60, 0.12, 0.80), "white": (0.95, 0.95, 0.95),
}
_RADIUS = {"small": 4.5, "medium": 6.5, "large": 8.5}  # pixels, before jitter
_CENTRE = {"top left": (9, 9), "top right": (9, 23), "bottom left": (23, 9), "bottom right": (23, 23),
           "centre": (16, 16)}  # (row, column)

# Captions vary their words as alt-text does; the first word of each list is the class name's.
SYNONYMS = {
    "circle": ("circle", "disc", "round shape"), "square": ("square", "box"), "triangle": ("triangle",),
    "ring": ("ring", "hoop"), "cross": ("cross", "plus sign"), "purple": ("purple", "violet"),
    "top left": ("top left", "upper left"), "top right": ("top right", "upper right"),
    "bottom left": ("bottom left", "lower left"), "bottom right": ("bottom right", "lower right"),
    "centre": ("centre", "middle"), "small": ("small", "tiny"), "large": ("large", "big"),
}
CAPTION_TEMPLATES = (
    "a {size} {colour} {shape}",
    "a {colour} {shape} in the {position}",
    "a {size} {colour} {shape} in the {position}",
    "a picture of a {colour} {shape}",
    "in the {position} there is a {colour} {shape}",
    "a {shape} , {colour} , {size}",
    "{colour} {shape} on a dark background",
)
# Vague captions name no colour and no shape, or only one of them (half-useful alt-text).
VAGUE_CAPTIONS = (
    "a shape", "a picture", "something {size} in the {position}", "a {colour} thing",
    "a {shape} somewhere", "an image with one object", "look at this",
)
# Held out: pairs whose words are each seen. Each holds out a different colour and shape,
# so every colour and every shape still occurs with three or four others.
HELD_OUT_COMBOS = (("red", "triangle"), ("blue", "cross"), ("yellow", "circle"))
HELD_OUT_CLASSES = (("green", "ring"), ("purple", "square"), ("white", "triangle"))


def class_names() -> list[str]:
    """The 30 zero-shot classes, "red circle", ..., in class-id order (colour-major)."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def class_id(colour: str, shape: str) -> int:
    """The class id of a colour-shape pair (its index in ``class_names()``)."""
    if colour not in COLOURS or shape not in SHAPES:
        raise ValueError(f"expected a colour in {COLOURS} and a shape in {SHAPES}, got {colour!r}, {shape!r}")
    return COLOURS.index(colour) * len(SHAPES) + SHAPES.index(shape)


def _choice(values, rng: np.random.Generator):
    return values[int(rng.integers(len(values)))]


def draw(colour: str, shape: str, size: str, position: str, rng: np.random.Generator) -> np.ndarray:
    """One image, float32 of shape (3, 32, 32) in [0, 1]; ``rng`` draws the jitter and noise."""
    for name, value, allowed in (("colour", colour, COLOURS), ("shape", shape, SHAPES),
                                 ("size", size, SIZES), ("position", position, POSITIONS)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    r = _RADIUS[size] * rng.uniform(0.9, 1.1)
    cy, cx = (c + rng.uniform(-2, 2) for c in _CENTRE[position])
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) + 0.5
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        mask = dx ** 2 + dy ** 2 <= r ** 2
    elif shape == "square":
        mask = np.maximum(abs(dx), abs(dy)) <= 0.85 * r
    elif shape == "ring":
        mask = (dx ** 2 + dy ** 2 <= r ** 2) & (dx ** 2 + dy ** 2 >= (0.55 * r) ** 2)
    elif shape == "triangle":  # apex up; the base half-width grows linearly to r
        mask = (dy >= -r) & (dy <= 0.75 * r) & (abs(dx) <= (dy + r) / 1.75)
    else:  # cross: two bars
        mask = ((abs(dx) <= 0.35 * r) & (abs(dy) <= r)) | ((abs(dy) <= 0.35 * r) & (abs(dx) <= r))
    background = rng.uniform(0.05, 0.25) + rng.normal(0, 0.05, (3, 32, 32))
    tint = np.clip(np.array(RGB[colour]) + rng.normal(0, 0.05, 3), 0, 1)[:, None, None]
    image = np.where(mask[None], tint + rng.normal(0, 0.03, (3, 32, 32)), background)
    return np.clip(image, 0, 1).astype(np.float32)


def _say(word: str, rng: np.random.Generator) -> str:
    return _choice(SYNONYMS.get(word, (word,)), rng)


def _caption(colour, shape, size, position, rng, template=None) -> str:
    template = template or _choice(CAPTION_TEMPLATES, rng)
    return template.format(colour=_say(colour, rng), shape=_say(shape, rng), size=_say(size, rng),
                           position=_say(position, rng))


def vocabulary() -> list[str]:
    """Every word a caption, a vague caption or a zero-shot prompt can contain, sorted."""
    words = set()
    for text in CAPTION_TEMPLATES + VAGUE_CAPTIONS + ("a photo of a {c}", "an image of a {c}"):
        words.update(w for w in re.findall(r"[a-z]+", re.sub(r"\{[a-z]+\}", " ", text)))
    for group in (COLOURS, SHAPES, SIZES, POSITIONS):
        for word in group:
            for said in SYNONYMS.get(word, (word,)):
                words.update(said.split())
    return sorted(words)


_WORD_OF = {said: word for word, saids in SYNONYMS.items() for said in saids}


def caption_words(caption: str) -> tuple[str | None, str | None]:
    """The (colour, shape) a caption names, synonyms mapped back; None where it names none."""
    text = f" {caption.lower()} "
    found = {}
    for group, names in (("colour", COLOURS), ("shape", SHAPES)):
        for name in names:
            if any(re.search(rf"\b{re.escape(said)}\b", text) for said in SYNONYMS.get(name, (name,))):
                found.setdefault(group, name)
    return found.get("colour"), found.get("shape")


@dataclass
class ShapeImages:
    """Images with their labels and captions; row i of every field is image i."""

    images: torch.Tensor  # (N, 3, 32, 32) float32 in [0, 1]
    colour: torch.Tensor  # (N,) index into COLOURS
    shape: torch.Tensor  # (N,) index into SHAPES
    size: torch.Tensor  # (N,) index into SIZES
    position: torch.Tensor  # (N,) index into POSITIONS
    captions: list[str]
    combo: torch.Tensor  # (N,) class id of the colour-shape pair, an index into class_names()
    caption_kind: list[str]  # "clean", "wrong" (names another colour or shape) or "vague"

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, index) -> "ShapeImages":
        """The rows in ``index`` (a LongTensor, a slice or a list of ints)."""
        index = torch.as_tensor(index) if isinstance(index, list) else index
        rows = range(len(self))[index] if isinstance(index, slice) else index.tolist()
        return ShapeImages(self.images[index], self.colour[index], self.shape[index], self.size[index],
                           self.position[index], [self.captions[i] for i in rows], self.combo[index],
                           [self.caption_kind[i] for i in rows])

    def to(self, device) -> "ShapeImages":
        return ShapeImages(self.images.to(device), self.colour.to(device), self.shape.to(device),
                           self.size.to(device), self.position.to(device), list(self.captions),
                           self.combo.to(device), list(self.caption_kind))


def make_images(n: int, combos, *, noise: float = 0.0, forbidden=(), seed: int = 0) -> ShapeImages:
    """``n`` images of the colour-shape pairs ``combos`` (cycled, so balanced), with captions.

    A share ``noise`` of the captions is corrupted: half of those name a wrong
    colour or shape (never one of the pairs in ``forbidden``), half are vague.
    """
    n = non_negative_int("n", n)
    noise = number("noise", noise, low=0, high=1)
    combos = [tuple(c) for c in combos]
    if not combos:
        raise ValueError("combos must name at least one (colour, shape) pair")
    for c in combos:
        class_id(*c)  # names what is wrong with a bad pair
    forbidden = {tuple(c) for c in forbidden}
    rng = np.random.default_rng(seed)
    order = [combos[i % len(combos)] for i in range(n)]
    rng.shuffle(order)
    rows = []
    for colour, shape in order:
        size, position = _choice(SIZES, rng), _choice(POSITIONS, rng)
        image = draw(colour, shape, size, position, rng)
        kind = "clean" if rng.random() >= noise else ("wrong" if rng.random() < 0.5 else "vague")
        if kind == "wrong":  # the alt-text names another colour or another shape
            said_colour, said_shape = colour, shape
            while (said_colour, said_shape) == (colour, shape) or (said_colour, said_shape) in forbidden:
                if rng.random() < 0.5:
                    said_colour, said_shape = _choice(COLOURS, rng), shape
                else:
                    said_colour, said_shape = colour, _choice(SHAPES, rng)
            caption = _caption(said_colour, said_shape, size, position, rng)
        elif kind == "vague":
            caption = _choice(VAGUE_CAPTIONS, rng).format(
                colour=_say(colour, rng), shape=_say(shape, rng), size=_say(size, rng),
                position=_say(position, rng))
        else:
            caption = _caption(colour, shape, size, position, rng)
        rows.append((image, COLOURS.index(colour), SHAPES.index(shape), SIZES.index(size),
                     POSITIONS.index(position), caption, class_id(colour, shape), kind))
    long = lambda k: torch.tensor([r[k] for r in rows], dtype=torch.long)  # noqa: E731
    images = torch.from_numpy(np.stack([r[0] for r in rows])) if rows else torch.zeros(0, 3, 32, 32)
    return ShapeImages(images, long(1), long(2), long(3), long(4), [r[5] for r in rows], long(6),
                       [r[7] for r in rows])


@dataclass
class LitData:
    pretrain: ShapeImages  # large, clean: the image tower's supervised labels (``combo``)
    pairs: ShapeImages  # fewer image-caption pairs, a share ``noise`` of them wrong or vague
    test_combos: ShapeImages  # pairs never captioned together (their images are in pretrain)
    test_classes: ShapeImages  # pairs no tower saw in any image or caption
    test_seen: ShapeImages  # seen pairs, fresh images
    held_out_combos: list[int]  # class ids of test_combos
    held_out_classes: list[int]  # class ids of test_classes
    noise: float


def make_lit_data(n_pretrain: int, n_pairs: int, n_test: int, noise: float = 0.3, seed: int = 0) -> LitData:
    """The LiT set-up in miniature (see the module docstring); ``n_test`` images per test set."""
    n_pretrain = integer("n_pretrain", n_pretrain, minimum=1)
    n_pairs = integer("n_pairs", n_pairs, minimum=1)
    n_test = integer("n_test", n_test, minimum=1)
    noise = number("noise", noise, low=0, high=1)
    every = [(c, s) for c in COLOURS for s in SHAPES]
    seen = [p for p in every if p not in HELD_OUT_COMBOS and p not in HELD_OUT_CLASSES]
    held_out = HELD_OUT_COMBOS + HELD_OUT_CLASSES
    return LitData(
        pretrain=make_images(n_pretrain, seen + list(HELD_OUT_COMBOS), seed=seed * 10 + 1),
        pairs=make_images(n_pairs, seen, noise=noise, forbidden=held_out, seed=seed * 10 + 2),
        test_combos=make_images(n_test, HELD_OUT_COMBOS, seed=seed * 10 + 3),
        test_classes=make_images(n_test, HELD_OUT_CLASSES, seed=seed * 10 + 4),
        test_seen=make_images(n_test, seen, seed=seed * 10 + 5),
        held_out_combos=[class_id(*p) for p in HELD_OUT_COMBOS],
        held_out_classes=[class_id(*p) for p in HELD_OUT_CLASSES],
        noise=noise,
    )
