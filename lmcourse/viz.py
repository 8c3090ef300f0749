"""Plots and widgets shared by several notebooks."""
from __future__ import annotations


def setup_notebook(dpi: int = 80) -> None:
    """Matplotlib defaults for lessons: small PNGs that read well on GitHub and phones."""
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.dpi": dpi,
        "savefig.dpi": dpi,
        "figure.figsize": (6.0, 3.5),
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


# ---------------------------------------------------------------------------
# Sampling: how temperature, top-k and top-p reshape a next-token distribution


def _token_labels(labels, V: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(V)]
    # show invisible characters: a newline as \n, a space as ␣
    labels = [repr(s)[1:-1].replace(" ", "␣") if isinstance(s, str) else str(s) for s in labels]
    if len(labels) != V:
        raise ValueError(f"need one label per token: got {len(labels)} labels for {V} tokens")
    return labels


def plot_sampling_distributions(probs_by_setting: dict, labels=None, top: int = 15):
    """Bar charts of next-token distributions, one panel per sampling setting.

    ``probs_by_setting`` maps a title (e.g. ``"T=0.5"``) to a probability
    vector of shape ``(V,)`` (numpy or torch). Every panel shows the same
    tokens in the same order, the ``top`` most probable under the first
    setting, so the panels can be compared bar by bar. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not probs_by_setting:
        raise ValueError("probs_by_setting is empty: pass {title: probability vector}")
    probs = {}
    for title, p in probs_by_setting.items():
        p = np.asarray(p.detach().cpu() if hasattr(p, "detach") else p, dtype=float)
        if p.ndim != 1:
            raise ValueError(f"each distribution must have shape (V,), got {p.shape} for {title!r}")
        probs[title] = p
    V = len(next(iter(probs.values())))
    if any(len(p) != V for p in probs.values()):
        raise ValueError("all distributions must have the same vocabulary size")
    names = _token_labels(labels, V)
    shown = np.argsort(-next(iter(probs.values())), kind="stable")[: min(top, V)]

    tick_labels = [names[i] for i in shown]
    rotation = 0 if all(len(s) <= 2 for s in tick_labels) else 90  # single characters fit upright

    n = len(probs)
    fig, axes = plt.subplots(1, n, figsize=(min(2.4 * n, 12), 2.6), sharey=True, squeeze=False)
    for ax, (title, p) in zip(axes[0], probs.items()):
        ax.bar(range(len(shown)), p[shown], color="tab:blue")
        ax.set_xticks(range(len(shown)), tick_labels, fontsize=7, rotation=rotation)
        kept = int((p > 0).sum())
        ax.set_title(f"{title}\n{kept} of {V} tokens kept", fontsize=9)
    axes[0][0].set_ylabel("probability")
    axes[0][0].set_ylim(bottom=0)
    fig.tight_layout()
    return fig


def sampling_widget(logits, labels=None, sample=None, top: int = 15):
    """Sliders for temperature, top-k and top-p over one next-token distribution.

    ``logits`` has shape ``(V,)`` (log-probabilities work: softmax turns them
    back into the same distribution). Moving a slider redraws the bar chart
    of the distribution ``lmcourse.generate.sample_next`` would draw from and,
    if ``sample`` is given, prints ``sample(temperature, top_k, top_p)`` (a
    function returning generated text; ``top_k``/``top_p`` are ``None`` when
    off). Returns the widget to display.

    Without a widget front end (nbconvert, nbval, GitHub's viewer) the widget
    cannot be drawn: its text form says so, and lessons pair it with a static
    figure from ``plot_sampling_distributions``.
    """
    import matplotlib.pyplot as plt
    import ipywidgets as widgets
    import torch
    from IPython.display import display

    from lmcourse.generate import sampling_probs

    logits = torch.as_tensor(logits, dtype=torch.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must have shape (V,), got {tuple(logits.shape)}")
    V = logits.shape[0]
    names = _token_labels(labels, V)

    class SamplingWidget(widgets.VBox):
        def __repr__(self) -> str:  # what a page without a widget front end shows
            return "[sampling widget: run this notebook in Jupyter or Colab to move the sliders]"

    style = {"description_width": "initial"}
    temperature = widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05,
                                      description="temperature", style=style)
    top_k = widgets.IntSlider(value=0, min=0, max=V, description="top-k (0 = off)", style=style)
    top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05,
                                description="top-p", style=style)
    out = widgets.Output()

    def redraw(_change=None):
        t, k = temperature.value, top_k.value or None
        p = top_p.value if top_p.value < 1.0 else None
        probs = sampling_probs(logits, t, k, p)
        title = f"T={t:g}" + (f", top-k={k}" if k else "") + (f", top-p={p:g}" if p else "")
        with out:
            out.clear_output(wait=True)
            fig = plot_sampling_distributions({title: probs}, names, top)
            display(fig)
            plt.close(fig)
            if sample is not None:
                print(sample(t, k, p))

    for slider in (temperature, top_k, top_p):
        slider.observe(redraw, names="value")
    redraw()
    return SamplingWidget([widgets.HBox([temperature, top_k, top_p]), out])


# ---------------------------------------------------------------------------
# Corpus statistics (lesson 02)


def plot_zipf(fits: dict, max_points: int = 400):
    """Rank-frequency curves on log-log axes, with each fitted Zipf line.

    ``fits`` maps a corpus name to a ``lmcourse.data.statistics.ZipfFit``. The
    dots are the observed counts (thinned to ``max_points`` log-spaced ranks),
    the dashed line is the fit over the ranks it used. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not fits:
        raise ValueError("fits is empty: pass {corpus name: zipf_fit(...)}")
    fig, ax = plt.subplots()
    for (name, fit), color in zip(fits.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        counts = np.asarray(fit.counts)
        ranks = np.unique(np.round(np.logspace(0, np.log10(len(counts)), max_points)).astype(int))
        ax.loglog(ranks, counts[ranks - 1], ".", ms=3, color=color, alpha=0.6)
        lo, hi = fit.fit_ranks
        line = np.array([lo, hi])
        ax.loglog(line, fit.predict(line), "--", color=color, label=f"{name}: slope {fit.slope:.2f}")
    ax.set_xlabel("rank of word type")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_length_histograms(lengths_by_name: dict, unit: str = "words", bins: int = 40):
    """One histogram per entry of ``lengths_by_name`` (name -> array of lengths), log-spaced bins.

    Lengths of documents, speeches or lines span orders of magnitude, so the
    bins are log-spaced; the dashed line marks the median. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not lengths_by_name:
        raise ValueError("lengths_by_name is empty: pass {name: array of lengths}")
    n = len(lengths_by_name)
    fig, axes = plt.subplots(1, n, figsize=(min(3.2 * n, 12), 2.6), squeeze=False)
    for ax, (name, values) in zip(axes[0], lengths_by_name.items()):
        values = np.asarray(values, dtype=float)
        values = values[values > 0]
        if len(values) == 0:
            raise ValueError(f"{name!r} has no positive lengths to plot")
        # log-spaced edges between whole numbers, so integer lengths never straddle a bin edge
        edges = np.unique(np.round(np.logspace(0, np.log10(values.max() + 1), bins))) - 0.5
        ax.hist(values, bins=edges, color="tab:blue", alpha=0.8)
        ax.axvline(np.median(values), color="k", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"{name}\n{len(values):,} items, median {np.median(values):g} {unit}", fontsize=9)
        ax.set_xlabel(unit)
    axes[0][0].set_ylabel("count")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Attention maps (lesson 06)


def _attention_grid(maps) -> "np.ndarray":
    """``maps`` as a float numpy array (n_layer, n_head, T, T), with a clear error otherwise."""
    import numpy as np

    maps = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=float)
    if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2] or maps.shape[-1] == 0:
        raise ValueError(f"attention maps must have shape (n_layer, n_head, T, T), got {maps.shape}; "
                         "for lmcourse.models.gpt.attention_maps(model, idx) take one text: maps[:, 0]")
    return maps


def plot_attention(weights, labels=None, ax=None, title: str | None = None):
    """One head's attention weights as a heatmap: row ``i`` is query position ``i``, column ``j`` key ``j``.

    ``weights`` has shape ``(T, T)`` (numpy or torch); ``labels`` gives one
    label per position (characters show a space as ␣ and a newline as \\n), put
    on both axes. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"attention weights must have shape (T, T), got {w.shape}")
    T = w.shape[0]
    if ax is None:
        size = min(7.0, 1.5 + 0.09 * T)  # about 6 pixels per position at the lessons' dpi, at most 7 inches
        fig, ax = plt.subplots(figsize=(size + 0.6, size))
    else:
        fig = ax.figure
    image = ax.imshow(w, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    if labels is not None:
        names = _token_labels(labels, T)
        fontsize = 7 if T <= 40 else 5
        ax.set_xticks(range(T), names, fontsize=fontsize, rotation=90)
        ax.set_yticks(range(T), names, fontsize=fontsize)
    ax.set_xlabel("key: attended to")
    ax.set_ylabel("query: attending")
    ax.grid(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    fig.tight_layout()
    return fig


def plot_attention_heads(maps, labels=None):
    """Every head at a glance: a grid with one row per layer and one column per head.

    ``maps`` has shape ``(n_layer, n_head, T, T)``, e.g. ``attention_maps(model, idx)[:, 0]``.
    Tick labels are shown only for short texts (at most 24 positions). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    maps = _attention_grid(maps)
    n_layer, n_head, T = maps.shape[:3]
    names = _token_labels(labels, T) if labels is not None else None
    fig, axes = plt.subplots(n_layer, n_head, figsize=(min(1.9 * n_head, 9), min(1.9 * n_layer, 9)),
                             squeeze=False)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(maps[layer, head], cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.grid(False)
            if names is not None and T <= 24:
                ax.set_xticks(range(T), names, fontsize=5, rotation=90)
                ax.set_yticks(range(T), names, fontsize=5)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.tight_layout()
    return fig


def attention_widget(maps, labels=None, compute=None, text: str | None = None):
    """Sliders for layer and head over attention maps, and optionally a text box to attend over.

    ``maps`` has shape ``(n_layer, n_head, T, T)`` and ``labels`` one label per
    position. With ``compute(text) -> (maps, labels)`` and a starting ``text``, a
    text box lets the learner type a new text; an error that ``compute`` raises
    (a character outside the vocabulary, a text longer than the context) is shown
    under the box instead of the map. Returns the widget to display; its
    ``figure()`` draws the map the sliders select.

    Without a widget front end (nbconvert, nbval, GitHub's viewer) the widget
    cannot be drawn: its text form says so, and lessons pair it with a static
    figure from ``plot_attention`` or ``plot_attention_heads``.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    if (compute is None) != (text is None):
        raise ValueError("pass compute and text together (a text box needs both), or neither")

    class AttentionWidget(widgets.VBox):
        def __repr__(self) -> str:  # what a page without a widget front end shows
            return "[attention widget: run this notebook in Jupyter or Colab to move the sliders]"

        def set_maps(self, new_maps, new_labels) -> None:
            new_maps = _attention_grid(new_maps)
            if new_labels is not None:
                _token_labels(new_labels, new_maps.shape[-1])  # one label per position, or a clear error
            self.maps, self.labels = new_maps, new_labels
            self.layer.max, self.head.max = new_maps.shape[0] - 1, new_maps.shape[1] - 1

        def figure(self):
            layer, head = self.layer.value, self.head.value
            return plot_attention(self.maps[layer, head], self.labels, title=f"layer {layer}, head {head}")

    style = {"description_width": "initial"}
    grid = _attention_grid(maps)
    layer = widgets.IntSlider(value=0, min=0, max=max(grid.shape[0] - 1, 0), description="layer", style=style)
    head = widgets.IntSlider(value=0, min=0, max=max(grid.shape[1] - 1, 0), description="head", style=style)
    box = None if compute is None else widgets.Text(value=text, description="text", continuous_update=False,
                                                     layout=widgets.Layout(width="95%"), style=style)
    out = widgets.Output()
    controls = [widgets.HBox([layer, head])] + ([box] if box is not None else [])
    widget = AttentionWidget(controls + [out])
    widget.layer, widget.head, widget.text = layer, head, box
    widget.set_maps(grid, labels)

    def redraw(_change=None):
        with out:
            out.clear_output(wait=True)
            fig = widget.figure()
            display(fig)
            plt.close(fig)

    def recompute(change):
        try:
            widget.set_maps(*compute(change["new"]))
        except (ValueError, KeyError) as error:  # bad text: say why, keep the last good map
            with out:
                out.clear_output(wait=True)
                print(f"cannot attend over this text: {error}")
            return
        redraw()

    layer.observe(redraw, names="value")
    head.observe(redraw, names="value")
    if box is not None:
        box.observe(recompute, names="value")
    redraw()
    return widget


# ---------------------------------------------------------------------------
# Image-text retrieval (lesson 10)


def plot_similarity(sim, image_labels, text_labels, ax=None, title: str | None = None):
    """Heatmap of an (N, N) image-by-caption cosine-similarity matrix.

    Row i is image i, column j is caption j; a model that matches its pairs
    shows a bright diagonal. Cosines share one colour scale, [-1, 1], so two
    models' heatmaps can be compared cell by cell. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    sim = np.asarray(sim.detach().cpu() if hasattr(sim, "detach") else sim, dtype=float)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be a square (N, N) matrix of image-caption similarities, got shape {sim.shape}")
    n = sim.shape[0]
    for name, labels in (("image_labels", image_labels), ("text_labels", text_labels)):
        if len(labels) != n:
            raise ValueError(f"{name} needs one label per row of sim: got {len(labels)} for N={n}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.0))
    else:
        fig = ax.figure
    shown = ax.imshow(sim, cmap="viridis", vmin=-1.0, vmax=1.0)
    ax.set_xticks(range(n), list(text_labels), rotation=90, fontsize=7)
    ax.set_yticks(range(n), list(image_labels), fontsize=7)
    ax.set_xlabel("caption")
    ax.set_ylabel("image")
    ax.grid(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="cosine")
    return fig


def retrieve(model, images, query: str, top: int = 8, image_emb=None):
    """``(indices, scores)`` of the ``top`` images whose embedding is nearest ``query``'s (cosine).

    ``model`` has ``encode_images`` and ``encode_texts`` returning unit-length
    rows (``lmcourse.models.clip.ContrastiveModel``); ``image_emb`` reuses
    embeddings already computed for ``images``.
    """
    import torch

    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty caption string, got {query!r}")
    with torch.no_grad():
        if image_emb is None:
            image_emb = model.encode_images(images)
        scores = (image_emb @ model.encode_texts([query]).to(image_emb.device).T)[:, 0].cpu()
    best = scores.topk(min(int(top), len(scores)))
    return best.indices.tolist(), best.values.tolist()


def plot_retrieval(images, indices, scores, labels=None, query: str | None = None):
    """The retrieved images in a row, best first, each titled with its score (and label)."""
    import matplotlib.pyplot as plt

    n = len(indices)
    if n == 0:
        raise ValueError("indices is empty: nothing was retrieved")
    fig, axes = plt.subplots(1, n, figsize=(min(1.15 * n, 12), 1.8), squeeze=False)
    for ax, i, s in zip(axes[0], indices, scores):
        ax.imshow(images[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(f"{s:.2f}" + (f"\n{labels[i]}" if labels is not None else ""), fontsize=7)
        ax.axis("off")
    if query:
        fig.suptitle(f"query: {query!r}", fontsize=9)
    fig.tight_layout()
    return fig


def retrieval_widget(model, images, captions_or_names, top: int = 8, query: str = "a red circle"):
    """A text box: type a caption, see the ``top`` images with the highest cosine similarity.

    ``captions_or_names`` labels each image (its caption or class name) under
    its picture. The image embeddings are computed once; each query encodes
    one caption. ``widget.search(text)`` runs a query and returns the indices
    it shows. Without a widget front end (nbconvert, nbval, GitHub's viewer)
    the text form says so; lessons pair it with a static ``plot_retrieval``.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    if len(captions_or_names) != len(images):
        raise ValueError(f"captions_or_names needs one label per image: got {len(captions_or_names)} "
                         f"for {len(images)} images")
    with torch.no_grad():
        image_emb = model.encode_images(images)

    class RetrievalWidget(widgets.VBox):
        def __repr__(self) -> str:  # what a page without a widget front end shows
            return "[retrieval widget: run this notebook in Jupyter or Colab to type a caption]"

    box = widgets.Text(value=query, description="caption", continuous_update=False)
    out = widgets.Output()

    def search(text: str) -> list[int]:
        with out:
            out.clear_output(wait=True)
            if not text.strip():
                print("type a caption, e.g. 'a small blue square'")
                return []
            indices, scores = retrieve(model, images, text, top, image_emb=image_emb)
            fig = plot_retrieval(images, indices, scores, captions_or_names, text)
            display(fig)
            plt.close(fig)
        return indices

    box.observe(lambda change: search(change["new"]), names="value")
    widget = RetrievalWidget([box, out])
    widget.search = search
    search(query)
    return widget
