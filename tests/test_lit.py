"""LiT at small scale: the towers, the cache of a locked tower, training, zero-shot accuracy, recall@k."""
import math

import pytest
import torch
from torch import nn

from lmcourse import lit, runtime
from lmcourse.data import shapes
from lmcourse.models.clip import ContrastiveModel, ImageTower, TextTower, clip_loss


@pytest.fixture(scope="module")
def data():
    return shapes.make_lit_data(n_pretrain=64, n_pairs=64, n_test=20, noise=0.3, seed=1)


def counting(tower):
    calls = []
    tower.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    return calls


def test_towers_shapes_and_unknown_words():
    torch.manual_seed(0)
    assert ImageTower(16)(torch.rand(5, 3, 32, 32)).shape == (5, 16)
    text = TextTower(8)
    assert text(["a red circle", "zzz qqq", ""]).shape == (3, 8)
    ids = text.vocab.encode(["a zebra"])
    assert ids[0, 1] == 1  # unknown word -> <unk>
    with pytest.raises(ValueError, match=r"shape \(N, 3, 32, 32\)"):
        ImageTower(16)(torch.rand(5, 32, 32))
    with pytest.raises(TypeError, match="list of strings"):
        text("a red circle")


def test_model_defaults_and_bad_arguments():
    model = ContrastiveModel(ImageTower(16), TextTower(8), 16)
    assert math.isclose(model.logit_scale.item(), math.log(1 / 0.07), rel_tol=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert math.isclose(model.temperature().item(), 0.01, rel_tol=1e-5)  # clamped at a scale of 100
    emb = model.encode_images(torch.rand(4, 3, 32, 32))
    assert emb.shape == (4, 16) and torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    with pytest.raises(ValueError, match="locked image tower has no head"):
        ContrastiveModel(ImageTower(16), TextTower(8), 8, lock_image=True)
    with pytest.raises(TypeError, match="attribute width"):
        ContrastiveModel(nn.Linear(2, 2), TextTower(8), 8)


def test_loss_is_clip_loss():
    torch.manual_seed(0)
    model = ContrastiveModel(ImageTower(16), TextTower(8), 16).eval()
    images, captions = torch.rand(4, 3, 32, 32), ["a red circle", "a blue ring", "a tiny box", "look"]
    expected = clip_loss(model.encode_images(images), model.encode_texts(captions), 0.07)
    assert torch.allclose(model.loss(images, captions), expected, atol=1e-5)


def test_locked_tower_is_computed_once_and_cached():
    torch.manual_seed(0)
    tower = ImageTower(16)
    calls = counting(tower)
    model = ContrastiveModel(tower, TextTower(8), 16, lock_image=True)
    images = torch.rand(6, 3, 32, 32)
    first, second = model.encode_images(images), model.encode_images(images)
    assert calls == [6] and torch.equal(first, second)
    images[0] += 1  # an in-place edit makes the cached features stale
    model.encode_images(images)
    assert calls == [6, 6]
    unlocked = ContrastiveModel(ImageTower(16), TextTower(8), 16)
    ucalls = counting(unlocked.image_tower)
    unlocked.encode_images(images), unlocked.encode_images(images)
    assert ucalls == [6, 6]


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(module, before):
    return any(not torch.equal(p, q) for p, q in zip(module.parameters(), before))


def test_training_moves_only_unlocked_parts_and_uses_the_cache(data):
    torch.manual_seed(0)
    tower = ImageTower(16)
    calls = counting(tower)
    model = ContrastiveModel(tower, TextTower(8), 16, lock_image=True)
    image_before, text_before = snapshot(tower), snapshot(model.text_tower)
    buffers = [b.clone() for b in tower.buffers()]
    run = lit.train_contrastive(model, data.pairs, steps=3, batch_size=16, lr=1e-2)
    assert calls == [len(data.pairs)]  # once, for the cache; never per step
    assert not changed(tower, image_before) and changed(model.text_tower, text_before)
    assert all(torch.equal(a, b) for a, b in zip(buffers, tower.buffers()))  # batch-norm statistics too
    assert len(run["losses"]) == 3 and run["seconds_per_step"] > 0
    lit.train_contrastive(model, data.pairs, steps=2, batch_size=16, lr=1e-2, cache=False)
    assert calls[1:] == [16, 16]  # uncached: the locked tower runs on every batch
    unlocked = ContrastiveModel(ImageTower(16), TextTower(8), 16)
    before = snapshot(unlocked.image_tower)
    lit.train_contrastive(unlocked, data.pairs, steps=2, batch_size=16, lr=1e-2)
    assert changed(unlocked.image_tower, before)


class Oracle(nn.Module):
    """Embeds a caption by the pair it names and an image by its true pair: a perfect model."""

    def __init__(self, data, constant=False):
        super().__init__()
        self.data, self.constant = data, constant
        self.n = len(shapes.class_names())

    def encode_texts(self, captions):
        out = torch.zeros(len(captions), self.n)
        for i, c in enumerate(captions):
            colour, shape = shapes.caption_words(c)
            out[i, shapes.class_id(colour, shape)] = 1
        return torch.ones_like(out) if self.constant else out

    def encode_images(self, images):
        out = nn.functional.one_hot(self.data.combo, self.n).float()
        return torch.ones_like(out) if self.constant else out


def test_zero_shot_accuracy_of_perfect_and_constant_models(data):
    names = shapes.class_names()
    assert lit.zero_shot_accuracy(Oracle(data.test_classes), data.test_classes, names) == 1.0
    first = data.test_classes.combo[0].item()
    ordered = [names[first]] + [n for i, n in enumerate(names) if i != first]
    constant = lit.zero_shot_accuracy(Oracle(data.test_classes, constant=True), data.test_classes, ordered)
    share_of_first = (data.test_classes.combo == first).float().mean().item()
    assert 0 < constant == pytest.approx(share_of_first)  # all ties: argmax names the first class listed
    with pytest.raises(ValueError, match="missing"):
        lit.zero_shot_accuracy(Oracle(data.test_classes), data.test_classes, names[:2])


class Fixed(nn.Module):
    def __init__(self, images, texts):
        super().__init__()
        self.images, self.texts = images, texts

    def encode_images(self, images):
        return self.images

    def encode_texts(self, captions):
        return self.texts


def test_recall_at_k_on_a_hand_made_example(data):
    part = data.test_seen.subset(slice(0, 3))
    part.captions = ["a", "b", "c"]
    # Distinct captions are sorted: a, b, c. Image 0 matches a; image 1 is nearest c, then b; image 2 nearest c.
    images = torch.tensor([[1.0, 0, 0], [0, 0.4, 0.9], [0, 0, 1]])
    model = Fixed(images, torch.eye(3))
    r = lit.recall_at_k(model, part, ks=(1, 2))
    assert r["i2t@1"] == pytest.approx(2 / 3) and r["i2t@2"] == 1.0
    # caption b: nearest images are 1 (0.4) then 0 and 2 (0): its image is first
    # caption c: nearest image 1 (0.9) before image 2 (1.0)? no, 2 first: a hit at 1
    assert r["t2i@1"] == 1.0
    with pytest.raises(TypeError, match="ks must be"):
        lit.recall_at_k(model, part, ks=5)


def test_run_setting_names_bad_settings(data):
    with pytest.raises(ValueError, match="two letters from L, U, u"):
        lit.run_setting("LX", data, "smoke")
    with pytest.raises(ValueError, match="text_tower"):
        lit.run_setting("LU", data, "smoke")


def test_run_setting_evaluates_each_step_count(data):
    budget = runtime.budget("smoke").replace(lit_steps=(1, 2), lit_batch=16, lit_width=8, lit_pretrain_steps=2)
    torch.manual_seed(0)
    result = lit.run_setting("Lu", data, budget)
    assert [p["steps"] for p in result["points"]] == [1, 2]
    assert {"zero_shot_combos", "zero_shot_classes", "zero_shot_seen", "i2t@1", "t2i@5"} <= set(result["points"][0])
    assert result["model"].lock_image and not result["model"].lock_text
