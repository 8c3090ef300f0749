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
