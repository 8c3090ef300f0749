"""Tests for lmcourse.data.statistics: corpus statistics and mixture weights on inputs with known answers."""
from collections import Counter

import numpy as np
import pytest

from lmcourse.data.statistics import describe_charset, lengths, temperature_weights, top_share, zipf_fit

# ---------------------------------------------------------------------------
# Zipf's law, lengths, character sets


def test_zipf_fit_recovers_the_exponent():
    ranks = np.arange(1, 5001)
    for exponent in (1.0, 1.5):
        counts = {r: int(round(1e6 / r**exponent)) for r in ranks}
        fit = zipf_fit(counts)
        assert fit.slope == pytest.approx(-exponent, abs=0.02)
        assert fit.predict(1) == pytest.approx(1e6, rel=0.05)
    tokens = ["a"] * 100 + ["b"] * 50 + ["c"] * 33 + list("defghijklm") * 10
    assert zipf_fit(tokens).fit_ranks == (1, 13)
    with pytest.raises(ValueError, match="at least 10 types"):
        zipf_fit(["a", "b"])
    with pytest.raises(TypeError, match="one str"):
        zipf_fit("the cat sat")


def test_top_share_and_lengths():
    assert top_share(Counter(a=5, b=3, c=2), k=1) == 0.5
    assert top_share(list("aab"), k=10) == 1.0
    assert lengths(["ab", "", "a b c"]).tolist() == [2, 0, 5]
    assert lengths(["ab", "", "a, b c!"], unit="word").tolist() == [1, 0, 3]


def test_describe_charset():
    report = describe_charset("ab\nab\u00e9\u00e9\x07")
    assert (report.size, report.ascii_printable) == (5, 3)
    assert report.other == [("\u00e9", 2, "LATIN SMALL LETTER E WITH ACUTE"), ("\x07", 1, "U+0007")]


# ---------------------------------------------------------------------------
# mixtures


def test_temperature_weights():
    assert temperature_weights([900, 100], 1.0) == pytest.approx([0.9, 0.1])
    assert temperature_weights([900, 100], 2.0) == pytest.approx([0.75, 0.25])
    assert temperature_weights({"big": 1e9, "small": 1.0}, 1e6) == pytest.approx([0.5, 0.5], abs=1e-3)
    with pytest.raises(ValueError, match="positive"):
        temperature_weights([1, 0])
    with pytest.raises(ValueError, match="temperature"):
        temperature_weights([1, 2], 0)
    with pytest.raises(TypeError, match="temperature"):
        temperature_weights([1, 2], "5")


def test_corpus_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmcourse.viz import plot_length_histograms, plot_zipf

    counts = {r: int(1e4 / r) for r in range(1, 500)}
    fig = plot_zipf({"toy": zipf_fit(counts)})
    assert "slope -1.00" in fig.axes[0].get_legend().get_texts()[0].get_text()
    fig2 = plot_length_histograms({"a": [1, 2, 3, 50], "b": [10, 10, 400]})
    assert len(fig2.axes) == 2 and "median 2.5" in fig2.axes[0].get_title()
    plt.close("all")
    with pytest.raises(ValueError, match="empty"):
        plot_zipf({})
