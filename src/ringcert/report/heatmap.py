"""Heatmap of a layered neighborhood: each pixel coloured by its ring's epsilon.

The image is drawn in grey underneath, the epsilon of every pixel's ring on top (a
sequential colour map with a colour bar), and both objects outlined: the perturbed
object (where the rings grow from) and the target. The seed's figures 3-4 show the same
picture. The colour scale runs from 0 to the 99th percentile of the pixels' epsilons
(``vmax=None``: epsilons of a few hundredths would be invisible on a 0-1 scale, and a
one-pixel far corner ring must not set the scale; larger values show in the top colour,
marked by the bar's arrow), or to a given ``vmax``. Reads results only; never verifies.
The PNG is written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def epsilon_map(rings: np.ndarray, epsilon: np.ndarray) -> np.ndarray:
    """Per-pixel epsilon (H, W): ``epsilon[ring(p)]``."""
    return np.asarray(epsilon, dtype=np.float64)[np.asarray(rings)]


def save_heatmap(path: str | Path, *, image: np.ndarray, rings: np.ndarray,
                 epsilon: np.ndarray, perturbed_mask: np.ndarray,
                 target_mask: np.ndarray | None = None, title: str = "",
                 vmax: float | None = None) -> Path:
    """Write the heatmap PNG to ``path`` (temp file + ``os.replace``); returns the path."""
    from ringcert.batch.store import write_atomic

    path = Path(path)
    write_atomic(path, heatmap_png(image=image, rings=rings, epsilon=epsilon,
                                   perturbed_mask=perturbed_mask, target_mask=target_mask,
                                   title=title, vmax=vmax))
    return path


def heatmap_png(*, image: np.ndarray, rings: np.ndarray, epsilon: np.ndarray,
                perturbed_mask: np.ndarray, target_mask: np.ndarray | None = None,
                title: str = "", vmax: float | None = None) -> bytes:
    """The heatmap as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    picture = np.asarray(image, dtype=np.float64)
    if picture.ndim == 3:
        picture = picture.mean(axis=0)
    figure = Figure(figsize=(5.2, 4.6), dpi=110)
    axes = figure.add_subplot()
    axes.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    per_pixel = epsilon_map(rings, epsilon)
    if vmax is None:
        vmax = max(float(np.quantile(per_pixel, 0.99)), 1e-3)
    shown = axes.imshow(per_pixel, cmap="viridis", vmin=0.0, vmax=vmax,
                        alpha=0.65, interpolation="nearest")
    handles = []
    for mask, colour, label in ((perturbed_mask, "tab:red", "perturbed object"),
                                (target_mask, "white", "target object")):
        if mask is not None and np.asarray(mask).any():
            axes.contour(np.asarray(mask, dtype=float), levels=[0.5], colors=colour,
                         linewidths=1.2)
            handles.append(Line2D([], [], color=colour, label=label))
    if handles:
        legend = axes.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.6,
                             facecolor="black", labelcolor="white")
        legend.get_frame().set_edgecolor("none")
    axes.set_xticks([])
    axes.set_yticks([])
    figure.colorbar(shown, ax=axes, label="ring epsilon", fraction=0.046, pad=0.04,
                    extend="max" if per_pixel.max() > vmax else "neither")
    axes.set_title(title, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
