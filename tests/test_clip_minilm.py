"""Lesson 10's pretrained text tower (all-MiniLM-L6-v2) and the retrieval plots and widget."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lmcourse.models.clip import ContrastiveModel  # noqa: E402
from lmcourse.models.clip_minilm import MiniLMTextTower  # noqa: E402
from lmcourse.viz import plot_retrieval, plot_similarity, retrieval_widget, retrieve  # noqa: E402

CAPTIONS = ["a red circle", "a small blue square", "a red circle", "a green cross in the centre"]


@pytest.fixture(scope="module")
def locked():
    torch.set_num_threads(1)
    return MiniLMTextTower(trainable=False, device="cpu")


def test_locked_tower_embeds_each_distinct_caption_once(locked):
    out = locked(CAPTIONS)
    assert out.shape == (4, 384) and locked.width == 384 and not out.requires_grad
    assert torch.equal(out[0], out[2])  # the same caption, the same vector
    assert F.cosine_similarity(out[0], out[1], dim=0) < 0.99
    hits = locked.cache_hits
    again = locked(["a small blue square", "a red circle"])
    assert locked.cache_hits == hits + 2  # both answered from the cache
    assert torch.equal(again[0], out[1])
    # Cached and fresh agree: the cache is only a shortcut.
    fresh = locked._embed(["a small blue square"])
    assert torch.allclose(fresh[0], out[1], atol=1e-5)
    with pytest.raises(TypeError, match="list of strings"):
        locked("a red circle")
    with pytest.raises(ValueError, match="at least one caption"):
        locked([])


class TinyImages(torch.nn.Module):
    width = 4

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(12, 4)

    def forward(self, images):
        return self.proj(images.flatten(1))


def _train_steps(model, captions, steps=2):
    images = torch.randn(len(captions), 12, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    for _ in range(steps):
        loss = model.loss(images, captions)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_in_LL_only_the_text_head_and_temperature_train(locked):
    model = ContrastiveModel(TinyImages(), locked, embed_dim=4, lock_image=True, lock_text=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _train_steps(model, ["a red circle", "a blue square", "a green cross"])
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"text_head.weight", "text_head.bias", "logit_scale"}
    assert locked.locked and not locked.encoder.training  # train() never turns dropout on


def test_unlocked_tower_fine_tunes_everything_but_the_word_table():
    text = MiniLMTextTower(trainable=True, device="cpu")
    model = ContrastiveModel(TinyImages(), text, embed_dim=4, lock_image=True)
    before = {k: v.clone() for k, v in text.state_dict().items()}
    _train_steps(model, ["a red circle", "a blue square"], steps=1)
    after = text.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "encoder.encoder.layer.5.output.dense.weight" in changed
    assert "encoder.embeddings.word_embeddings.weight" not in changed
    assert not text.locked and text._cache == {}  # nothing is cached while weights move


class FixedModel:
    """Unit-length embeddings chosen by hand: caption k points along axis k."""

    words = ["red", "green", "blue"]  # the RGB channels

    def encode_images(self, images):
        return F.normalize(images.mean(dim=(2, 3)), dim=-1)  # an image's mean colour is its embedding

    def encode_texts(self, captions):
        return torch.stack([F.one_hot(torch.tensor(self.words.index(c.split()[-1])), 3).float()
                            for c in captions])


def _coloured_images():
    colours = torch.tensor([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1], [0.6, 0.4, 0]]).float()
    return colours[:, :, None, None].expand(5, 3, 32, 32).clone()


def test_retrieve_and_the_widget_return_the_nearest_images():
    images, model = _coloured_images(), FixedModel()
    indices, scores = retrieve(model, images, "a red", top=3)
    assert indices == [0, 2, 4] and scores[0] == pytest.approx(1.0) and scores == sorted(scores, reverse=True)
    widget = retrieval_widget(model, images, ["r", "g", "r", "b", "o"], top=2, query="a blue")
    assert "retrieval widget" in repr(widget)
    assert widget.search("a green") == [1, 4]
    assert widget.search("   ") == []
    fig = plot_retrieval(images, indices, scores, ["r", "g", "r", "b", "o"], "a red")
    assert len(fig.axes) == 3 and fig.axes[0].get_title().startswith("1.00")
    plt.close("all")
    with pytest.raises(ValueError, match="one label per image"):
        retrieval_widget(model, images, ["r"])
    with pytest.raises(ValueError, match="non-empty caption"):
        retrieve(model, images, "")


def test_plot_similarity_draws_the_matrix_on_a_fixed_scale():
    sim = torch.tensor([[0.9, -0.2], [0.1, 0.5]])
    fig = plot_similarity(sim, ["img a", "img b"], ["cap a", "cap b"], title="toy")
    ax = fig.axes[0]
    assert np.allclose(ax.images[0].get_array(), sim.numpy()) and ax.images[0].get_clim() == (-1.0, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cap a", "cap b"]
    assert ax.get_title() == "toy"
    plt.close(fig)
    with pytest.raises(ValueError, match="square"):
        plot_similarity(torch.ones(2, 3), ["a", "b"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="one label per row"):
        plot_similarity(torch.ones(2, 2), ["a"], ["a", "b"])
