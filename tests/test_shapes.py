"""The shapes world of lesson 10: images, labels, captions, held-out pairs, caption noise."""
import numpy as np
import pytest
import torch

from lmcourse.data import shapes


@pytest.fixture(scope="module")
def data():
    return shapes.make_lit_data(n_pretrain=300, n_pairs=800, n_test=30, noise=0.3, seed=0)


def test_draw_is_an_image_in_range_with_the_shape_in_its_colour():
    image = shapes.draw("red", "square", "large", "centre", np.random.default_rng(0))
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    centre = image[:, 14:18, 14:18].mean(axis=(1, 2))
    assert centre[0] > 0.7 and centre[1] < 0.3 and centre[2] < 0.3  # red where the square is
    corner = image[:, :3, :3].mean()
    assert corner < 0.4  # dark background


def test_draw_names_bad_arguments():
    with pytest.raises(ValueError, match="colour must be one of"):
        shapes.draw("pink", "square", "large", "centre", np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy Generator"):
        shapes.draw("red", "square", "large", "centre", 0)


def test_class_names_and_ids_agree():
    names = shapes.class_names()
    assert len(names) == len(shapes.COLOURS) * len(shapes.SHAPES) == len(set(names))
    assert names[shapes.class_id("blue", "cross")] == "blue cross"


def test_fields_line_up(data):
    for part in (data.pretrain, data.pairs, data.test_combos, data.test_classes, data.test_seen):
        n = len(part)
        assert part.images.shape == (n, 3, 32, 32)
        for field in (part.colour, part.shape, part.size, part.position, part.combo):
            assert field.shape == (n,) and field.dtype == torch.long
        assert (part.combo == part.colour * len(shapes.SHAPES) + part.shape).all()
    assert len(data.pairs) == 800 and len(data.test_classes) == 30


def pairs_of(part):
    return {(shapes.COLOURS[c], shapes.SHAPES[s]) for c, s in zip(part.colour.tolist(), part.shape.tolist())}


def test_held_out_pairs_are_where_they_should_be(data):
    combos, classes = set(shapes.HELD_OUT_COMBOS), set(shapes.HELD_OUT_CLASSES)
    assert pairs_of(data.test_combos) == combos and pairs_of(data.test_classes) == classes
    assert combos <= pairs_of(data.pretrain) and not classes & pairs_of(data.pretrain)
    assert not (combos | classes) & pairs_of(data.pairs)
    named = {shapes.caption_words(c) for c in data.pairs.captions}
    assert not (combos | classes) & named  # no caption, not even a wrong one, names a held-out pair
    # ...while every colour and every shape word is seen in the captions
    assert {c for c, _ in named} >= set(shapes.COLOURS) and {s for _, s in named} >= set(shapes.SHAPES)


def test_noise_rate_and_kinds(data):
    kinds = np.array(data.pairs.caption_kind)
    assert abs((kinds != "clean").mean() - 0.3) < 0.05
    assert abs((kinds == "wrong").mean() - 0.15) < 0.04
    truth = [(shapes.COLOURS[c], shapes.SHAPES[s]) for c, s in zip(data.pairs.colour.tolist(), data.pairs.shape.tolist())]
    for caption, kind, pair in zip(data.pairs.captions, kinds, truth):
        said = shapes.caption_words(caption)
        if kind == "clean":
            assert said == pair, caption
        elif kind == "wrong":
            assert None not in said and said != pair, caption
        else:
            assert None in said, caption  # vague: names at most one of colour and shape
    assert all(k == "clean" for k in data.test_seen.caption_kind)


def test_every_caption_word_is_in_the_vocabulary(data):
    vocab = set(shapes.vocabulary())
    words = {w for c in data.pairs.captions for w in c.replace(",", " ").split()}
    assert words <= vocab


def test_make_lit_data_names_bad_arguments():
    with pytest.raises(ValueError, match="noise must be a finite number in"):
        shapes.make_lit_data(10, 10, 10, noise=1.5)
    with pytest.raises(TypeError, match="n_pairs must be an integer"):
        shapes.make_lit_data(10, 2.5, 10)
