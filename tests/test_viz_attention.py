"""The attention-map figures and widget of lesson 06 (lmcourse.viz)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lmcourse.viz import attention_widget, plot_attention, plot_attention_heads  # noqa: E402


def causal_maps(n_layer=2, n_head=3, T=5, seed=0):
    """Random attention maps that look like a causal model's: rows sum to 1, zero above the diagonal."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n_layer, n_head, T, T, generator=g)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def test_plot_attention_shows_the_weights_with_labels_on_both_axes():
    w = causal_maps()[1, 2]
    fig = plot_attention(w, labels=list("ab c\n"), title="layer 1, head 2")
    ax = fig.axes[0]
    assert np.allclose(ax.images[0].get_array(), w.numpy())  # row = query, column = key
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "␣", "c", "\\n"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "␣", "c", "\\n"]
    assert ax.get_title() == "layer 1, head 2"
    assert ax.images[0].get_clim() == (0.0, 1.0)  # every head on the same colour scale
    plt.close(fig)


def test_plot_attention_rejects_bad_shapes_and_labels():
    with pytest.raises(ValueError, match=r"\(T, T\)"):
        plot_attention(torch.ones(3, 4))
    with pytest.raises(ValueError, match="one label per token"):
        plot_attention(torch.eye(3), labels=list("ab"))


def test_plot_attention_heads_draws_one_panel_per_layer_and_head():
    maps = causal_maps(n_layer=2, n_head=3)
    fig = plot_attention_heads(maps, labels=list("abcde"))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"layer {l}, head {h}" for l in range(2) for h in range(3)]
    assert np.allclose(fig.axes[4].images[0].get_array(), maps[1, 1].numpy())
    plt.close(fig)
    with pytest.raises(ValueError, match="n_layer, n_head, T, T"):
        plot_attention_heads(torch.ones(2, 1, 5, 5, 5))  # attention_maps' batch axis left in


def test_attention_widget_builds_without_a_front_end_and_follows_its_sliders():
    maps = causal_maps(n_layer=2, n_head=3)
    widget = attention_widget(maps, labels=list("abcde"))
    assert "Jupyter" in repr(widget)  # what a static page shows instead of sliders
    assert (widget.layer.max, widget.head.max) == (1, 2)
    assert widget.text is None
    widget.layer.value, widget.head.value = 1, 2
    fig = widget.figure()
    assert fig.axes[0].get_title() == "layer 1, head 2"
    assert np.allclose(fig.axes[0].images[0].get_array(), maps[1, 2].numpy())
    plt.close(fig)


def test_attention_widget_text_box_recomputes_and_reports_bad_text():
    calls = []

    def compute(text):
        calls.append(text)
        if "!" in text:
            raise ValueError("'!' is not in the vocabulary")
        return causal_maps(n_layer=1, n_head=2, T=len(text), seed=len(text)), list(text)

    widget = attention_widget(*compute("hello"), compute=compute, text="hello")
    widget.head.value = 1
    widget.text.value = "hi there"
    assert calls == ["hello", "hi there"]
    assert widget.maps.shape == (1, 2, 8, 8) and widget.labels == list("hi there")
    assert widget.head.value == 1  # the chosen head stays chosen
    widget.text.value = "oops!"  # shown under the box; the last good map stays
    assert calls[-1] == "oops!" and widget.maps.shape == (1, 2, 8, 8)
    plt.close("all")


def test_attention_widget_needs_compute_and_text_together():
    with pytest.raises(ValueError, match="together"):
        attention_widget(causal_maps(), compute=lambda text: None)
